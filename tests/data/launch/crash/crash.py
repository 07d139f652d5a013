import os
import subprocess

from datakit_framework import DataKitFramework


class Crash(DataKitFramework):
    """Reports a point every 0.2 s. The first worker ever (no `crashed`
    marker beside this file) starts a child, writes its pid to `child`, and
    takes the worker down with os._exit(3) on its third run."""
    name = 'Crash'
    interval = 0.2
    runs = 0

    def run(self):
        cls = type(self)
        cls.runs += 1
        here = os.path.dirname(__file__)
        self.feed_metric(measurement='crash', tags={'pid': str(os.getpid())}, fields={'run': cls.runs})
        marker = os.path.join(here, 'crashed')
        if cls.runs == 3 and not os.path.exists(marker):
            child = subprocess.Popen(['/bin/sleep', '1237'])
            with open(os.path.join(here, 'child'), 'w') as f:
                f.write(str(child.pid))
            with open(marker, 'w') as f:
                f.write(str(os.getpid()))
            os._exit(3)
