from datakit_framework import DataKitFramework


class G(DataKitFramework):
    def run(self):
        self.feed_metric(measurement='g', fields={'v': 1})
