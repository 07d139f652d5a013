# time=1.5 with precision "s": either kept as 1.5 s or refused with ValueError.
from datakit_framework import DataKitFramework


class FloatTime(DataKitFramework):
    name = 'float_time'

    def run(self):
        try:
            self.report({'M': [{'measurement': 'float_time', 'fields': {'v': 1}, 'time': 1.5}],
                         'precision': 's'})
        except ValueError as e:
            self.feed_metric(measurement='float_time_refused', fields={'error': str(e)})
