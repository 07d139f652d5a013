from datakit_framework import DataKitFramework


class Plain(DataKitFramework):
    interval = 60

    def run(self):
        self.feed_metric(measurement='plain', fields={'v': 1})
