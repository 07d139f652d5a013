from datakit_framework import DataKitFramework


class R(DataKitFramework):
    def run(self):
        raise RuntimeError('boom in run')
