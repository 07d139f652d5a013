# Three event calls that must raise ValueError (their texts are reported as
# fields e0, e1, e2), then one valid system event with tags=None.
from datakit_framework import DataKitFramework


class E(DataKitFramework):
    def run(self):
        errs = []
        for call in (
            lambda: self.feed_user_event(None, None, 10, 'info', 'id', 'title'),
            lambda: self.feed_system_event(None, 10, 'bogus', 'id', 'title'),
            lambda: self.feed_monitor_event('', None, 10, 'ok', 'id', 'title'),
        ):
            try:
                call()
            except ValueError as e:
                errs.append(str(e))
        self.feed_system_event(None, 5, 'ok', 'id', 'title')
        self.feed_metric(measurement='errs', fields={'e%d' % i: s for i, s in enumerate(errs)})
