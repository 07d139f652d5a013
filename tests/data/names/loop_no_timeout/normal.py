from datakit_framework import DataKitFramework


class Normal(DataKitFramework):
    name = 'normal'
    interval = 10

    def run(self):
        self.feed_metric(measurement='normal', fields={'v': 1})
