from base import MyBase
from helper import double


class Collector(MyBase):
    name = 'collector'

    def run(self):
        self.feed_metric(measurement='collector', fields={'v': double(self.common())})
