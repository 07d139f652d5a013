import time

from datakit_framework import DataKitFramework


class Keys(DataKitFramework):
    """Spins until the block's `timeout` interrupts it, and reports how long
    that took (and an int, to see numbers_as_float)."""
    name = 'Keys'
    interval = 60

    def run(self):
        t0 = time.time()
        try:
            while time.time() - t0 < 30:
                pass
        except BaseException:
            self.feed_metric(measurement='keys', fields={'elapsed': time.time() - t0, 'n': 1})
            raise
