# About 500 points a second: 50 points per run, every 0.1 s. `seq` counts on
# across restarts of the daemon: the number of points handed to report() so
# far is kept in `produced_steady` beside this file (written after report()
# returned, atomically), and a restarted script continues from it.
import os

from datakit_framework import DataKitFramework

_STATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'produced_steady')


def _produced():
    try:
        with open(_STATE) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


class Steady(DataKitFramework):
    name = 'steady'
    interval = 0.1
    seq = _produced()

    def run(self):
        cls = type(self)
        points = [{'measurement': 'steady', 'fields': {'seq': cls.seq + i}} for i in range(50)]
        self.report({'M': points})
        cls.seq += len(points)
        tmp = _STATE + '.tmp'
        with open(tmp, 'w') as f:
            f.write(str(cls.seq))
        os.replace(tmp, _STATE)
