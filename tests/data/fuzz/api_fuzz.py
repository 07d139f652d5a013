# The property test's script: every DataKitFramework method, called with random
# malformed arguments (wrong types, NaN/inf, deep and cyclic nesting, huge
# ints, control characters, wrong-typed keys), either returns a str (its
# points are queued) or raises ValueError/TypeError; the worker never dies.
#
# `fuzz.json` beside this file gives {"seeds": [...], "calls": N,
# "datakit": "http://127.0.0.1:PORT"} (where http_post_* may post). For each
# seed, N calls from a random.Random(seed), spread over runs of BATCH calls;
# then one `fuzz_summary` point (tag `seed`) with the counts and the first
# unexpected outcomes. The test compares the points DataKit received with
# `points` (what the calls that returned should have queued).
import collections
import datetime
import decimal
import enum
import fractions
import json
import math
import os
import random
import traceback

from datakit_framework import DataKitFramework

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "fuzz.json")) as f:
    CONFIG = json.load(f)

BATCH = 250
REPORT_KEYS = ("M", "L", "R", "O", "CO", "E")
STATUSES = ("ok", "info", "warning", "error", "critical", "nodata")

# Characters names and strings are made of: the separators line protocol
# escapes, the line breaks it must refuse, other control characters, quotes,
# backslashes, non-ASCII, a lone surrogate.
CHARS = (
    ["a", "b", "Z", "0", "7", "_", ".", "-", "/"] * 4
    + [" ", ",", "=", '"', "'", "\\", "#"]
    + ["\n", "\r", "\t", "\x00", "\x01", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\u2028"]
    + ["\u00e9", "\u4e2d", "\U0001f600", "\ud800"]
)

HUGE_INTS = [
    2**63 - 1, -(2**63), 2**63, 2**64 - 1, 2**64, -(2**63) - 1,
    2**127, -(2**127), 2**128, 10**30, 10**400, -(10**400),
]
ODD_FLOATS = [
    0.0, -0.0, 1.5, -2.25, float("nan"), float("inf"), float("-inf"),
    1e308, -1e308, 5e-324, 9.2e18, 1e19, 1.7e9, 1716544492.5,
]


class Index(object):
    """A number-like whose __index__ returns `v` (numpy-style)."""

    def __init__(self, v):
        self.v = v

    def __index__(self):
        return self.v


class Floaty(object):
    def __init__(self, v):
        self.v = v

    def __float__(self):
        return self.v


class Broken(object):
    """Every conversion raises; repr raises too."""

    def __index__(self):
        raise RuntimeError("no index")

    def __float__(self):
        raise RuntimeError("no float")

    def __repr__(self):
        raise RuntimeError("no repr")

    def __str__(self):
        raise ValueError("no str")

    def __hash__(self):
        return 7

    def __eq__(self, other):
        return self is other


class Mutator(object):
    """Converting it changes the dict it sits in (script code run by the
    converter through __float__)."""

    def __init__(self, target):
        self.target = target

    def __float__(self):
        self.target.clear()
        for i in range(50):
            self.target["added%d" % i] = i
        return 1.0


class Mapping(object):
    """Dict-like but not a dict."""

    def keys(self):
        return ["a"]

    def __getitem__(self, k):
        return 1


class Name(str):
    pass


class Count(int):
    pass


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2**70


class Gen(object):
    def __init__(self, rng):
        self.r = rng

    def chance(self, p):
        return self.r.random() < p

    def text(self, maxlen=10):
        return "".join(self.r.choice(CHARS) for _ in range(self.r.randint(0, maxlen)))

    def name(self):
        """A plain name most of the time, else any text."""
        if self.chance(0.75):
            return self.r.choice(["cpu", "mem", "disk", "net", "host", "load", "x"]) + str(self.r.randint(0, 99))
        return self.text()

    def scalar(self):
        k = self.r.randint(0, 17)
        if k == 0:
            return None
        if k == 1:
            return self.r.choice([True, False])
        if k == 2:
            return self.r.randint(-1000, 1000)
        if k == 3:
            return self.r.choice(HUGE_INTS)
        if k == 4:
            return self.r.choice(ODD_FLOATS)
        if k == 5:
            return self.r.uniform(-1e6, 1e6)
        if k in (6, 7):
            return self.text(30)
        if k == 8:
            return bytes(self.r.randint(0, 255) for _ in range(self.r.randint(0, 8)))
        if k == 9:
            return bytearray(b"\x00\xff")
        if k == 10:
            return self.r.choice([complex(1, 2), decimal.Decimal("1.5"), decimal.Decimal("NaN"),
                                  decimal.Decimal("sNaN"), decimal.Decimal("1e500"),
                                  fractions.Fraction(1, 3)])
        if k == 11:
            return self.r.choice([datetime.datetime(2024, 5, 24), object(), set([1]), frozenset(),
                                  range(3), Mapping(), Broken(), type, len, memoryview(b"ab"),
                                  Name("sub"), Count(3), Level.LOW, Level.HIGH, 1.5j])
        if k == 12:
            return Index(self.r.choice([1, -5, 2**64, 10**100]))
        if k == 13:
            return Floaty(self.r.choice([1.25, float("nan"), float("inf")]))
        if k == 14:
            return "x" * self.r.choice([0, 1, 300, 70000])
        if k == 15:
            return self.r.choice(["\ud800", "a\x00b", "line1\nline2", "tab\there", "\\", "a\\"])
        if k == 16:
            return self.r.choice([-1, 0, 1]) * self.r.random() * 10 ** self.r.randint(0, 20)
        return self.text(5)

    def deep_list(self):
        v = [1]
        for _ in range(self.r.choice([2, 50, 3000, 100000])):
            v = [v]
        return v

    def deep_dict(self):
        v = {"a": 1}
        for _ in range(self.r.choice([2, 50, 3000, 100000])):
            v = {"k": v}
        return v

    def cyclic(self):
        k = self.r.randint(0, 3)
        if k == 0:
            v = [1]
            v.append(v)
        elif k == 1:
            v = {"a": 1}
            v["self"] = v
        elif k == 2:
            inner = []
            v = (1, inner)
            inner.append(v)
        else:
            a, b = [], []
            a.append(b)
            b.append(a)
            v = a
        return v

    def value(self):
        """Any value: usually a scalar, sometimes a container, nested, cyclic."""
        k = self.r.random()
        if k < 0.55:
            return self.scalar()
        if k < 0.7:
            if self.chance(0.5):
                same = self.r.choice([lambda: self.r.randint(0, 9), lambda: self.text(3),
                                      lambda: self.r.random(), lambda: True])
                return [same() for _ in range(self.r.randint(0, 5))]
            return [self.scalar() for _ in range(self.r.randint(0, 5))]
        if k < 0.76:
            return tuple(self.scalar() for _ in range(self.r.randint(0, 3)))
        if k < 0.82:
            return {self.key(): self.scalar() for _ in range(self.r.randint(0, 3))}
        if k < 0.88:
            return self.cyclic()
        if k < 0.92:
            return self.deep_list()
        if k < 0.95:
            return self.deep_dict()
        return [[self.scalar()], [self.scalar(), [self.scalar()]]]

    def key(self):
        if self.chance(0.88):
            return self.name()
        return self.r.choice([1, 1.5, None, (1, 2), b"k", frozenset([1]), True, float("nan"),
                              10**400, Broken(), (1,) * 500])

    def good_scalar(self):
        return self.r.choice([
            lambda: self.r.randint(-10**6, 10**6),
            lambda: self.r.uniform(-1e3, 1e3),
            lambda: self.text(8).replace("\ud800", ""),
            lambda: self.r.choice([True, False]),
            lambda: [self.r.randint(0, 9) for _ in range(3)],
        ])()

    def tags(self):
        """A tags argument: mostly a dict of names to strings, else anything."""
        if self.chance(0.6):
            return {self.name(): self.r.choice([self.name(), self.r.randint(0, 9)])
                    for _ in range(self.r.randint(0, 3))}
        return self.mapping()

    def fields(self):
        if self.chance(0.6):
            return {self.name(): self.good_scalar() for _ in range(self.r.randint(1, 4))}
        return self.mapping()

    def mapping(self):
        """A dict of anything to anything, or something else entirely."""
        k = self.r.random()
        if k < 0.6:
            d = {self.key(): self.value() for _ in range(self.r.randint(0, 5))}
            if self.chance(0.1):
                d = collections.OrderedDict(d)
            if self.chance(0.1):
                d["m"] = Mutator(d)
            return d
        if k < 0.7:
            return [(self.name(), self.value())]
        if k < 0.8:
            return self.cyclic()
        return self.value()

    def time(self):
        if self.chance(0.5):
            return None
        return self.r.choice([
            lambda: self.r.randint(1_600_000_000, 1_800_000_000),
            lambda: self.r.randint(1_600_000_000_000, 1_800_000_000_000),
            lambda: self.r.uniform(1.6e9, 1.8e9),
            lambda: self.r.choice(HUGE_INTS),
            lambda: self.r.choice(ODD_FLOATS),
            lambda: self.value(),
        ])()

    def arg(self, good):
        """`good()` most of the time, else any value."""
        return good() if self.chance(0.75) else self.value()

    def kwargs(self):
        return {self.name().replace("\ud800", "") or "k": self.arg(self.good_scalar)
                for _ in range(self.r.randint(0, 2))}

    def point(self):
        if self.chance(0.1):
            return self.value()
        p = {}
        if self.chance(0.95):
            p["measurement"] = self.arg(self.name)
        if self.chance(0.8):
            p["tags"] = self.tags()
        if self.chance(0.95):
            p["fields"] = self.fields()
        if self.chance(0.4):
            p["time"] = self.time()
        return p


# Each returns (method name, thunk, points it queues if it returns).

def call_report(g, fw):
    if g.chance(0.05):
        data = g.value()
        return "report", lambda: fw.report(data), 0
    data = {}
    points = 0
    for key in REPORT_KEYS:
        if g.chance(0.3):
            if g.chance(0.1):
                data[key] = g.value()
            else:
                data[key] = [g.point() for _ in range(g.r.randint(0, 4))]
    for key in ("M", "L"):
        if key not in data and g.chance(0.3):
            data[key] = [g.point()]
    if g.chance(0.4):
        data["input"] = g.arg(g.name)
    if g.chance(0.3):
        data["precision"] = g.arg(lambda: g.r.choice(["n", "u", "ms", "s", "m", "h", "x", ""]))
    if g.chance(0.2):
        data["ignore_global_tags"] = g.arg(lambda: g.r.choice([True, "false", "1"]))
    if g.chance(0.2):
        data["version"] = g.arg(g.name)
    if g.chance(0.05):
        data[g.key()] = g.value()
    for key in REPORT_KEYS:
        v = data.get(key)
        if isinstance(v, (list, tuple)):
            points += len(v)
    return "report", lambda: fw.report(data), points


def call_feed_metric(g, fw):
    kw = dict(input=g.arg(g.name) if g.chance(0.3) else None, measurement=g.arg(g.name),
              tags=g.tags() if g.chance(0.7) else None, fields=g.fields(), time=g.time())
    extra = g.kwargs()
    if g.chance(0.3):
        args = (kw["input"], kw["measurement"], kw["tags"], kw["fields"], kw["time"])
        return "feed_metric", lambda: fw.feed_metric(*args, **extra), 1
    return "feed_metric", lambda: fw.feed_metric(**dict(kw, **extra)), 1


def call_feed_logging(g, fw):
    kw = dict(source=g.arg(g.name), tags=g.tags() if g.chance(0.6) else None,
              message=g.arg(lambda: g.text(40)), time=g.time())
    extra = g.kwargs()
    if g.chance(0.3):
        args = (None, kw["source"], kw["tags"], kw["message"], kw["time"])
        return "feed_logging", lambda: fw.feed_logging(*args, **extra), 1
    return "feed_logging", lambda: fw.feed_logging(**dict(kw, **extra)), 1


def call_feed_object(g, fw):
    kw = dict(cls=g.arg(g.name), name=g.arg(g.name) if g.chance(0.7) else None,
              tags=g.tags() if g.chance(0.5) else None, fields=g.fields(), time=g.time())
    extra = g.kwargs()
    return "feed_object", lambda: fw.feed_object(**dict(kw, **extra)), 1


def event_args(g):
    return dict(
        tags=g.tags() if g.chance(0.5) else None,
        df_date_range=g.arg(lambda: g.r.choice([10, 60, 0])),
        df_status=g.arg(lambda: g.r.choice(STATUSES)),
        df_event_id=g.arg(g.name),
        df_title=g.arg(lambda: g.text(20)),
        df_message=g.arg(lambda: g.text(40)) if g.chance(0.7) else None,
    )


def call_feed_user_event(g, fw):
    kw = event_args(g)
    kw["df_user_id"] = g.arg(g.name)
    extra = g.kwargs()
    return "feed_user_event", lambda: fw.feed_user_event(**dict(kw, **extra)), 1


def call_feed_monitor_event(g, fw):
    kw = event_args(g)
    kw["df_dimension_tags"] = g.r.choice([
        lambda: '{"host":"web01"}',
        lambda: {"host": g.name()},
        lambda: g.mapping(),
        lambda: g.value(),
    ])()
    extra = g.kwargs()
    return "feed_monitor_event", lambda: fw.feed_monitor_event(**dict(kw, **extra)), 1


def call_feed_system_event(g, fw):
    kw = event_args(g)
    extra = g.kwargs()
    return "feed_system_event", lambda: fw.feed_system_event(**dict(kw, **extra)), 1


def call_set_lasterror(g, fw):
    a, b = g.arg(g.name), g.arg(lambda: g.text(40))
    return "set_lasterror", lambda: fw.set_lasterror(a, b), 0


def post_url(g):
    """Where http_post_* go: the fake DataKit under /fuzz/ (never a /v1/
    path: those would be points), a closed port, malformed URLs, or not a
    str at all. Never a name to resolve nor an address off this machine."""
    return g.r.choice([
        lambda: CONFIG["datakit"] + "/fuzz/" + g.text(8),
        lambda: CONFIG["datakit"] + "/fuzz/post",
        lambda: "http://127.0.0.1:1/fuzz",
        lambda: g.r.choice(["", "not a url", "http://[::1", "ftp://127.0.0.1/x",
                            "http://127.0.0.1:99999/x", "http://127.0.0.1:%d/\n" % 1,
                            "http://\ud800/", "/fuzz/relative"]),
        lambda: g.value(),
    ])()


def call_http_post_json(g, fw):
    url, data = post_url(g), g.value() if g.chance(0.7) else g.mapping()
    return "http_post_json", lambda: fw.http_post_json(url, data), 0


def call_http_post_raw(g, fw):
    url, data = post_url(g), g.r.choice([lambda: g.text(40), g.value, g.mapping])()
    return "http_post_raw", lambda: fw.http_post_raw(url, data), 0


def call_construct_url(g, fw):
    path = g.arg(lambda: "fuzz/" + g.text(8))
    return "construct_url", lambda: fw.construct_url(path), 0


def call_init(g, fw):
    """A new instance with (ip, port) of any kind; what it builds its URLs
    from is checked with construct_url (it reports nothing: its points
    would go where ip and port say)."""
    kw = {}
    if g.chance(0.8):
        kw["ip"] = g.arg(lambda: g.r.choice(["127.0.0.1", "localhost", "10.0.0.1", "::1", g.text(6)]))
    if g.chance(0.8):
        kw["port"] = g.arg(lambda: g.r.choice([9529, 1, 65535, 0, -1, 70000, "9529", g.text(4)]))
    cls = type(fw)
    return "__init__", lambda: cls(**kw).construct_url("x"), 0


CALLS = [call_report, call_feed_metric, call_feed_logging, call_feed_object,
         call_feed_user_event, call_feed_monitor_event, call_feed_system_event,
         call_set_lasterror, call_http_post_json, call_http_post_raw,
         call_construct_url, call_init]


def describe(e):
    tb = traceback.format_exception(type(e), e, e.__traceback__)
    return "%s: %s | %s" % (type(e).__name__, str(e)[:200], "".join(tb[-3:])[-400:])


class ApiFuzz(DataKitFramework):
    name = "api_fuzz"
    interval = 0.2
    timeout = 120

    seeds = list(CONFIG["seeds"])
    calls = int(CONFIG["calls"])
    state = None

    def start(self, seed):
        type(self).state = {
            "seed": seed, "gen": Gen(random.Random(seed)), "done": 0,
            "returned": 0, "refused": 0, "unexpected": 0, "points": 0,
            "by_method": {}, "failures": [],
        }

    def run(self):
        cls = type(self)
        if cls.state is None:
            if not cls.seeds:
                return
            self.start(cls.seeds.pop(0))
        st = cls.state
        g = st["gen"]
        for _ in range(min(BATCH, self.calls - st["done"])):
            st["done"] += 1
            method, thunk, points = g.r.choice(CALLS)(g, self)
            outcome = "returned"
            try:
                result = thunk()
            except (ValueError, TypeError):
                outcome = "refused"
            except BaseException as e:
                if type(e).__name__ == "RunTimeout":
                    raise
                outcome = "unexpected"
                if len(st["failures"]) < 10:
                    st["failures"].append("call %d %s: %s" % (st["done"], method, describe(e)))
            else:
                if not isinstance(result, str):
                    outcome = "unexpected"
                    if len(st["failures"]) < 10:
                        st["failures"].append("call %d %s returned %r" % (st["done"], method, type(result)))
                else:
                    st["points"] += points
            st[outcome] += 1
            counts = st["by_method"].setdefault(method, [0, 0])
            counts[0 if outcome == "returned" else 1] += 1
        if st["done"] >= self.calls:
            self.feed_metric(
                measurement="fuzz_summary",
                tags={"seed": str(st["seed"])},
                fields={
                    "calls": st["done"], "returned": st["returned"], "refused": st["refused"],
                    "unexpected": st["unexpected"], "points": st["points"],
                    "by_method": json.dumps(st["by_method"], sort_keys=True),
                    "failures": "\n".join(st["failures"]) or "none",
                },
            )
            cls.state = None
