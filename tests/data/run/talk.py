# Prints to stdout and stderr: both must reach the log with script=talker.
from datakit_framework import DataKitFramework


class Talk(DataKitFramework):
    name = 'talker'
    interval = 60

    def run(self):
        print('hello from the script')
        import sys
        print('to stderr', file=sys.stderr)
        self.feed_metric(measurement='m', fields={'v': 1})
