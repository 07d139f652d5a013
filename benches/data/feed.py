# Scenario 1: feed_metric one point per call, N calls a round, ROUNDS
# rounds; each round also times an empty Python method with the same
# signature called with the same arguments (the limit: what the call itself
# costs in Python). The rounds alternate, and each side's best round is
# compared: on a shared host, noise only ever adds time, and many short
# alternating rounds give both sides the same chance of a quiet one.
import time
from datakit_framework import DataKitFramework

N = 100000
ROUNDS = 10


class Feed(DataKitFramework):
    interval = 3600

    def empty(self, input=None, measurement=None, tags=None, fields=None, time=None, **kwargs):
        pass

    def run(self):
        time.sleep(1.0)
        t0 = time.time()
        feed_s = []
        empty_s = []
        for _ in range(ROUNDS):
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
            'n': N, 'rounds': ROUNDS, 'feed_best_s': min(feed_s), 'feed_worst_s': max(feed_s),
            'empty_best_s': min(empty_s), 'empty_worst_s': max(empty_s),
            'start_unix': t0, 'end_unix': end})
