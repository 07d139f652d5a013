# Starts a process at import that would outlive `pythond test` (its pid in
# pid.txt beside this file).
import os
import subprocess

from datakit_framework import DataKitFramework

_child = subprocess.Popen(['sleep', '60'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
with open(os.path.join(os.path.dirname(__file__), 'pid.txt'), 'w') as f:
    f.write('%d\n' % _child.pid)


class Starts(DataKitFramework):
    name = 'starts'
    interval = 10

    def run(self):
        self.feed_metric(measurement='m', fields={'v': 1})
