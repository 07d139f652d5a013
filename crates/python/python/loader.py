# Internal to pythond: loads script modules and picks the classes to run.
# Kept in Python because it is Python's import machinery; the daemon calls
# these functions and gets plain values back.
import importlib.util
import sys
import traceback

import datakit_framework


class RunTimeout(BaseException):
    """Raised inside a run() that outlived its timeout. A BaseException, like
    KeyboardInterrupt, so that `except Exception:` in a script cannot swallow it."""


def load_module(name, path):
    """Import the file at `path` as module `name` (exactly that file, even when
    a module of that name exists elsewhere on sys.path, e.g. stdlib `test`)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError("cannot load %s as a Python module" % path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def plugin_classes(module):
    """Classes defined in `module` that subclass DataKitFramework and override run()."""
    base = datakit_framework.DataKitFramework
    found = []
    for obj in list(vars(module).values()):
        if not isinstance(obj, type) or obj is base or not issubclass(obj, base):
            continue
        if obj.__module__ != module.__name__:
            continue
        if getattr(obj, "run", None) is base.run:
            continue
        found.append(obj)
    return found


def describe(instance):
    """(name, interval seconds, timeout seconds or None) of an instance, with
    the original's fallback of 10 s for a missing or non-positive interval."""
    name = getattr(instance, "name", None)
    if not isinstance(name, str) or not name or name == datakit_framework.DataKitFramework.name:
        # A script that does not set `name` is known by its class name rather
        # than by the base class's placeholder.
        name = type(instance).__name__
    interval = getattr(instance, "interval", 10)
    try:
        interval = float(interval)
    except (TypeError, ValueError):
        interval = 10.0
    if not interval > 0:
        interval = 10.0
    timeout = getattr(instance, "timeout", None)
    try:
        timeout = float(timeout) if timeout is not None else None
        if timeout is not None and not timeout > 0:
            timeout = None
    except (TypeError, ValueError):
        timeout = None
    return name, interval, timeout


def format_exception(exc):
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


class ScriptOutput(object):
    """sys.stdout / sys.stderr replacement: lines go to the daemon's log with
    the name of the script that printed them; never a pipe that can fill."""

    def __init__(self, stream):
        self._stream = stream
        self.encoding = "utf-8"
        self.errors = "replace"

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError("write() argument must be str, not %s" % type(s).__name__)
        import _pythond
        _pythond.output(self._stream, s)
        return len(s)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        import _pythond
        _pythond.output_flush(self._stream)

    def isatty(self):
        return False

    def readable(self):
        return False

    def writable(self):
        return True

    def seekable(self):
        return False

    def fileno(self):
        import io
        raise io.UnsupportedOperation("fileno")
