# A report() with one bad point among good ones (nothing of that call may be
# queued), then names with trailing backslashes and an empty tag value.
from datakit_framework import DataKitFramework


class Mixed(DataKitFramework):
    name = 'mixed'
    interval = 60

    def run(self):
        good = [{'measurement': 'lost', 'fields': {'v': i}} for i in range(3)]
        try:
            self.report({'M': good + [{'measurement': 'lost', 'fields': {'v': float('nan')}}],
                         'L': [{'measurement': 'lost_log', 'fields': {'message': 'x'}}]})
            msg = 'no error'
        except ValueError as e:
            msg = str(e)
        self.report({'M': [{'measurement': 'disk\\', 'tags': {'path': 'C:\\dir\\', 'empty': ''},
                            'fields': {'used': 1}}]})
        self.feed_metric(measurement='err', fields={'msg': msg})
