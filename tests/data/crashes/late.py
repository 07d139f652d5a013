# Kills its worker (like a segfaulting C extension), but only 1.2 s after its
# first run: by then patient.py's run, which starts within half a second of
# it and lasts 3 s, is going. Its earlier runs do nothing.
import os
import time

from datakit_framework import DataKitFramework


class Late(DataKitFramework):
    name = 'late'
    interval = 0.5
    first = None

    def run(self):
        now = time.monotonic()
        if type(self).first is None:
            type(self).first = now
        if now - type(self).first >= 1.2:
            os._exit(1)
