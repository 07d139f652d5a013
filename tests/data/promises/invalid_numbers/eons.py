# interval = 1e300 (beyond any Duration): a clear error for this script, never a crash.
from datakit_framework import DataKitFramework


class Eons(DataKitFramework):
    name = 'eons'
    interval = 1e300

    def run(self):
        self.feed_metric(measurement='eons', fields={'v': 1})
