# Python, but not the runner DataKit renders: no sys.path.append of
# <datakit>/python.d/core, no main("module", ...).
import sys

print("hello", sys.argv)
