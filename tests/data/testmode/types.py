from datakit_framework import DataKitFramework


class T(DataKitFramework):
    def run(self):
        self.feed_metric(measurement='m', tags={'n': 5, 'flag': True},
            fields={'i': 7, 'f': 1.0, 'b': False, 'u': 2**64 - 1, 'neg': -3, 'none': None})
