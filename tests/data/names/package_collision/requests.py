# A collector whose file name is an installed package's (`requests`).
from datakit_framework import DataKitFramework


class RequestsCollector(DataKitFramework):
    name = 'requests_collector'

    def run(self):
        self.feed_metric(measurement='requests_collector', fields={'v': 1})
