# Stands for the datakit_framework.py DataKit releases into python.d/core.
# pythond's own framework must win: importing this one is an error.
raise ImportError("DataKit's python.d/core/datakit_framework.py was imported instead of pythond's")
