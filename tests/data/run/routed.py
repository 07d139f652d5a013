# Sends to its own DataKit (ip and port given to __init__) and reports the
# variable the input's `envs` sets. The test replaces the PARAMS line.
PARAMS = {'port': 9529}
import os
from datakit_framework import DataKitFramework


class Routed(DataKitFramework):
    interval = 60

    def __init__(self, **kwargs):
        super().__init__(ip='127.0.0.1', port=PARAMS['port'])

    def run(self):
        self.feed_metric(measurement='routed', fields={'env': os.environ.get('PYTHOND_TEST_ENV', 'missing')})
