# A collector whose file name is the standard library's `cmd` (which pdb imports).
from datakit_framework import DataKitFramework


class CmdCollector(DataKitFramework):
    name = 'cmd_collector'

    def run(self):
        self.feed_metric(measurement='cmd_collector', fields={'v': 1})
