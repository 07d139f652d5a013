# One log point whose body the fake DataKit rejects with 400 ("poison").
from datakit_framework import DataKitFramework


class Bad(DataKitFramework):
    interval = 60

    def run(self):
        self.feed_logging(input='badin', source='poison', message='x')
