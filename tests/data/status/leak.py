# Leaks 8 MB a run, and numbers its points with a counter kept in a file
# beside it, so that a restarted worker continues the sequence: the test can
# then see that nothing was lost across the restart.
import os
from datakit_framework import DataKitFramework

HERE = os.path.dirname(os.path.abspath(__file__))
STATE = os.path.join(HERE, 'leak_seq')
_hoard = []


def _next():
    try:
        with open(STATE) as f:
            return int(f.read())
    except (OSError, ValueError):
        return 0


class Leak(DataKitFramework):
    name = 'leak'
    interval = 0.2

    def run(self):
        _hoard.append(bytearray(8 << 20))
        seq = _next()
        for i in range(5):
            self.feed_metric(measurement='leak', fields={'seq': seq + i, 'pid': os.getpid()})
        with open(STATE + '.tmp', 'w') as f:
            f.write(str(seq + 5))
        os.replace(STATE + '.tmp', STATE)
