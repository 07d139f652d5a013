from datakit_framework import DataKitFramework


class Broken(DataKitFramework)
    name = 'broken'
