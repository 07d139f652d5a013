import os
import subprocess

from datakit_framework import DataKitFramework


class Orphans(DataKitFramework):
    """Every run, a shell that starts a short sleep in the background and
    exits at once: the sleep is an orphan the worker adopts, and a zombie of
    the worker once it ends unless the worker reaps it."""
    name = 'Orphans'
    interval = 0.5

    def run(self):
        subprocess.run(['/bin/sh', '-c', '/bin/sleep 0.2 &'])
        self.feed_metric(measurement='orphans', fields={'pid': os.getpid()})
