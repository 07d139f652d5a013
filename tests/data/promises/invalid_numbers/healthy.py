# A healthy script beside the troublemakers: one point per run, every 0.25 s,
# `seq` counting from 0. The measurement is the module's name (`healthy` for
# healthy.py; a copy named fine.py reports `fine`).
from datakit_framework import DataKitFramework

MEASUREMENT = __name__.split('.')[-1]


class Healthy(DataKitFramework):
    name = MEASUREMENT
    interval = 0.25
    seq = 0

    def run(self):
        cls = type(self)
        self.feed_metric(measurement=MEASUREMENT, fields={'seq': cls.seq})
        cls.seq += 1
