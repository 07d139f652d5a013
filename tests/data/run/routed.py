# Sends to its own DataKit (ip and port given to __init__) and reports the
# variable the input's `envs` sets; report(), an event and set_lasterror go
# there too. The test replaces the PARAMS line.
PARAMS = {'port': 9529}
import os
from datakit_framework import DataKitFramework


class Routed(DataKitFramework):
    interval = 60

    def __init__(self, **kwargs):
        super().__init__(ip='127.0.0.1', port=PARAMS['port'])

    def run(self):
        self.feed_metric(measurement='routed', fields={'env': os.environ.get('PYTHOND_TEST_ENV', 'missing')})
        self.report({'M': [{'measurement': 'routed_report', 'fields': {'v': 1}}]})
        self.feed_system_event(df_status='ok', df_event_id='e1', df_title='routed_event')
        self.set_lasterror('r', 'routed error')
