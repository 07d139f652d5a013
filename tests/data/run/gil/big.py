# report() calls of a list big enough to take 0.2 s at least, until another
# script's runs have been seen running inside one of them. A run can slip in
# at the edges of a call that holds the interpreter (right after t0 is taken,
# or just before t1 is), so "inside" means 3 runs or more within one call.
import sys
import time

from datakit_framework import DataKitFramework


def point(i):
    return {'measurement': 'big', 'tags': {'host': 'h1', 'region': 'eu'},
            'fields': {'i': i, 'f': 1.5, 's': 'x'}}


class Big(DataKitFramework):
    interval = 3600

    def run(self):
        ticks = sys.__dict__.setdefault('_pythond_test_ticks', [])
        end = time.monotonic() + 10
        while not ticks and time.monotonic() < end:
            time.sleep(0.05)
        pts = [point(i) for i in range(25000)]
        most = 0
        for attempt in range(1, 21):
            t0 = time.monotonic()
            self.report({'M': pts})
            t1 = time.monotonic()
            inside = len([t for t in list(ticks) if t0 < t < t1])
            most = max(most, inside)
            if t1 - t0 < 0.2 and len(pts) < 1600000:
                pts.extend(point(i) for i in range(len(pts), 2 * len(pts)))
                continue
            if inside >= 3:
                self.feed_metric(measurement='gil', fields={'free': True, 'attempts': attempt,
                                                            'inside': inside,
                                                            'report_ms': (t1 - t0) * 1000})
                return
        self.feed_metric(measurement='gil', fields={'free': False, 'most_inside': most})
