# A collector in a subfolder named like a standard module: its module is
# `sub.json`, which shadows nothing, so it runs.
import json

from datakit_framework import DataKitFramework


class SubJson(DataKitFramework):
    name = 'sub_json'

    def run(self):
        self.feed_logging(source='sub_json', message=json.dumps({'ok': True}),
                          json_file=str(getattr(json, '__file__', '')))
