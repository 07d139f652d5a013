# Innocent and slow: every run reports a point (`seq` from 0), then takes
# 3 s (interval 1 s: the run is nearly always going). It is running when
# late.py takes the worker down, and started before it.
import time

from datakit_framework import DataKitFramework


class Patient(DataKitFramework):
    name = 'patient'
    interval = 1
    seq = 0

    def run(self):
        cls = type(self)
        self.feed_metric(measurement='patient', fields={'seq': cls.seq})
        cls.seq += 1
        time.sleep(3)
