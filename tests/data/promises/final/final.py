# Reports 50 000 points in one run that lasts about 2 s (2 500 points every
# 0.04 s), so that a SIGTERM arriving during the run leaves the run's last
# points for the daemon's final flush. `started` beside this file says the run
# began; `reported` holds the number of points report() accepted so far.
import os
import time

from datakit_framework import DataKitFramework

HERE = os.path.dirname(os.path.abspath(__file__))
CHUNKS = 20
PER_CHUNK = 2500


def _write(name, value):
    tmp = os.path.join(HERE, name + '.tmp')
    with open(tmp, 'w') as f:
        f.write(str(value))
    os.replace(tmp, os.path.join(HERE, name))


class Final(DataKitFramework):
    name = 'final'
    interval = 3600

    def run(self):
        _write('started', 1)
        seq = 0
        for _ in range(CHUNKS):
            self.report({'M': [{'measurement': 'final', 'fields': {'seq': seq + i}}
                               for i in range(PER_CHUNK)]})
            seq += PER_CHUNK
            _write('reported', seq)
            time.sleep(0.1)
