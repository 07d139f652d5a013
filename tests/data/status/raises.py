from datakit_framework import DataKitFramework


class Raises(DataKitFramework):
    name = 'raises'
    interval = 0.3

    def run(self):
        raise RuntimeError('boom from the status test')
