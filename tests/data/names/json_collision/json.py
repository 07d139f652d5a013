# A collector whose file name is the standard library's `json`.
from datakit_framework import DataKitFramework


class JsonCollector(DataKitFramework):
    name = 'json_collector'
    interval = 0.5

    def run(self):
        self.feed_metric(measurement='json_collector', fields={'v': 1})
