# Scenario 1: feed_metric 20 000 times in one run, then the loop's duration.
import time
from datakit_framework import DataKitFramework


class Feed(DataKitFramework):
    interval = 3600

    def run(self):
        time.sleep(1.0)
        t0 = time.time(); p0 = time.perf_counter()
        for i in range(20000):
            self.feed_metric(measurement='m', tags={'host': 'h1', 'region': 'eu', 'app': 'a'},
                             fields={'i': i, 'f': 1.5, 's': 'x', 'b': True})
        dt = time.perf_counter() - p0
        self.feed_metric(measurement='bench_result', fields={'loop_s': dt, 'start_unix': t0})
