# A hand-run measurement (BENCHMARKS.md, "report() with points the fast
# path leaves to the reference path"): one report() of 200 000 points, one
# in a hundred with a backslash in a tag value (a Windows path), which the
# one-pass encoder leaves to the reference path. Prints the call's rate on
# stderr.
import sys
import time

from datakit_framework import DataKitFramework


class ReportBackslash(DataKitFramework):
    name = 'report_backslash'
    interval = 10

    def run(self):
        n = 200000
        pts = [{'measurement': 'm',
                'tags': {'a': 'C:\\dir' if i % 100 == 0 else 'x', 'b': 'y'},
                'fields': {'v': i, 'f': 1.5}} for i in range(n)]
        t = time.perf_counter()
        self.report({'M': pts})
        d = time.perf_counter() - t
        sys.stderr.write('report(): %d points, 1 in 100 with a backslash: %.3f s, %.0f points/s\n'
                         % (n, d, n / d))
