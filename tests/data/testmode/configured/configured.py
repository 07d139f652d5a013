# Reports an environment variable that the block's `envs` sets, so that a
# test can see the input ran as configured.
import os
from datakit_framework import DataKitFramework


class Configured(DataKitFramework):
    name = 'configured'
    interval = 10

    def run(self):
        self.feed_metric(measurement='configured',
                         fields={'from_env': os.environ.get('PYTHOND_TEST_FROM_ENVS', 'unset')})
