# interval = inf: a clear error for this script, never a crash.
from datakit_framework import DataKitFramework


class Forever(DataKitFramework):
    name = 'forever'
    interval = float('inf')

    def run(self):
        self.feed_metric(measurement='forever', fields={'v': 1})
