# libc sleep() called through PyDLL keeps the GIL: nothing else in that
# interpreter can run, not even the heartbeat.
import ctypes, os
from datakit_framework import DataKitFramework


class Wedge(DataKitFramework):
    interval = 60

    def run(self):
        self.feed_metric(measurement='wedge_start', fields={'pid': os.getpid()})
        import time; time.sleep(0.5)  # let the batch delay send the point
        ctypes.PyDLL(None).sleep(3600)
