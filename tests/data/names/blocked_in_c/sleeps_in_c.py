# run() blocks in C: the timeout's interrupt cannot reach it.
import time

from datakit_framework import DataKitFramework


class SleepsInC(DataKitFramework):
    name = 'sleeps_in_c'
    interval = 10
    timeout = 1

    def run(self):
        time.sleep(10 ** 6)
