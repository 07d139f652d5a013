import subprocess

from datakit_framework import DataKitFramework


class Waited(DataKitFramework):
    """Starts a child that exits with 7 at once and asks for its status only
    on the next run, 20 s later: past the 10 s after which an idle thread of
    a runtime's blocking pool would end (handing its children to the main
    thread), and the 5 s after which the worker reaps an adopted zombie. The
    worker's reaper must leave it to Python."""
    name = 'Waited'
    interval = 20
    child = None

    def run(self):
        cls = type(self)
        if cls.child is None:
            cls.child = subprocess.Popen(['/bin/sh', '-c', 'exit 7'])
            return
        self.feed_metric(measurement='waited', fields={'returncode': cls.child.wait()})
