# Another script of the same input: every 20 ms, notes when its run ran.
import sys
import time

from datakit_framework import DataKitFramework


class Other(DataKitFramework):
    interval = 0.02

    def run(self):
        sys.__dict__.setdefault('_pythond_test_ticks', []).append(time.monotonic())
