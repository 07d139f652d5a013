# Module `same` in input-a's folder; its twin in the other folder reports from_b.
from datakit_framework import DataKitFramework


class S(DataKitFramework):
    interval = 60

    def run(self):
        self.feed_metric(input='x', measurement='from_a', fields={'v': 1})
