# At import, starts a process that inherits the worker's stdout and stderr
# and outlives it by far (a daemon a module starts); its pid goes to
# `grandchild.pid` beside this file, so the test can stop it.
import os
import subprocess

from datakit_framework import DataKitFramework

_p = subprocess.Popen(['sleep', '600'])
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'grandchild.pid'), 'w') as f:
    f.write(str(_p.pid))


class Grandparent(DataKitFramework):
    name = 'grandparent'
    interval = 3600

    def run(self):
        pass
