# Prints a lot: about 100 KiB per run, every 0.2 s, starting 2 s after it was
# loaded (so that the other scripts are seen running before).
import time

from datakit_framework import DataKitFramework

LINE = 'chatter ' + 'x' * 92
LOADED = time.monotonic()


class Chatter(DataKitFramework):
    name = 'chatter'
    interval = 0.2

    def run(self):
        if time.monotonic() - LOADED < 2:
            return
        for i in range(1000):
            print(LINE, i)
