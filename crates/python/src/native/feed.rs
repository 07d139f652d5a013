//! The one-point methods (`feed_metric`, `feed_logging`, `feed_object`, the
//! events), `set_lasterror` and the blocking `http_post_*` helpers.

use std::cell::RefCell;

use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use super::read::{self, FeedPoint};
use super::Context;
use super::{finish, hand_over, hand_over_direct, hand_over_with, now_ns, Api};
use crate::convert::{optional_map, raw_value, type_name, ConvertError};
use pythond_core::lineproto::Lines;
use pythond_core::lineproto::{encode_with, LineScratch, RawPoints};
use pythond_core::point::{Category, ConvertOptions, RawPoint};
use pythond_core::route::{Route, WriteQuery};
use pythond_core::target::Target;

fn method_name(key: &str) -> &'static str {
    match key {
        "M" => "feed_metric()",
        "L" => "feed_logging()",
        "O" => "feed_object()",
        "E" => "feed_event()",
        _ => "feed()",
    }
}

/// The fields of a one-point call.
pub(super) enum Fields<'a, 'py> {
    /// A `fields` argument (a dict, or `None`).
    Map(Option<&'a Bound<'py, PyAny>>),
    /// `feed_logging`'s `{"message": message}`.
    Message(&'a Bound<'py, PyAny>),
}

/// The arguments of one `feed_*` call, as the framework passes them.
pub(super) struct FeedArgs<'a, 'py> {
    pub input: Option<&'a Bound<'py, PyAny>>,
    pub measurement: &'a Bound<'py, PyAny>,
    pub tags: Option<&'a Bound<'py, PyAny>>,
    /// `feed_object`'s `name`, set as tag `name` (tags is `None` or a plain dict).
    pub name_tag: Option<&'a Bound<'py, PyAny>>,
    pub fields: Fields<'a, 'py>,
    pub time: Option<&'a Bound<'py, PyAny>>,
    pub kwargs: Option<&'a Bound<'py, PyAny>>,
}

/// What a call reuses from the previous one on this thread: the line
/// writer's scratch, the arena the fast reader fills (calls with `kwargs`
/// or a name tag) and the lines it encodes into.
#[derive(Default)]
struct Scratch {
    line: LineScratch,
    raw: RawPoints,
    lines: Lines,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// One point of category `key`: fields = `fields` then `kwargs`.
pub(super) fn feed(
    api: &Api,
    target: Option<Target>,
    key: &str,
    args: FeedArgs<'_, '_>,
) -> PyResult<()> {
    let what = method_name(key);
    let category = Category::from_report_key(key)
        .ok_or_else(|| PyValueError::new_err(format!("unknown category key {key:?}")))?;
    let ctx = api.ctx();
    let opts = ConvertOptions {
        numbers_as_float: ctx.numbers_as_float,
        precision: None,
        now_ns: now_ns(),
    };
    if api.lines() {
        // Run mode: encoded lines. A call made from Python code that this
        // one runs (a value's `__float__` calling `feed_metric`) finds the
        // scratch in use and takes a fresh one.
        SCRATCH.with(|s| match s.try_borrow_mut() {
            Ok(mut s) => feed_lines(ctx, target, category, what, &args, &opts, &mut s),
            Err(_) => feed_lines(
                ctx,
                target,
                category,
                what,
                &args,
                &opts,
                &mut Scratch::default(),
            ),
        })
    } else {
        // Test mode: whole points.
        let (route, raw) = reference(target, category, what, &args)?;
        let mut points = ctx.sink.payload();
        points.push(finish(ctx, raw, 0, &opts, what)?);
        hand_over_direct(ctx, route, points);
        Ok(())
    }
}

fn feed_lines(
    ctx: &Context,
    target: Option<Target>,
    category: Category,
    what: &str,
    args: &FeedArgs<'_, '_>,
    opts: &ConvertOptions,
    s: &mut Scratch,
) -> PyResult<()> {
    let Some(input) = fast_input(args.input) else {
        return reference_lines(ctx, target, category, what, args, opts, s);
    };
    let route = Route {
        target,
        category,
        query: WriteQuery {
            input: input.map(str::to_owned),
            ..WriteQuery::default()
        },
    };
    let point = FeedPoint {
        measurement: args.measurement,
        tags: args.tags,
        name_tag: args.name_tag,
        fields: match args.fields {
            Fields::Map(f) => f,
            Fields::Message(_) => None,
        },
        kwargs: args.kwargs,
        time: args.time,
    };
    let Scratch { line, raw, lines } = s;
    let encoded = if args.kwargs.is_none() && args.name_tag.is_none() {
        // Read, checked and encoded in one pass, straight into the
        // script's stage.
        let message = match args.fields {
            Fields::Map(_) => None,
            Fields::Message(m) => Some(m),
        };
        hand_over_with(ctx, &route, lines, |lines| {
            lines
                .push_with(|out| read::feed_line(out, line, &point, message, opts, &ctx.input_tags))
        })
        .is_ok()
    } else {
        // `{**fields, **kwargs}` and `tags["name"] = name` first, in the
        // arena; then checked and encoded into the stage.
        let read = match args.fields {
            Fields::Map(_) => read::feed_point(raw, &point),
            Fields::Message(m) => read::feed_message(raw, &point, m),
        };
        read.is_some()
            && hand_over_with(ctx, &route, lines, |lines| {
                encode_with(raw, 0, opts, &ctx.input_tags, line, lines)
            })
            .is_ok()
    };
    if encoded {
        return Ok(());
    }
    // The fast path could not decide: the reference path says why.
    reference_lines(ctx, route.target, route.category, what, args, opts, s)
}

/// The reference path of a run-mode call: the point (or its error) by the
/// rules, its line handed over.
fn reference_lines(
    ctx: &Context,
    target: Option<Target>,
    category: Category,
    what: &str,
    args: &FeedArgs<'_, '_>,
    opts: &ConvertOptions,
    s: &mut Scratch,
) -> PyResult<()> {
    s.lines.clear();
    let (route, raw) = reference(target, category, what, args)?;
    s.lines.push(&finish(ctx, raw, 0, opts, what)?);
    hand_over(ctx, &route, &mut s.lines);
    Ok(())
}

/// The `input` argument on the fast path: `None`/`""` → no input, an exact
/// str → that; `None` (outer) for anything else (the reference path names
/// the error).
fn fast_input<'a>(input: Option<&'a Bound<'_, PyAny>>) -> Option<Option<&'a str>> {
    match input {
        None => Some(None),
        Some(v) if v.is_none() => Some(None),
        Some(v) if v.is_exact_instance_of::<PyString>() => {
            let s = v.cast::<PyString>().ok()?.to_str().ok()?;
            pythond_core::route::check_query_value(s).ok()?;
            Some((!s.is_empty()).then_some(s))
        }
        Some(_) => None,
    }
}

/// The reference path: describe every argument ([`crate::convert`]), in the
/// order of the original checks, into a [`RawPoint`] and its [`Route`].
fn reference(
    target: Option<Target>,
    category: Category,
    what: &str,
    args: &FeedArgs<'_, '_>,
) -> PyResult<(Route, RawPoint)> {
    let py = args.measurement.py();
    let err = |e: String| PyValueError::new_err(format!("{what}: {e}"));
    let conv = |e: ConvertError| e.into_pyerr(|e| format!("{what}: {e}"));
    let mut raw = RawPoint {
        measurement: raw_value(args.measurement).map_err(conv)?,
        ..RawPoint::default()
    };
    // feed_object's name on a plain dict of tags: the framework's
    // `tags = dict(tags); tags["name"] = name`.
    let tags_with_name;
    let tags = match args.name_tag {
        Some(n) => {
            let d = match args.tags {
                Some(t) if !t.is_none() => t.cast::<PyDict>()?.copy()?,
                _ => PyDict::new(py),
            };
            d.set_item("name", n)?;
            tags_with_name = d.into_any();
            Some(&tags_with_name)
        }
        None => args.tags,
    };
    optional_map(tags, "argument \"tags\"", &mut raw.tags).map_err(conv)?;
    let message_fields;
    let fields = match args.fields {
        Fields::Map(f) => f,
        Fields::Message(m) => {
            let d = PyDict::new(py);
            d.set_item("message", m)?;
            message_fields = d.into_any();
            Some(&message_fields)
        }
    };
    optional_map(fields, "argument \"fields\"", &mut raw.fields).map_err(conv)?;
    let mut extra = Vec::new();
    optional_map(args.kwargs, "keyword arguments", &mut extra).map_err(conv)?;
    for (k, v) in extra {
        // Python's {**fields, **kwargs}: a keyword replaces a field of the same name.
        if let Some(slot) = raw.fields.iter_mut().find(|(f, _)| *f == k) {
            slot.1 = v;
        } else {
            raw.fields.push((k, v));
        }
    }
    if let Some(t) = args.time {
        raw.time = raw_value(t).map_err(conv)?;
    }
    let input = match args.input {
        Some(v) if !v.is_none() => Some(
            v.cast::<PyString>()
                .map_err(|_| {
                    err(format!(
                        "argument \"input\" must be a str, got {}",
                        type_name(v)
                    ))
                })?
                .to_str()?
                .to_owned(),
        )
        .filter(|s| !s.is_empty()),
        _ => None,
    };
    if let Some(i) = &input {
        pythond_core::route::check_query_value(i)
            .map_err(|e| err(format!("argument \"input\" {e}")))?;
    }
    let route = Route {
        target,
        category,
        query: WriteQuery {
            input,
            ..WriteQuery::default()
        },
    };
    Ok((route, raw))
}

/// `set_lasterror(input, message)`: queued, answered with "".
pub(super) fn lasterror(
    api: &Api,
    target: Option<Target>,
    input: &Bound<'_, PyAny>,
    message: &Bound<'_, PyAny>,
) -> PyResult<String> {
    let input = text_arg(input, "input_name")?;
    let message = text_arg(message, "err_msg")?;
    api.ctx().sink.lasterror(target, &input, &message);
    Ok(String::new())
}

/// A `set_lasterror` argument as text: a str as it is, anything else through
/// `str()`, as the original's JSON body would have carried it. A `str()`
/// that fails (a list nested past the recursion limit, a raising `__str__`)
/// is a `ValueError` naming the argument, with the failure as its cause;
/// what is not an `Exception` (`RunTimeout`) is passed on.
fn text_arg(v: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    let py = v.py();
    let s = match v.cast::<PyString>() {
        Ok(s) => s.clone(),
        Err(_) => match v.str() {
            Ok(s) => s,
            Err(e) if e.is_instance_of::<PyException>(py) => {
                let err = PyValueError::new_err(format!(
                    "set_lasterror(): argument \"{what}\" ({}) cannot be converted to str: {e}",
                    type_name(v)
                ));
                err.set_cause(py, Some(e));
                return Err(err);
            }
            Err(e) => return Err(e),
        },
    };
    Ok(s.to_str()?.to_owned())
}

/// `http_post_json` / `http_post_raw`: blocks the calling script (not the
/// others: detached from Python) and returns the body, "" on failure as the
/// original did.
pub(super) fn post(api: &Api, py: Python<'_>, url: String, body: String, json: bool) -> String {
    let sink = &api.ctx().sink;
    let script = crate::current_script();
    let result = py.detach(|| sink.post(&url, body, json));
    result.unwrap_or_else(|e| {
        tracing::warn!(target: "pythond::writer", script = %script, "POST {url} failed: {e}");
        String::new()
    })
}
