# report() of a good point and a NaN one: the ValueError's text is reported.
from datakit_framework import DataKitFramework


class V(DataKitFramework):
    def run(self):
        try:
            self.report({'M': [{'measurement': 'ok', 'fields': {'a': 1}},
                               {'measurement': 'bad', 'fields': {'x': float('nan')}}]})
        except ValueError as e:
            self.feed_metric(measurement='caught', fields={'msg': str(e)})
