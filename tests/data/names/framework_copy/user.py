from datakit_framework import DataKitFramework


class User(DataKitFramework):
    name = 'user'

    def run(self):
        self.feed_metric(measurement='user', fields={'v': 1})
