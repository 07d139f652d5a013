# Internal to pythond: loads script modules and picks the classes to run.
# Kept in Python because it is Python's import machinery; the daemon calls
# these functions and gets plain values back.
import importlib.machinery
import importlib.util
import os
import sys

import datakit_framework

# sys.path and the modules loaded when this loader is created, which the
# daemon does before it adds the script folders to sys.path: what a script
# file must not shadow.
_BASE_PATH = list(sys.path)
_BASE_MODULES = frozenset(sys.modules)
_STDLIB = frozenset(getattr(sys, "stdlib_module_names", ())) | frozenset(sys.builtin_module_names)


class RunTimeout(BaseException):
    """Raised inside a run() that outlived its timeout. A BaseException, like
    KeyboardInterrupt, so that `except Exception:` in a script cannot swallow it."""


class SourceOnlyLoader(importlib.machinery.SourceFileLoader):
    """Compiles a script from its source every time: never reads nor writes
    `__pycache__`. A cached .pyc is trusted when the source's mtime (whole
    seconds) and size match, so an edit saved within the same second with
    the same size (`v = 1` -> `v = 2`) would run the old code after a
    reload; and scripts' folders are the administrator's, not ours to write
    caches into."""

    def get_code(self, fullname):
        path = self.get_filename(fullname)
        return self.source_to_code(self.get_data(path), path)

    def set_data(self, path, data, *, _mode=0o666):
        pass


_SCRIPT_DIRS = set()


def _script_dir_hook(path):
    """sys.path_hooks entry: script folders get a finder with the source-only
    loader; every other folder is left to the usual finders."""
    if os.path.realpath(path) not in _SCRIPT_DIRS:
        raise ImportError("not a script folder")
    return importlib.machinery.FileFinder(
        path,
        (SourceOnlyLoader, importlib.machinery.SOURCE_SUFFIXES),
        (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES),
    )


def add_script_folders(dirs):
    """Put the script folders at the end of sys.path (a folder already on it,
    e.g. through PYTHONPATH, stays where it is); they are no "installed
    package" for name_taken(). What is imported from them (the scripts and
    the helpers they import by name) is always compiled from source."""
    global _BASE_PATH
    _BASE_PATH = [p for p in _BASE_PATH if p not in dirs]
    for d in dirs:
        _SCRIPT_DIRS.add(os.path.realpath(d))
        sys.path_importer_cache.pop(d, None)
        if d not in sys.path:
            sys.path.append(d)
    if _script_dir_hook not in sys.path_hooks:
        sys.path_hooks.insert(0, _script_dir_hook)


def _find_without_scripts(name, path=None):
    """The spec the import system finds for `name` with sys.path as it was
    before the script folders were added (builtins, frozen modules, the
    standard library, site-packages, .pth and editable-install finders)."""
    saved = sys.path
    sys.path = list(_BASE_PATH)
    try:
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            try:
                spec = find(name, path)
            except Exception:
                continue
            if spec is not None:
                return spec
    finally:
        sys.path = saved
    return None


def _spec_of(name):
    module = sys.modules.get(name) if name in _BASE_MODULES else None
    spec = getattr(module, "__spec__", None)
    return spec if spec is not None else _find_without_scripts(name)


def _where(spec):
    if spec.origin and spec.origin not in ("built-in", "frozen"):
        return spec.origin
    locations = list(spec.submodule_search_locations or ())
    return locations[0] if locations else (spec.origin or "?")


def name_taken(name):
    """None when a script may be imported as module `name`; else (kind, what)
    it would shadow for every other module of the interpreter: kind is
    "framework" (pythond's own datakit_framework), "stdlib" or "installed".
    `sub.file` collides only when `sub` is a real package with a module
    `file` (so `sub.json` is fine)."""
    top, _, rest = name.partition(".")
    if name == "datakit_framework":
        return ("framework", name)
    if not rest:
        if name in _STDLIB:
            return ("stdlib", name)
        if name in _BASE_MODULES:
            return ("installed", "%s (already loaded)" % name)
        spec = _find_without_scripts(name)
        if spec is not None:
            return ("installed", "%s (%s)" % (name, _where(spec)))
        return None
    if name in _BASE_MODULES:
        return ("stdlib" if top in _STDLIB else "installed", name)
    top_spec = _spec_of(top)
    if top_spec is None or not top_spec.submodule_search_locations:
        return None
    sub = importlib.machinery.PathFinder.find_spec(name, list(top_spec.submodule_search_locations))
    if sub is None:
        return None
    if top in _STDLIB:
        return ("stdlib", name)
    return ("installed", "%s (%s)" % (name, _where(sub)))


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except (OSError, TypeError):
        return False


def load_module(name, path):
    """Import the file at `path` as module `name` (exactly that file). A
    module another script already imported from that file (a helper imported
    by name) is reused, not executed twice."""
    known = sys.modules.get(name)
    if known is not None and _same_file(getattr(known, "__file__", None), path):
        return known
    spec = importlib.util.spec_from_file_location(
        name, path, loader=SourceOnlyLoader(name, path)
    )
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


def _internal(tb):
    name = tb.tb_frame.f_code.co_filename
    return name == "pythond_loader.py" or name.startswith("<frozen importlib")


def format_exception(exc, tb=None):
    # Imported here: `traceback` (with linecache, tokenize, re...) is ~1 MiB
    # of every idle worker whose scripts never fail.
    import traceback

    if tb is None:
        tb = exc.__traceback__
    # The loader's and importlib's own frames above the script's say nothing
    # to its author.
    first = tb
    while first is not None and _internal(first):
        first = first.tb_next
    return "".join(traceback.format_exception(type(exc), exc, first or tb))


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
