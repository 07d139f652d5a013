# Scenario 4: COUNT scripts in one module (classes S0, S1, ... named s0, s1,
# ...), every second, 10 points a run in one report().
from datakit_framework import DataKitFramework

COUNT = 200


def _run(self):
    self.report({'M': [{'measurement': 'tick', 'tags': {'s': self.name}, 'fields': {'v': j}} for j in range(10)]})


for _i in range(COUNT):
    globals()['S%d' % _i] = type('S%d' % _i, (DataKitFramework,), {
        '__module__': __name__, 'name': 's%d' % _i, 'interval': 1, 'run': _run,
    })
