# Scenario 2: one report() of 100 000 points, then the call's duration.
import time
from datakit_framework import DataKitFramework


class Report(DataKitFramework):
    interval = 3600

    def run(self):
        time.sleep(1.0)
        pts = [{'measurement': 'm', 'tags': {'host': 'h1', 'region': 'eu', 'app': 'a'},
                'fields': {'i': i, 'f': 1.5, 's': 'x', 'b': True}} for i in range(100000)]
        t0 = time.time(); p0 = time.perf_counter()
        self.report({'M': pts})
        dt = time.perf_counter() - p0
        self.feed_metric(measurement='bench_result', fields={'report_s': dt, 'start_unix': t0})
