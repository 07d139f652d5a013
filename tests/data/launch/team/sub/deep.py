from datakit_framework import DataKitFramework


class Deep(DataKitFramework):
    """A module one folder down: DataKit names it `sub.deep`."""
    name = 'Deep'
    interval = 0.5

    def run(self):
        self.feed_metric(measurement='deep', fields={'v': 1})
