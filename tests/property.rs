//! Every `DataKitFramework` method, driven with
//! random malformed arguments in a real worker, either queues its points or
//! raises `ValueError`/`TypeError`, and the worker never dies.
//!
//! The calls are made inside Python (`tests/data/fuzz/api_fuzz.py`, a
//! `random.Random(seed)` per seed), which is where a script makes them; the
//! script checks each outcome and reports one `fuzz_summary` point per seed.
//! This side checks that the worker was never restarted, that no summary
//! counts an unexpected outcome, and that what arrived at the fake DataKit is
//! exactly what the calls that returned queued, every line read by
//! influxdata's parser (not ours).
//!
//! Seeds: two fixed ones and one from the clock, or `PYTHOND_FUZZ_SEEDS`
//! (comma-separated) to replay a failure; every message names the seeds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use testkit::FakeDataKit;

use crate::fixtures::*;
use crate::util::*;

const CALLS_PER_SEED: usize = 2000;

/// Every method of `DataKitFramework` a script calls (the property's scope).
const METHODS: [&str; 12] = [
    "report",
    "feed_metric",
    "feed_logging",
    "feed_object",
    "feed_user_event",
    "feed_monitor_event",
    "feed_system_event",
    "set_lasterror",
    "http_post_json",
    "http_post_raw",
    "construct_url",
    "__init__",
];

fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("PYTHOND_FUZZ_SEEDS") {
        return s
            .split(',')
            .map(|x| x.trim().parse().expect("PYTHOND_FUZZ_SEEDS: numbers"))
            .collect();
    }
    let clock = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        % 1_000_000_007;
    vec![1, 9, clock]
}

/// The `fuzz_summary` points received so far.
fn summaries(dk: &FakeDataKit) -> Vec<Seen> {
    parse_all(dk)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.measurement == "fuzz_summary")
        .collect()
}

fn field<'a>(p: &'a Seen, key: &str) -> &'a str {
    p.fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("summary without {key}: {p:?}"))
}

fn int_field(p: &Seen, key: &str) -> usize {
    field(p, key)
        .strip_prefix("i:")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{key} is not an int: {p:?}"))
}

/// The line of `body` starting at byte `start`, rewritten for the
/// independent parser, and where the next line starts. `None` when the line
/// is malformed in a way this scan sees.
///
/// Two things that parser reads differently from DataKit are translated, the
/// rest of the line is left to it:
/// - DataKit's extensions (arrays `[1i,2i]`, binary `"..."b`) become `0i`
///   once checked to be well formed (brackets close, quoted strings end).
///   The parser's own line splitter is not used either: it takes a comma
///   inside an array for a field separator and then misreads a newline in a
///   later string.
/// - Names (see `crates/core/src/lineproto.rs`): DataKit's parser unescapes
///   only `\,` `\ ` `\=` and keeps any other backslash as it is, where the
///   independent parser reads `\\` as one backslash. [`to_influx_name`].
fn next_line(body: &str, start: usize) -> Option<(String, usize)> {
    let b = body.as_bytes();
    // In names a separator is escaped when the byte before it is a backslash
    // (names never end with one: the point rules strip them).
    let name_end = |mut i: usize, stop: &[u8]| -> usize {
        while i < b.len() && !(stop.contains(&b[i]) && (i == 0 || b[i - 1] != b'\\')) {
            i += 1;
        }
        i
    };
    let mut i = name_end(start, b" \n");
    if b.get(i) != Some(&b' ') {
        return None;
    }
    let mut out = to_influx_name(body.get(start..i)?);
    out.push(' ');
    // A quoted string from `b[i] == '"'`: the index after its closing quote.
    let quoted = |mut i: usize| -> Option<usize> {
        i += 1;
        while i < b.len() && b[i] != b'"' {
            i += if b[i] == b'\\' { 2 } else { 1 };
        }
        (i < b.len()).then_some(i + 1)
    };
    i += 1;
    loop {
        let key_end = name_end(i, b"=\n");
        if b.get(key_end) != Some(&b'=') {
            return None;
        }
        out.push_str(&to_influx_name(body.get(i..key_end)?));
        out.push('=');
        i = key_end + 1;
        let v = i;
        match b.get(i)? {
            b'"' => {
                i = quoted(i)?;
                if b.get(i) == Some(&b'b') {
                    i += 1;
                    out.push_str("0i");
                } else {
                    out.push_str(body.get(v..i)?);
                }
            }
            b'[' => {
                i += 1;
                while *b.get(i)? != b']' {
                    i = if b[i] == b'"' { quoted(i)? } else { i + 1 };
                }
                i += 1;
                out.push_str("0i");
            }
            _ => {
                while i < b.len() && !matches!(b[i], b',' | b' ' | b'\n') {
                    i += 1;
                }
                out.push_str(body.get(v..i)?);
            }
        }
        if b.get(i) == Some(&b',') {
            out.push(',');
            i += 1;
            continue;
        }
        // The timestamp, if any, to the end of the line.
        let end = body[i..].find('\n').map_or(b.len(), |n| i + n);
        out.push_str(body.get(i..end)?);
        return Some((out, (end + 1).min(b.len())));
    }
}

/// A name (measurement and tags, or a field key) as DataKit reads it,
/// written for the independent parser: a backslash before `,` space or `=`
/// escapes it in both; any other backslash is literal to DataKit and is
/// doubled, which the independent parser reads back as one.
fn to_influx_name(wire: &str) -> String {
    let mut out = String::with_capacity(wire.len());
    let mut chars = wire.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some(&n)) if matches!(n, ',' | ' ' | '=') => {
                out.push('\\');
                out.push(n);
                chars.next();
            }
            ('\\', _) => out.push_str("\\\\"),
            (c, _) => out.push(c),
        }
    }
    out
}

/// Every point of every accepted write, read by influxdata's parser over
/// the whole body (a string field may hold a newline). `Err` names the first
/// line it could not read.
fn parse_all(dk: &FakeDataKit) -> Result<Vec<Seen>, String> {
    let mut points = Vec::new();
    for r in dk.accepted() {
        if !r.path.starts_with("/v1/write/") {
            continue;
        }
        let body = std::str::from_utf8(&r.body)
            .map_err(|e| format!("a body to {} is not UTF-8: {e}", r.path))?;
        let mut at = 0;
        while at < body.len() {
            if body.as_bytes()[at] == b'\n' {
                at += 1;
                continue;
            }
            let (line, next) = next_line(body, at)
                .ok_or_else(|| format!("{}: a malformed line at byte {at} of:\n{body}", r.path))?;
            let raw = &body[at..next];
            at = next;
            let mut parsed = influxdb_line_protocol::parse_lines(&line);
            let p = match (parsed.next(), parsed.next()) {
                (Some(Ok(p)), None) => p,
                (Some(Err(e)), _) => return Err(format!("{}: {e} in {raw:?}", r.path)),
                _ => return Err(format!("{}: not one line: {raw:?}", r.path)),
            };
            points.push(Seen {
                measurement: p.series.measurement.to_string(),
                tags: p
                    .series
                    .tag_set
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                fields: p
                    .field_set
                    .iter()
                    .map(|(k, v)| (k.to_string(), field_text(v)))
                    .collect(),
                time: p.timestamp,
            });
        }
    }
    Ok(points)
}

#[test]
fn every_api_method_queues_or_raises_value_or_type_error_and_the_worker_survives() {
    let seeds = seeds();
    let dk = FakeDataKit::start();
    let dir = datakit_with(
        &dk.addr().to_string(),
        &[("fuzz/api_fuzz.py", "fuzz/api_fuzz.py")],
        &block("fuzz", &["fuzz"], ""),
    );
    std::fs::write(
        dir.path().join("python.d/fuzz/fuzz.json"),
        format!(
            "{{\"seeds\": {seeds:?}, \"calls\": {CALLS_PER_SEED}, \"datakit\": \"{}\"}}",
            dk.url()
        ),
    )
    .unwrap();
    let d = Daemon::start(&dir, &[]);
    // Stops early on a line that does not parse: that is the failure.
    let all_done = dk.wait_until(Duration::from_secs(240), |dk| {
        parse_all(dk).map_or(true, |_| summaries(dk).len() >= seeds.len())
    });
    let ctx = format!("seeds {seeds:?} (replay: PYTHOND_FUZZ_SEEDS=...)");
    if let Err(e) = parse_all(&dk) {
        drop(d);
        panic!("{ctx}: a line DataKit received does not parse: {e}");
    }
    let sums = summaries(&dk);
    let expected: usize = sums.iter().map(|p| int_field(p, "points")).sum();
    // Everything the calls queued arrives (the last batch may linger).
    let parsed_all = dk.wait_until(Duration::from_secs(20), |dk| {
        parse_all(dk).map_or(true, |m| m.len() >= expected + sums.len())
    });
    let (_, err) = d.stop();
    assert_no_panic(&err);
    assert!(all_done, "{ctx}: a summary per seed, got {sums:?}\n{err}");
    assert_eq!(
        err.matches("worker started").count(),
        1,
        "{ctx}: the worker never restarted:\n{err}"
    );
    assert!(!err.contains("worker exited"), "{ctx}:\n{err}");
    for p in &sums {
        let seed = p.tags.iter().find(|(k, _)| k == "seed").unwrap().1.clone();
        eprintln!(
            "seed {seed}: {} calls, {} returned, {} refused, {} points; by method {}",
            int_field(p, "calls"),
            int_field(p, "returned"),
            int_field(p, "refused"),
            int_field(p, "points"),
            field(p, "by_method")
        );
        assert_eq!(int_field(p, "calls"), CALLS_PER_SEED);
        // Every method was driven (returned, refused).
        let by: serde_json::Value =
            serde_json::from_str(field(p, "by_method").trim_start_matches("s:"))
                .unwrap_or_else(|e| panic!("by_method is not JSON ({e}): {p:?}"));
        for m in METHODS {
            let n = &by[m];
            assert!(
                n[0].as_u64().unwrap_or(0) + n[1].as_u64().unwrap_or(0) > 0,
                "seed {seed}: {m} was never called: {by}"
            );
        }
        for m in ["http_post_json", "http_post_raw"] {
            assert!(
                by[m][0].as_u64() > Some(0) && by[m][1].as_u64() > Some(0),
                "seed {seed}: {m} both returned and refused: {by}"
            );
        }
        assert_eq!(
            int_field(p, "unexpected"),
            0,
            "seed {seed} (PYTHOND_FUZZ_SEEDS={seed}): calls that neither returned a str nor \
             raised ValueError/TypeError:\n{}",
            field(p, "failures")
        );
        // Both outcomes were exercised, so the property says something.
        assert!(
            int_field(p, "returned") > CALLS_PER_SEED / 10,
            "seed {seed}: {p:?}"
        );
        assert!(
            int_field(p, "refused") > CALLS_PER_SEED / 10,
            "seed {seed}: {p:?}"
        );
    }
    let received = match parse_all(&dk) {
        Ok(p) => p,
        Err(e) => panic!("{ctx}: a line DataKit received does not parse: {e}"),
    };
    assert!(parsed_all, "{ctx}: waited for {expected} points");
    let points = received
        .iter()
        .filter(|p| p.measurement != "fuzz_summary")
        .count();
    assert_eq!(
        points, expected,
        "{ctx}: every call that returned queued its points, and only those arrived"
    );
    assert!(
        dk.requests().iter().any(|r| r.path.starts_with("/fuzz/")),
        "{ctx}: http_post_* reached DataKit"
    );
    // set_lasterror was called with odd values too: each post is JSON.
    for r in dk.requests().iter().filter(|r| r.path == "/v1/lasterror") {
        let v: serde_json::Value = serde_json::from_slice(&r.body)
            .unwrap_or_else(|e| panic!("{ctx}: lasterror body is not JSON ({e}): {}", r.text()));
        assert!(
            v["input"].is_string() && v["err_content"].is_string(),
            "{v}"
        );
    }
}
