from datakit_framework import DataKitFramework


class Loops(DataKitFramework):
    name = 'loops'
    interval = 1
    timeout = 0.4

    def run(self):
        while True:
            pass
