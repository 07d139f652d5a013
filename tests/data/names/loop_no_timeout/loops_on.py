# run() never returns, and the class sets no timeout: the block's timeout,
# else the default, applies.
from datakit_framework import DataKitFramework


class LoopsOn(DataKitFramework):
    name = 'loops_on'
    interval = 10

    def run(self):
        self.feed_metric(measurement='loops_on_started', fields={'v': 1})
        while True:
            pass
