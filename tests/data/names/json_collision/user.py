# An ordinary script that uses the standard library's json.
import json

from datakit_framework import DataKitFramework


class User(DataKitFramework):
    name = 'user'
    interval = 0.5

    def run(self):
        self.feed_logging(source='user', message=json.dumps({'ok': True}),
                          json_file=str(getattr(json, '__file__', '')))
