//! Helpers of the writer's test files.
#![allow(dead_code)]

use std::time::Duration;

use pythond_core::lineproto::Lines;
use pythond_core::point::{Category, FieldValue, Point};
use pythond_core::route::{Route, WriteQuery};
use pythond_core::sink::Payload;
use pythond_core::target::Target;
use pythond_core::writer::WriterConfig;
use testkit::lp::parse_line;

pub fn cfg(target: Target) -> WriterConfig {
    WriterConfig {
        target,
        batch_max_points: 100,
        batch_max_bytes: 1 << 20,
        batch_max_delay: Duration::from_secs(30),
        gzip_min_bytes: usize::MAX,
        retry_initial: Duration::from_millis(10),
        retry_max: Duration::from_millis(50),
        request_timeout: Duration::from_secs(5),
        ..WriterConfig::default()
    }
}

pub fn pts(prefix: &str, n: usize) -> Vec<Point> {
    (0..n)
        .map(|i| Point {
            measurement: prefix.to_string(),
            tags: vec![("host".into(), "h1".into())],
            fields: vec![
                ("seq".into(), FieldValue::I64(i as i64)),
                ("v".into(), FieldValue::F64(0.5)),
            ],
            time_ns: 1_700_000_000_000_000_000 + i as i64,
        })
        .collect()
}

pub fn route(cat: Category, input: Option<&str>) -> Route {
    Route {
        target: None,
        category: cat,
        query: WriteQuery {
            input: input.map(str::to_owned),
            ..WriteQuery::default()
        },
    }
}

/// The `seq` field of every line that arrived, in order.
pub fn seqs(lines: &[String]) -> Vec<i64> {
    lines
        .iter()
        .map(|l| {
            let p = parse_line(l);
            let (_, v) = p.fields.iter().find(|(k, _)| k == "seq").unwrap();
            v.trim_start_matches("i:").parse().unwrap()
        })
        .collect()
}

/// The runtime hands the writer lines it already encoded.
pub fn encoded(points: Vec<Point>) -> Payload {
    let mut lines = Lines::new();
    for p in &points {
        lines.push(p);
    }
    Payload::Lines(lines)
}

pub fn lines(prefix: &str, from: usize, n: usize) -> Lines {
    let mut l = Lines::new();
    for p in pts(prefix, from + n).into_iter().skip(from) {
        l.push(&p);
    }
    l
}

/// A fake DataKit, started off the runtime (it binds and spawns a thread).
pub async fn start_datakit() -> testkit::FakeDataKit {
    tokio::task::spawn_blocking(testkit::FakeDataKit::start)
        .await
        .unwrap()
}

/// Poll `f` (on the runtime) until it holds or `secs` pass.
pub async fn until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    while !f() {
        if std::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}
