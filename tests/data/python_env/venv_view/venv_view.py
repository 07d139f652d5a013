# What a script sees of its Python environment: which packages import,
# sys.prefix, sys.path, and the builtins site would have set.
import builtins
import os
import sys

from datakit_framework import DataKitFramework


def importable(name):
    try:
        __import__(name)
        return True
    except ImportError:
        return False


class VenvView(DataKitFramework):
    name = 'venv_view'
    interval = 1

    def run(self):
        self.feed_metric(
            measurement='venv_view',
            fields={
                'probe': importable('pythond_venv_probe'),
                'pip': importable('pip'),
                'exit_builtin': hasattr(builtins, 'exit'),
                'prefix': sys.prefix,
                'path': os.pathsep.join(sys.path),
            },
        )
