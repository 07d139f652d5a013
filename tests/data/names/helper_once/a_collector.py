# Imports its helper by name before pythond reaches helper.py in the folder.
import builtins

import helper
from datakit_framework import DataKitFramework


class Collector(DataKitFramework):
    name = 'collector'

    def run(self):
        self.feed_metric(measurement='collector', fields={
            'helper_loads': builtins._pythond_helper_loads,
            'same_module': helper is __import__('sys').modules['helper'],
        })
