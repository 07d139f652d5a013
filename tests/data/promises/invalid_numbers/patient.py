# timeout = 1e300 (beyond any Duration): a clear error for this script, never a crash.
from datakit_framework import DataKitFramework


class Patient(DataKitFramework):
    name = 'patient'
    interval = 0.5
    timeout = 1e300

    def run(self):
        self.feed_metric(measurement='patient', fields={'v': 1})
