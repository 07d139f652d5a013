import os
import sys

from datakit_framework import DataKitFramework


class Top(DataKitFramework):
    """A root module of a git repo's script folder; says what its process
    environment looks like."""
    name = 'Top'
    interval = 0.5

    def run(self):
        self.feed_metric(measurement='top', fields={
            'utf8': sys.getfilesystemencoding() == 'utf-8',
            'home_set': 'HOME' in os.environ,
            'path_set': 'PATH' in os.environ,
        })
