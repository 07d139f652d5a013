# encoding: utf-8
"""DataKitFramework: the base class of pythond collector scripts.

This file is the Python face of pythond. The daemon embeds it as the module
`datakit_framework`, so scripts do `from datakit_framework import
DataKitFramework` with nothing to install. The argument names, defaults and
positional order of every method are those of DataKit's original framework;
the work behind them (validation, line protocol, batching, retries) is done by
the daemon's Rust core through `_pythond`, which only exists inside pythond.
The contract (arguments, defaults, errors, data rules) is `docs/compat.md`.
`report()`, `feed_metric()`, `feed_logging()` and `feed_object()` are
methods of the native base class `_pythond.DataKitFramework` (one call into
Rust, no Python frame in between); their argument names, defaults,
positional order, return values and errors are those written here before.

Differences from the original, on purpose:
- report() and feed_*() queue the points and return at once with a str; the
  network is never waited on. Bad points raise ValueError naming the point and
  the key, and nothing of that call is queued (all-or-nothing per call).
- tags=None means "no tags" for the event methods (the original raised
  TypeError).
"""

import _pythond

# `json` is imported where it is used (monitor events, http_post_json): with
# `re` and the rest it pulls in, ~1 MiB of every idle worker otherwise.

# The daemon's API object for this input (installed before this module runs).
_api = _pythond.api

__all__ = ["DataKitFramework"]

_EVENT_STATUSES = ("ok", "info", "warning", "error", "critical", "nodata")


def _as_str(method, what, v):
    """str(v) for an argument of `method`: a str as it is; a str() that
    fails (nested past the recursion limit, a raising __str__ or __repr__)
    is a ValueError naming the argument, with the failure as its cause.
    What is not an Exception (RunTimeout) passes."""
    if isinstance(v, str):
        return v
    try:
        return str(v)
    except Exception as e:
        raise ValueError(
            '%s(): argument "%s" (%s) cannot be converted to str: %s' % (method, what, type(v).__name__, e)
        ) from e


def _short_repr(v):
    """repr(v) for an error message: bounded, and never an error itself."""
    try:
        r = repr(v)
    except Exception:
        return "<%s>" % type(v).__name__
    return r if len(r) <= 80 else r[:80] + "..."


class DataKitFramework(_pythond.DataKitFramework):
    """Subclass it, set `name` and `interval`, and override `run()`."""

    name = "DataKitFramework"
    interval = 10

    # Where this instance's data goes (a `_pythond.Target`, the address as
    # pythond holds it); None means the DataKit pythond was configured with
    # (datakit.conf's [http_api] listen, or --datakit-url).
    _pythond_target = None
    __dk_host = "127.0.0.1"
    __dk_port = 9529

    def __init__(self, **kwargs):
        ip = kwargs.get("ip")
        port = kwargs.get("port")
        if ip:
            self.__dk_host = ip
        if port:
            self.__dk_port = port
        if ip or port:
            self._pythond_target = _pythond.target(
                _as_str("__init__", "ip", self.__dk_host), _as_str("__init__", "port", self.__dk_port)
            )

    def run(self):
        raise NotImplementedError()

    # -- reporting -------------------------------------------------------
    # Native, inherited from _pythond.DataKitFramework:
    #   report(self, data)
    #   feed_metric(self, input=None, measurement=None, tags=None, fields=None, time=None, **kwargs)
    #   feed_logging(self, input=None, source=None, tags=None, message=None, time=None, **kwargs)
    #   feed_object(self, input=None, cls=None, name=None, tags=None, fields=None, time=None, **kwargs)
    # They check their arguments in this order: `checkArgEmpty` of the
    # measurement argument (a class's own override is called), then for
    # feed_metric/feed_object `arguments missing "fields"` when neither
    # fields nor kwargs are given, then the points.

    def checkArgEmpty(self, name, checkStr):
        if not checkStr:
            raise ValueError('arguments missing "' + name + '"')

    def _feed_event(self, source, extra, tags, df_date_range, df_status, df_event_id, df_title, df_message, kwargs):
        self.checkArgEmpty("df_date_range", df_date_range)
        self.checkArgEmpty("df_status", df_status)
        self.checkArgEmpty("df_event_id", df_event_id)
        self.checkArgEmpty("df_title", df_title)
        if df_status not in _EVENT_STATUSES:
            raise ValueError(
                'argument "df_status" must be one of %s, got %s' % (", ".join(_EVENT_STATUSES), _short_repr(df_status))
            )
        fields = {"df_date_range": df_date_range, "df_source": source}
        fields.update(extra)
        fields["df_status"] = df_status
        fields["df_event_id"] = df_event_id
        fields["df_title"] = df_title
        fields["df_message"] = df_message if df_message else ""
        return _api.feed(self._pythond_target, "E", None, "measurement", tags, fields, None, kwargs)

    def feed_user_event(self, df_user_id=None, tags=None, df_date_range=10, df_status=None, df_event_id=None, df_title=None, df_message=None, **kwargs):
        self.checkArgEmpty("df_user_id", df_user_id)
        return self._feed_event(
            "user", {"df_user_id": df_user_id}, tags, df_date_range, df_status, df_event_id, df_title, df_message, kwargs
        )

    def feed_monitor_event(self, df_dimension_tags=None, tags=None, df_date_range=10, df_status=None, df_event_id=None, df_title=None, df_message=None, **kwargs):
        self.checkArgEmpty("df_dimension_tags", df_dimension_tags)
        if isinstance(df_dimension_tags, dict):
            # The documented form is a JSON string; accept the dict it describes.
            import json as _json
            try:
                df_dimension_tags = _json.dumps(df_dimension_tags, separators=(",", ":"))
            except RecursionError:
                raise ValueError('argument "df_dimension_tags": the dict is nested too deeply for JSON')
        return self._feed_event(
            "monitor",
            {"df_dimension_tags": df_dimension_tags},
            tags, df_date_range, df_status, df_event_id, df_title, df_message, kwargs,
        )

    def feed_system_event(self, tags=None, df_date_range=10, df_status=None, df_event_id=None, df_title=None, df_message=None, **kwargs):
        return self._feed_event(
            "system", {}, tags, df_date_range, df_status, df_event_id, df_title, df_message, kwargs
        )

    # -- other helpers scripts call ----------------------------------------

    def construct_url(self, path):
        return "http://%s:%s/%s" % (self.__dk_host, self.__dk_port, _as_str("construct_url", "path", path))

    def set_lasterror(self, input_name, err_msg):
        """Tell DataKit about an error of this input (POST /v1/lasterror); queued."""
        return _api.lasterror(self._pythond_target, input_name, err_msg)

    def http_post_json(self, url, raw_data):
        """POST `raw_data` as JSON to `url`; returns the response body ('' on failure)."""
        import json as _json
        try:
            body = _json.dumps(raw_data)
        except (ValueError, TypeError):
            raise
        except Exception as e:
            # RecursionError (nested too deeply), or a raising __str__ of a key.
            raise ValueError(
                'http_post_json(): argument "raw_data" (%s) cannot be written as JSON: %s' % (type(raw_data).__name__, e)
            ) from e
        return _api.post(url, body, True)

    def http_post_raw(self, url, raw_data):
        """POST str(raw_data) to `url`; returns the response body ('' on failure)."""
        return _api.post(url, _as_str("http_post_raw", "raw_data", raw_data), False)
