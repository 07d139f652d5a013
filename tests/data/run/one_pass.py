# Each case is fed twice, in a row: with plain dicts (the one-pass path:
# read, checked and written straight into the line) and with dict
# subclasses (which that path does not read: the reference path). Both
# calls must raise the same error or queue the same line; the test compares
# the lines of each pair, this script the errors, and it reports the count
# of pairs queued and the errors that differed in one `one_pass_summary`.
from datakit_framework import DataKitFramework


class D(dict):
    pass


def sub(v):
    return D(v) if type(v) is dict else v


ESC = 'a,b c=d"e\\f'
CASES = [
    # (measurement, tags, fields, time, input)
    ('m', {'host': 'h1', 'region': 'eu', 'app': 'a'}, {'i': 1, 'f': 1.5, 's': 'x', 'b': True}, None, None),
    ('m', {'host': 'h1'}, {'i': -7, 'f': -0.0, 's': '', 'b': False}, 1700000000, None),
    ('m', None, {'v': 1}, 1700000000123, 'in_put'),
    ('m', {}, {'v': 2}, 1700000000123456, ''),
    ('m', {'t': 'v'}, {'v': 3}, 1700000000123456789, None),
    ('m', {'t': 'v'}, {'v': 4}, 1.5e9, None),
    ('m', {'t': 'v'}, {'v': 5}, 1700000000.25, None),
    ('m e,x', {ESC: ESC}, {ESC: ESC, 'n': 'line\nbreak\ttab'}, 1, None),
    ('m', {'t': 'with\\backslash'}, {'v': 1}, 1, None),
    ('m', {'t': 'trailing\\'}, {'v': 1}, 1, None),
    ('m', {'k': 'v'}, {'s': 'back\\slash "quoted"'}, 1, None),
    ('m', {'empty': '', 'none': None, 'kept': 'k'}, {'v': 1, 'n': None}, 1, None),
    ('m', {'t': 1, 'b': True, 'f': 2.5, 'z': 0}, {'v': 1}, 1, None),
    ('m', {'t': float('inf')}, {'v': 1}, 1, None),
    ('m', {'t': 'x'}, {'v': float('nan')}, 1, None),
    ('m', {'t': 'x'}, {'v': float('-inf')}, 1, None),
    ('m', {'same': 'x'}, {'same': 1}, 1, None),
    ('m', {'same': None}, {'same': 1}, 1, None),
    ('m', {'same': ''}, {'same': 1}, 1, None),
    ('m', {'same': 'x'}, {'same': None, 'v': 1}, 1, None),
    ('m', {'t': 'x'}, {'n': None}, 1, None),
    ('m', {'t': 'x'}, {}, 1, None),
    ('m', {'t': 'x'}, None, 1, None),
    ('m', {'t': 'x'}, {'big': 2 ** 63}, 1, None),
    ('m', {'t': 'x'}, {'small': -2 ** 63, 'max': 2 ** 63 - 1}, 1, None),
    ('m', {'t': 2 ** 64}, {'v': 1}, 1, None),
    ('m', {'t': 'x'}, {'v': 1}, 'noon', None),
    ('m', {'t': 'x'}, {'v': 1}, True, None),
    ('m', {'t': 'x'}, {'v': 1}, 2 ** 70, None),
    ('m', {'t': 'x'}, {'v': 1}, float('nan'), None),
    ('m', {'t': 'x'}, {'v': 1}, -5, None),
    ('m', {'t': 'x'}, {'v': 1}, 1, 7),
    ('m', {'t': 'x'}, {'v': 1}, 1, 'bad input&'),
    ('#m', {'t': 'x'}, {'v': 1}, 1, None),
    ('', {'t': 'x'}, {'v': 1}, 1, None),
    (5, {'t': 'x'}, {'v': 1}, 1, None),
    ('m', {'': 'x'}, {'v': 1}, 1, None),
    ('m', {'t': 'x'}, {'': 1}, 1, None),
    ('m', {'t': 'x'}, {'bad\nkey': 1}, 1, None),
    ('m', {'bad\tkey': 'x'}, {'v': 1}, 1, None),
    ('m', {'t': 'x\0y'}, {'v': 1}, 1, None),
    ('m', {1: 'x'}, {'v': 1}, 1, None),
    ('m', {'t': 'x'}, {2: 1}, 1, None),
    ('m', {'t': ['x']}, {'v': 1}, 1, None),
    ('m', {'t': 'x'}, {'v': [1, 2]}, 1, None),
    ('m', {'t': 'x'}, {'v': b'bytes'}, 1, None),
    ('mé', {'clé': 'vâleur', 'émoji': '\U0001f600'}, {'champ': 'ünïcode', 'v': 1}, 1, None),
    ('m', {'t': '\ud800'}, {'v': 1}, 1, None),
    ('m', {'t': 'x'}, {'v': '\udfff'}, 1, None),
    # The input's tags (from_block = 'tag', other = 'o'): added unless the
    # point uses the key, as a tag or a field, even one that is dropped.
    ('m', {'from_block': 'mine'}, {'v': 1}, 1, None),
    ('m', {'t': 'x'}, {'from_block': 1}, 1, None),
    ('m', {'t': 'x'}, {'from_block': None, 'v': 1}, 1, None),
    ('m', {'from_block': None}, {'v': 1}, 1, None),
    ('m', {'other': ''}, {'v': 1}, 1, None),
    ('m', None, {'v': 1}, 1, None),
    ('m', {'z' * 100: 'y' * 300}, {'k%d' % i: i for i in range(40)}, 1, None),
    ('m', {'k%d' % i: 'v' for i in range(30)}, {'f%d' % i: i for i in range(30)}, 1, None),
    ('m', {'k%d' % i: 'v' for i in range(30)}, {'k%d' % i: i for i in range(29, 31)}, 1, None),
]


def outcome(f):
    try:
        r = f()
        return 'ok %r' % (r,)
    except Exception as e:
        return '%s: %s' % (type(e).__name__, e)


class OnePass(DataKitFramework):
    name = 'one_pass'
    interval = 3600

    def run(self):
        queued = 0
        differ = []
        calls = []
        for (m, tags, fields, t, inp) in CASES:
            for method in ('metric', 'object', 'object_named', 'logging', 'metric_kwargs'):
                calls.append((method, m, tags, fields, t, inp))
        for (method, m, tags, fields, t, inp) in calls:
            def call(tags, fields):
                if method == 'metric':
                    return self.feed_metric(input=inp, measurement=m, tags=tags, fields=fields, time=t)
                if method == 'metric_kwargs':
                    return self.feed_metric(input=inp, measurement=m, tags=tags, fields=fields, time=t, kw=1.25)
                if method == 'object':
                    return self.feed_object(input=inp, cls=m, tags=tags, fields=fields, time=t)
                if method == 'object_named':
                    return self.feed_object(input=inp, cls=m, name='n1', tags=tags, fields=fields, time=t)
                message = (list(fields.values()) or [None])[0] if fields else None
                return self.feed_logging(input=inp, source=m, tags=tags, message=message, time=t)
            fast = outcome(lambda: call(tags, fields))
            ref = outcome(lambda: call(sub(tags), sub(fields)))
            if fast != ref:
                differ.append('%s %r %r %r %r %r: %s | %s' % (method, m, tags, fields, t, inp, fast, ref))
            elif fast.startswith('ok'):
                queued += 1
        self.feed_metric(measurement='one_pass_summary', fields={
            'queued': queued, 'calls': len(calls), 'differ': ' || '.join(differ)})
