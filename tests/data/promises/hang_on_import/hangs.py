# Blocks forever while being imported (in C: no Python-level interrupt reaches it).
import time

time.sleep(10 ** 6)
