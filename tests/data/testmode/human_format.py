# One point of each of three categories, each with something DataKit rewrites.
from datakit_framework import DataKitFramework


class S(DataKitFramework):
    name = 'S'

    def run(self):
        self.feed_logging(source='app', message='hi', **{'a.b': 1})
        self.feed_object(cls='host', fields={'x': 1})
        self.feed_metric(measurement='m', fields={'s': 'text', 'n': 1})
