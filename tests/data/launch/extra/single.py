from datakit_framework import DataKitFramework


class Single(DataKitFramework):
    """A file entry of `dirs`: DataKit names it `single` but does not put its
    folder on sys.path."""
    name = 'Single'
    interval = 0.5

    def run(self):
        self.feed_metric(measurement='single', fields={'v': 1})
