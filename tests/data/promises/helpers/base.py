# An intermediate base class shared by collectors; it does not override run().
from datakit_framework import DataKitFramework


class MyBase(DataKitFramework):
    def common(self):
        return 21
