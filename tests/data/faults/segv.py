# Segfaults its worker process (a NULL read through ctypes) every run.
import ctypes
from datakit_framework import DataKitFramework


class Segv(DataKitFramework):
    interval = 1

    def run(self):
        self.feed_metric(measurement='segv_ran', fields={'v': 1})
        ctypes.string_at(0)
