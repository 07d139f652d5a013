# A list that contains itself, as a field value: the call must raise
# ValueError (nothing queued), not overflow the worker's stack.
from datakit_framework import DataKitFramework


class SelfRef(DataKitFramework):
    name = 'selfref'
    interval = 0.5

    def run(self):
        loop = [1]
        loop.append(loop)
        try:
            self.feed_metric(measurement='selfref_queued', fields={'loop': loop})
            outcome = 'queued'
        except ValueError as e:
            outcome = 'ValueError: %s' % e
        except Exception as e:  # any other exception is a wrong answer, but not a crash
            outcome = '%s: %s' % (type(e).__name__, e)
        self.feed_logging(source='selfref_outcome', message=outcome)
