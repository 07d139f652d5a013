from datakit_framework import DataKitFramework


class Good(DataKitFramework):
    name = 'good'
    interval = 0.5

    def run(self):
        self.feed_metric(measurement='good', fields={'v': 1})
