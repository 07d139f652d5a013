# Blocked in C (time.sleep) far past its timeout: the interrupt cannot reach it.
import time
from datakit_framework import DataKitFramework


class Sleeper(DataKitFramework):
    name = 'sleeper'
    interval = 1
    timeout = 0.3

    def run(self):
        time.sleep(10**6)
