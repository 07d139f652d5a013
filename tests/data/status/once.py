# Seven metric points and two logging points, in one run, then nothing for an hour.
from datakit_framework import DataKitFramework


class Once(DataKitFramework):
    name = 'once'
    interval = 3600

    def run(self):
        for i in range(7):
            self.feed_metric(measurement='once', fields={'i': i})
        self.report({'L': [{'measurement': 'once_log', 'fields': {'message': 'x', 'status': 'info'}},
                           {'measurement': 'once_log', 'fields': {'message': 'y', 'status': 'info'}}]})
