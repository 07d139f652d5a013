# Base has no run() of its own: not instantiated. Real is.
from datakit_framework import DataKitFramework


class Base(DataKitFramework):
    name = 'Base'

    def helper(self):
        return 1


class Real(DataKitFramework):
    name = 'Real'

    def run(self):
        self.feed_metric(measurement='real', fields={'v': 1})
