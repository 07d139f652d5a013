//! Encoding throughput: a typical point (3 tags, 4 fields of mixed types) to
//! line protocol, the point rules (`RawPoint::into_point`) for the same, and
//! the fast path the runtime takes (`encode_fast`: rules and encoding in
//! one pass from the arena the reader fills), against the reference path
//! (`into_point` + `Lines::push`) in the same run. And the clock a point
//! without a time is stamped with (`clock::now_ns`) against
//! `SystemTime::now()`.
//!
//! `cargo bench --bench encode`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pythond_core::lineproto::{encode_fast, encode_point, Lines, RawPoints, Val};
use pythond_core::point::{ConvertOptions, FieldValue, Point, RawPoint, RawValue};

fn typical() -> Point {
    Point {
        measurement: "cpu".into(),
        tags: vec![
            ("host".into(), "web-01.example.com".into()),
            ("region".into(), "eu-west-1".into()),
            ("service".into(), "checkout".into()),
        ],
        fields: vec![
            ("usage_user".into(), FieldValue::F64(12.345678)),
            ("procs".into(), FieldValue::I64(312)),
            ("state".into(), FieldValue::Str("running".into())),
            ("healthy".into(), FieldValue::Bool(true)),
        ],
        time_ns: 1_716_544_492_123_456_789,
    }
}

fn raw_typical() -> RawPoint {
    let s = |v: &str| RawValue::Str(v.to_owned());
    RawPoint {
        measurement: s("cpu"),
        tags: vec![
            ("host".into(), s("web-01.example.com")),
            ("region".into(), s("eu-west-1")),
            ("service".into(), s("checkout")),
        ],
        fields: vec![
            ("usage_user".into(), RawValue::Float(12.345678)),
            ("procs".into(), RawValue::Int(312)),
            ("state".into(), s("running")),
            ("healthy".into(), RawValue::Bool(true)),
        ],
        time: RawValue::None,
    }
}

fn bench(c: &mut Criterion) {
    const N: usize = 10_000;
    let points: Vec<Point> = (0..N).map(|_| typical()).collect();
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("typical_point_x10k", |b| {
        let mut out = Vec::with_capacity(N * 160);
        b.iter(|| {
            out.clear();
            for p in &points {
                encode_point(p, &mut out);
            }
            std::hint::black_box(out.len())
        })
    });
    let opts = ConvertOptions {
        numbers_as_float: false,
        precision: None,
        now_ns: 1_716_544_492_000_000_000,
    };
    g.bench_function("into_point_x10k", |b| {
        b.iter_batched(
            || (0..N).map(|_| raw_typical()).collect::<Vec<_>>(),
            |raws| {
                for (i, r) in raws.into_iter().enumerate() {
                    std::hint::black_box(r.into_point(i, &opts).unwrap());
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("reference_path_x10k", |b| {
        b.iter_batched(
            || (0..N).map(|_| raw_typical()).collect::<Vec<_>>(),
            |raws| {
                let mut lines = Lines::new();
                for (i, r) in raws.into_iter().enumerate() {
                    lines.push(&r.into_point(i, &opts).unwrap());
                }
                std::hint::black_box(lines.len())
            },
            BatchSize::LargeInput,
        )
    });
    // The arena as the reader leaves it (strings copied in; the runtime
    // borrows them instead), then rules + encoding per point.
    let mut raw = RawPoints::new();
    for _ in 0..N {
        let m = raw.str("cpu");
        raw.begin_point(m);
        for (k, v) in [
            ("host", "web-01.example.com"),
            ("region", "eu-west-1"),
            ("service", "checkout"),
        ] {
            let k = raw.str(k);
            let v = raw.str(v);
            raw.item(k, Val::Str(v));
        }
        raw.fields();
        let k = raw.str("usage_user");
        raw.item(k, Val::Float(12.345678));
        let k = raw.str("procs");
        raw.item(k, Val::Int(312));
        let k = raw.str("state");
        let v = raw.str("running");
        raw.item(k, Val::Str(v));
        let k = raw.str("healthy");
        raw.item(k, Val::Bool(true));
        raw.end_point(Val::None);
    }
    g.bench_function("fast_path_x10k", |b| {
        let mut lines = Lines::new();
        b.iter(|| {
            lines.clear();
            for i in 0..N {
                encode_fast(&raw, i, &opts, &[], &mut lines).unwrap();
            }
            std::hint::black_box(lines.len())
        })
    });
    g.finish();
}

fn clock(c: &mut Criterion) {
    let mut g = c.benchmark_group("clock");
    g.throughput(Throughput::Elements(1000));
    // Past the calibration, as in a running worker.
    let end = pythond_core::clock::realtime_ns() + 2 * pythond_core::clock::CALIBRATION_NS;
    while pythond_core::clock::realtime_ns() < end {
        pythond_core::clock::now_ns();
    }
    g.bench_function(
        format!("now_ns_x1k ({})", pythond_core::clock::source()),
        |b| {
            b.iter(|| {
                let mut s = 0i64;
                for _ in 0..1000 {
                    s = s.wrapping_add(pythond_core::clock::now_ns());
                }
                std::hint::black_box(s)
            })
        },
    );
    g.bench_function("system_time_x1k", |b| {
        b.iter(|| {
            let mut s = 0i64;
            for _ in 0..1000 {
                let d = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap();
                s = s.wrapping_add(d.as_nanos() as i64);
            }
            std::hint::black_box(s)
        })
    });
    g.finish();
}

criterion_group!(benches, bench, clock);
criterion_main!(benches);
