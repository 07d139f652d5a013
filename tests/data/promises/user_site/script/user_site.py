# Imports a module installed with `pip install --user` for cmd's Python.
from datakit_framework import DataKitFramework


class UserSite(DataKitFramework):
    name = 'user_site'
    interval = 3600

    def run(self):
        try:
            import pythond_user_site_probe
            seen = pythond_user_site_probe.VALUE
        except ImportError as e:
            seen = 'ImportError: %s' % e
        self.feed_logging(source='user_site', message=seen)
