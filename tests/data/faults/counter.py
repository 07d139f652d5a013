# tests/util.rs `counter_script`: 5 points a run with seq = 0, 1, 2..., and the
# number produced so far written to `produced_<name>` beside this file.
# The test replaces the PARAMS line with its own values.
PARAMS = {'name': 'Counter', 'measurement': 'counter', 'interval': 1}
import os
from datakit_framework import DataKitFramework


class Counter(DataKitFramework):
    name = PARAMS['name']
    interval = PARAMS['interval']
    seq = 0

    def run(self):
        for _ in range(5):
            self.feed_metric(measurement=PARAMS['measurement'], fields={'seq': type(self).seq})
            type(self).seq += 1
        with open(os.path.join(os.path.dirname(__file__), 'produced_' + PARAMS['name']), 'w') as f:
            f.write(str(type(self).seq))
