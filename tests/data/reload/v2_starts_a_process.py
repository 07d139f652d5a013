# v2, starting a process at import that holds the worker's stdout and
# stderr open (it inherits them) and records its pid in <datakit>/pids.txt.
import os
import subprocess

from datakit_framework import DataKitFramework

_child = subprocess.Popen(['sleep', '60'])
with open(os.path.join(os.path.dirname(__file__), '..', '..', 'pids.txt'), 'a') as f:
    f.write('%d\n' % _child.pid)


class Edited(DataKitFramework):
    name = 'edited'
    interval = 0.3

    def run(self):
        self.feed_metric(measurement='version', fields={'v': 2})
