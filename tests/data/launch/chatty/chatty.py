import time

from datakit_framework import DataKitFramework


class Chatty(DataKitFramework):
    """Prints 100 lines a second (10 per run, every 0.1 s) and reports each
    run with its time, for 10 seconds."""
    name = 'Chatty'
    interval = 0.1
    seq = 0

    def run(self):
        if type(self).seq >= 100:
            return
        for i in range(10):
            print('chatty run %04d line %d: %s' % (type(self).seq, i, 'x' * 60))
        self.feed_metric(measurement='chatty', fields={'seq': type(self).seq, 't': time.time()})
        type(self).seq += 1
