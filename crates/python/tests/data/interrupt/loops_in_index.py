from datakit_framework import DataKitFramework

class Looper(object):
    def __index__(self):
        while True:
            pass

class InIndex(DataKitFramework):
    def run(self):
        try:
            self.feed_metric(measurement='m', fields={'v': Looper()})
        except ValueError:
            pass
