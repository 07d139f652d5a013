# COUNT scripts in one module: classes S0, S1, ... named s0, s1, ..., every
# second. Each run sleeps 50 ms and reports in `overlap` how many runs of the
# same script were still active when it started (0 unless runs overlap).
import threading
import time

from datakit_framework import DataKitFramework

COUNT = 50
_active = {}
_lock = threading.Lock()


def _run(self):
    with _lock:
        n = _active.get(self.name, 0)
        _active[self.name] = n + 1
    time.sleep(0.05)
    self.feed_metric(measurement='tick', tags={'s': self.name}, fields={'overlap': n})
    with _lock:
        _active[self.name] -= 1


for _i in range(COUNT):
    globals()['S%d' % _i] = type('S%d' % _i, (DataKitFramework,), {
        '__module__': __name__, 'name': 's%d' % _i, 'interval': 1, 'run': _run,
    })
