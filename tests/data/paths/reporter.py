# One point per run, every 0.5 s; the measurement is the module's own name
# (the tests copy this file under several names).
from datakit_framework import DataKitFramework

MEASUREMENT = __name__.split('.')[-1]


class Reporter(DataKitFramework):
    name = MEASUREMENT
    interval = 0.5

    def run(self):
        self.feed_metric(measurement=MEASUREMENT, fields={'v': 1})
