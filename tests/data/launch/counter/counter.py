import os

from datakit_framework import DataKitFramework


class Counter(DataKitFramework):
    """1 000 points a second (100 every 0.1 s), tagged with the worker's pid
    and numbered from 0; after each run, the count so far is written to
    produced_<pid> beside this file."""
    name = 'Counter'
    interval = 0.1
    seq = 0

    def run(self):
        pid = str(os.getpid())
        for _ in range(100):
            self.feed_metric(measurement='counter', tags={'pid': pid}, fields={'seq': type(self).seq})
            type(self).seq += 1
        produced = os.path.join(os.path.dirname(__file__), 'produced_' + pid)
        # Atomically: the worker may be killed at any moment.
        with open(produced + '.tmp', 'w') as f:
            f.write(str(type(self).seq))
        os.replace(produced + '.tmp', produced)
