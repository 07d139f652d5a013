# An ordinary script that uses the installed `requests` package.
import requests

from datakit_framework import DataKitFramework


class UsesRequests(DataKitFramework):
    name = 'uses_requests'

    def run(self):
        self.feed_logging(source='uses_requests', message='ok',
                          has_session=hasattr(requests, 'Session'),
                          requests_file=str(getattr(requests, '__file__', '')))
