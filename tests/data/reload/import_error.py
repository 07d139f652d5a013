# Valid Python, but it imports a module that does not exist: a broken edit
# the dry load must catch (reports version 3 if it ever ran).
import pythond_no_such_module_for_the_reload_test

from datakit_framework import DataKitFramework


class Edited(DataKitFramework):
    name = 'edited'
    interval = 0.3

    def run(self):
        self.feed_metric(measurement='version', fields={'v': 3})
