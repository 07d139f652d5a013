from datakit_framework import DataKitFramework


class Edited(DataKitFramework):
    name = 'edited'
    interval = 0.3

    def run(self):
        self.feed_metric(measurement='version', fields={'v': 2})
