from datakit_framework import DataKitFramework


class Bad(DataKitFramework):
    name = 'bad'
    interval = 0.5

    def run(self):
        raise RuntimeError('boom every run')
