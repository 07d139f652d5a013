# Scenario 1: feed_metric one point per call, N calls, three rounds; each
# round also times an empty Python method with the same signature called
# with the same arguments (the limit: what the call itself costs in Python).
import time
from datakit_framework import DataKitFramework

N = 200000


class Feed(DataKitFramework):
    interval = 3600

    def empty(self, input=None, measurement=None, tags=None, fields=None, time=None, **kwargs):
        pass

    def run(self):
        time.sleep(1.0)
        t0 = time.time()
        feed_s = []
        empty_s = []
        for _ in range(3):
            p0 = time.perf_counter()
            for i in range(N):
                self.feed_metric(measurement='m', tags={'host': 'h1', 'region': 'eu', 'app': 'a'},
                                 fields={'i': i, 'f': 1.5, 's': 'x', 'b': True})
            feed_s.append(time.perf_counter() - p0)
            p0 = time.perf_counter()
            for i in range(N):
                self.empty(measurement='m', tags={'host': 'h1', 'region': 'eu', 'app': 'a'},
                           fields={'i': i, 'f': 1.5, 's': 'x', 'b': True})
            empty_s.append(time.perf_counter() - p0)
        end = time.time()
        self.feed_metric(measurement='bench_result', fields={
            'n': N, 'rounds': 3, 'feed_best_s': min(feed_s), 'feed_worst_s': max(feed_s),
            'empty_best_s': min(empty_s), 'empty_worst_s': max(empty_s),
            'start_unix': t0, 'end_unix': end})
