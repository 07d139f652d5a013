# A copy of the original's python.d/core/datakit_framework.py kept among the
# scripts (the original shipped one there). pythond provides its own.
class DataKitFramework(object):
    name = 'copy'

    def run(self):
        raise RuntimeError('the copy must not replace the framework')
