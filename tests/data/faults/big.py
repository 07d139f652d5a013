# 50 points of ~200 bytes every 0.1 s, seq counting up: fills a small spool.
from datakit_framework import DataKitFramework


class Big(DataKitFramework):
    interval = 0.1
    n = 0

    def run(self):
        pts = [{'measurement': 'big', 'fields': {'seq': type(self).n + i, 'pad': 'x' * 200}} for i in range(50)]
        type(self).n += 50
        self.report({'M': pts})
