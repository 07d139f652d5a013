//! End-to-end writer throughput: pre-built points submitted to a writer until
//! every one has arrived at a loopback HTTP server (testkit's fake DataKit,
//! which also gunzips and stores every body). Large batches.
//!
//! `cargo bench --bench writer`

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pythond_core::lineproto::Lines;
use pythond_core::point::{Category, FieldValue, Point};
use pythond_core::route::{Route, WriteQuery};
use pythond_core::sink::Payload;
use pythond_core::target::Target;
use pythond_core::writer::{Writer, WriterConfig};
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
    // The third form is what the runtime hands over: lines its script threads
    // already encoded (their encoding is outside this measurement).
    for (name, gzip, encoded) in [
        ("to_loopback_plain", false, false),
        ("to_loopback_gzip", true, false),
        ("to_loopback_encoded_lines", false, true),
    ] {
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
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    // Many producers' calls of 10k points each.
                    let calls: Vec<Payload> = points(N)
                        .chunks(10_000)
                        .map(|c| {
                            if encoded {
                                let mut l = Lines::new();
                                c.iter().for_each(|p| l.push(p));
                                Payload::Lines(l)
                            } else {
                                Payload::Points(c.to_vec())
                            }
                        })
                        .collect();
                    calls
                },
                |calls| {
                    rt.block_on(async {
                        for call in calls {
                            writer.submit(route.clone(), call).unwrap();
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
