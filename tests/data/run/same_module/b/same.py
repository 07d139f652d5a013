# Module `same` in input-b's folder; its twin in the other folder reports from_a.
from datakit_framework import DataKitFramework


class S(DataKitFramework):
    interval = 60

    def run(self):
        self.feed_metric(input='x', measurement='from_b', fields={'v': 1})
