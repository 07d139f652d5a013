from datakit_framework import DataKitFramework


class VenvUser(DataKitFramework):
    """Imports a module installed only in the venv PYTHOND_PYTHON names."""
    name = 'VenvUser'
    interval = 3600

    def run(self):
        try:
            import launch_venv_probe
            seen = launch_venv_probe.VALUE
        except ImportError as e:
            seen = 'ImportError: %s' % e
        self.feed_logging(source='venv_user', message=seen)
