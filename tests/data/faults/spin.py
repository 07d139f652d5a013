# Spins past its timeout; `except Exception` must not swallow RunTimeout.
from datakit_framework import DataKitFramework


class Spin(DataKitFramework):
    name = 'spin'
    interval = 1
    timeout = 0.5

    def run(self):
        self.feed_metric(measurement='spin_start', fields={'v': 1})
        try:
            while True:
                pass
        except Exception:
            self.feed_metric(measurement='swallowed', fields={'v': 1})
