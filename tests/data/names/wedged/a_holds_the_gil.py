# run() blocks in C while holding the GIL (ctypes.PyDLL keeps it): nothing
# else can run Python in this process any more.
import ctypes

from datakit_framework import DataKitFramework


class HoldsTheGil(DataKitFramework):
    name = 'holds_the_gil'
    interval = 10
    timeout = 1

    def run(self):
        self.feed_metric(measurement='holds_the_gil_started', fields={'v': 1})
        ctypes.PyDLL(None).sleep(3600)
