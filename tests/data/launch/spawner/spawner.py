import os
import subprocess

from datakit_framework import DataKitFramework


def daemon(argv):
    """The classic double fork: a child that leaves the session and forks
    the process that runs, then exits. Returns the grandchild's pid."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setsid()
            grandchild = os.fork()
            if grandchild == 0:
                os.execv(argv[0], argv)
            os.write(w, str(grandchild).encode())
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    with os.fdopen(r) as f:
        return int(f.read())


class Spawner(DataKitFramework):
    """On its first run, starts three processes that would outlive a worker
    that did not end them: a plain child, a child in a session of its own
    (setsid), and a double-forked daemon (re-parented once its parent
    exits). Their pids go to `pids` beside this file; every run reports."""
    name = 'Spawner'
    interval = 0.5
    started = False

    def run(self):
        cls = type(self)
        if not cls.started:
            cls.started = True
            plain = subprocess.Popen(['/bin/sleep', '1234'])
            session = subprocess.Popen(['/bin/sleep', '1235'], start_new_session=True)
            cls.keep = (plain, session)
            grandchild = daemon(['/bin/sleep', '1236'])
            here = os.path.dirname(__file__)
            with open(os.path.join(here, 'pids.tmp'), 'w') as f:
                f.write('%d %d %d' % (plain.pid, session.pid, grandchild))
            os.replace(os.path.join(here, 'pids.tmp'), os.path.join(here, 'pids'))
        self.feed_metric(measurement='spawner', fields={'pid': os.getpid()})
