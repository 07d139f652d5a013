# Kills its worker process on every run (like a segfaulting C extension).
import os

from datakit_framework import DataKitFramework


class Quitter(DataKitFramework):
    name = 'quitter'
    interval = 0.5

    def run(self):
        os._exit(1)
