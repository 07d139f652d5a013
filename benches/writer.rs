//! End-to-end writer throughput: pre-built points submitted to a writer until
//! every one has arrived at a loopback HTTP server (testkit's fake DataKit,
//! which also gunzips and stores every body). Large batches.
//!
//! `cargo bench --bench writer`

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pythond::point::{Category, FieldValue, Point};
use pythond::writer::{Route, Target, WriteQuery, Writer, WriterConfig};
use testkit::FakeDataKit;

fn points(n: usize) -> Vec<Point> {
    (0..n)
        .map(|i| Point {
            measurement: "cpu".into(),
            tags: vec![
                ("host".into(), "web-01".into()),
                ("region".into(), "eu-west-1".into()),
                ("service".into(), "checkout".into()),
            ],
            fields: vec![
                ("usage_user".into(), FieldValue::F64(12.5)),
                ("procs".into(), FieldValue::I64(i as i64)),
                ("state".into(), FieldValue::Str("running".into())),
                ("healthy".into(), FieldValue::Bool(true)),
            ],
            time_ns: 1_716_544_492_000_000_000 + i as i64,
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    const N: usize = 200_000;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("writer");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    for gzip in [false, true] {
        let dk = FakeDataKit::start();
        dk.drop_bodies(true);
        let writer = {
            let _e = rt.enter();
            Writer::spawn(WriterConfig {
                target: Target::Http(dk.url()),
                batch_max_points: 20_000,
                batch_max_bytes: 8 << 20,
                gzip_min_bytes: if gzip { 16 << 10 } else { usize::MAX },
                queue_max_points: 10_000_000,
                ..WriterConfig::default()
            })
        };
        let route = Route {
            target: None,
            category: Category::Metric,
            query: WriteQuery::default(),
        };
        let name = if gzip {
            "to_loopback_gzip"
        } else {
            "to_loopback_plain"
        };
        g.bench_function(name, |b| {
            b.iter_batched(
                || points(N),
                |mut pts| {
                    rt.block_on(async {
                        // Many producers' calls of 10k points each.
                        while !pts.is_empty() {
                            let rest = pts.split_off(pts.len().min(10_000));
                            writer.submit(route.clone(), pts).unwrap();
                            pts = rest;
                        }
                        writer.flush_and_wait().await;
                    })
                },
                criterion::BatchSize::PerIteration,
            )
        });
        assert_eq!(writer.stats().dropped(), 0);
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
