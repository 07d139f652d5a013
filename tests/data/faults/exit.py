# Ends its worker process with os._exit(1) every run.
import os
from datakit_framework import DataKitFramework


class Exit(DataKitFramework):
    interval = 1

    def run(self):
        self.feed_metric(measurement='exit_ran', fields={'v': 1})
        os._exit(1)
