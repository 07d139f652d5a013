import os
import time
from datakit_framework import DataKitFramework

HERE = os.path.dirname(os.path.abspath(__file__))

class Spin(DataKitFramework):
    def run(self):
        open(os.path.join(HERE, 'started'), 'w').close()
        end = time.monotonic() + 10
        while time.monotonic() < end and not os.path.exists(os.path.join(HERE, 'stop')):
            pass
