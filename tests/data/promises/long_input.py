# report() and feed_metric() with an `input` far longer than a URL may carry.
from datakit_framework import DataKitFramework


class LongInput(DataKitFramework):
    name = 'long_input'
    interval = 3600

    def run(self):
        huge = 'x' * 70000
        for call in (
            lambda: self.report({'M': [{'measurement': 'm', 'fields': {'v': 1}}], 'input': huge}),
            lambda: self.feed_metric(input=huge, measurement='m', fields={'v': 1}),
        ):
            try:
                call()
            except ValueError as e:
                self.feed_metric(measurement='refused', fields={'message': str(e)[:200]})
