# run() never returns (some published scripts loop inside run()).
from datakit_framework import DataKitFramework


class Loops(DataKitFramework):
    name = 'loops'
    interval = 10
    timeout = 2

    def run(self):
        self.feed_metric(measurement='loops_started', fields={'v': 1})
        while True:
            pass
