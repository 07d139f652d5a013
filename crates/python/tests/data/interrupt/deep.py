import random
import sys
from datakit_framework import DataKitFramework

sys.setswitchinterval(1e-6)

def deep(n):
    if n == 0:
        raise ValueError('boom')
    return deep(n - 1)

class Deep(DataKitFramework):
    def run(self):
        # A random stretch of bytecode first, so that interrupts land at
        # every point of the run, its end included.
        for _ in range(random.randint(0, 3000)):
            pass
        deep(150)
