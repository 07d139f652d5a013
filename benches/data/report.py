# Scenario 2: one report() of N points. Also measured in the same run: the
# time Python takes to build those point dicts, how often another Python
# thread got the interpreter during report() (it is detached while points
# are checked and encoded), and the memory the call added.
import threading
import time
from datakit_framework import DataKitFramework

N = 1000000


def status_kib(key):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


class Report(DataKitFramework):
    interval = 3600

    def run(self):
        time.sleep(1.0)
        p0 = time.perf_counter()
        pts = [{'measurement': 'm', 'tags': {'host': 'h1', 'region': 'eu', 'app': 'a'},
                'fields': {'i': i, 'f': 1.5, 's': 'x', 'b': True}} for i in range(N)]
        build_s = time.perf_counter() - p0
        ticks = []
        stop = []

        def other():
            while not stop:
                ticks.append(time.perf_counter())
                time.sleep(0.001)

        th = threading.Thread(target=other)
        th.start()
        time.sleep(0.05)
        try:
            # Reset the peak RSS: what report() and the delivery add is read
            # by the benchmark once every point has arrived.
            with open('/proc/self/clear_refs', 'w') as f:
                f.write('5')
        except OSError:
            pass
        rss0 = status_kib('VmRSS')
        t0 = time.time()
        p0 = time.perf_counter()
        self.report({'M': pts})
        p1 = time.perf_counter()
        stop.append(1)
        th.join()
        during = sum(1 for t in ticks if p0 < t < p1)
        self.feed_metric(measurement='bench_result', fields={
            'n': N, 'report_s': p1 - p0, 'build_s': build_s, 'start_unix': t0,
            'rss_before_kib': rss0, 'other_thread_ticks': during})
