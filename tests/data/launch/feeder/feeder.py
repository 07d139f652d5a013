import os
import time

from datakit_framework import DataKitFramework


class Feeder(DataKitFramework):
    """About 1 000 points a second from inside one long run (10 points every
    10 ms for 1.9 s of every 2 s), so that points wait in the writer's batch
    for its linger, not for the end of the run. Tagged with the worker's pid
    and numbered from 0; after every 10 points the count so far is written
    (atomically) to produced_<pid> beside this file."""
    name = 'Feeder'
    interval = 2
    seq = 0

    def run(self):
        pid = str(os.getpid())
        here = os.path.dirname(__file__)
        produced = os.path.join(here, 'produced_' + pid)
        end = time.monotonic() + 1.9
        while time.monotonic() < end:
            for _ in range(10):
                self.feed_metric(measurement='counter', tags={'pid': pid}, fields={'seq': type(self).seq})
                type(self).seq += 1
            tmp = produced + '.tmp'
            with open(tmp, 'w') as f:
                f.write(str(type(self).seq))
            os.replace(tmp, produced)
            time.sleep(0.01)
