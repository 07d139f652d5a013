# Reports, from its second run on, the seconds since its previous run: what
# a script computing rates needs `pythond test --times` for.
import time
from datakit_framework import DataKitFramework


class Delta(DataKitFramework):
    name = 'delta'
    interval = 10
    last = None

    def run(self):
        now = time.monotonic()
        if Delta.last is not None:
            self.feed_metric(measurement='delta', fields={'secs': now - Delta.last})
        Delta.last = now
