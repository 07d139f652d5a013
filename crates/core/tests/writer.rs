//! The writer against a real HTTP server on 127.0.0.1 (testkit's fake
//! DataKit): batching, gzip, query, keep-alive, retries, rejections, Unix
//! socket, local sink, queue bound, disk spool.

mod common;

use std::time::Duration;

use pythond_core::lineproto::Lines;
use pythond_core::point::{Category, FieldValue, Point};
use pythond_core::route::{Route, WriteQuery};
use pythond_core::sink::Payload;
use pythond_core::target::Target;
use pythond_core::writer::spool::{Spool, SpoolLimits};
use pythond_core::writer::{Writer, WriterConfig};
use testkit::FakeDataKit;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_close_on_point_count() {
    let dk = FakeDataKit::start();
    let w = Writer::spawn(cfg(Target::Http(dk.url())));
    w.submit(route(Category::Metric, None), pts("m", 250))
        .unwrap();
    w.flush_and_wait().await;
    let sizes: Vec<usize> = dk.accepted().iter().map(|r| r.lines().len()).collect();
    assert_eq!(sizes, vec![100, 100, 50]);
    assert_eq!(
        seqs(&dk.lines("/v1/write/metric")),
        (0..250).collect::<Vec<_>>()
    );
    assert_eq!(w.stats().points_sent, 250);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_close_on_bytes() {
    // Whole points are encoded when submitted: both forms are cut at the
    // last line end that fits.
    for (payload, sizes) in [
        (Payload::Points(pts("m", 100)), 901..1001),
        (encoded(pts("m", 100)), 901..1001),
    ] {
        let dk = FakeDataKit::start();
        let w = Writer::spawn(WriterConfig {
            batch_max_points: 1_000_000,
            batch_max_bytes: 1000,
            ..cfg(Target::Http(dk.url()))
        });
        w.submit(route(Category::Metric, None), payload).unwrap();
        w.flush_and_wait().await;
        let reqs = dk.accepted();
        assert!(reqs.len() >= 4, "{}", reqs.len());
        for r in &reqs[..reqs.len() - 1] {
            assert!(sizes.contains(&r.body.len()), "{}", r.body.len());
        }
        assert_eq!(seqs(&dk.all_lines()), (0..100).collect::<Vec<_>>());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_lines_batch_on_count_in_order_across_calls() {
    let dk = FakeDataKit::start();
    let w = Writer::spawn(cfg(Target::Http(dk.url())));
    w.submit(route(Category::Metric, None), encoded(pts("m", 120)))
        .unwrap();
    // A second call continues the open batch of 20 before cutting at 100.
    w.submit(route(Category::Metric, None), encoded(pts("m", 130)))
        .unwrap();
    w.flush_and_wait().await;
    let sizes: Vec<usize> = dk.accepted().iter().map(|r| r.lines().len()).collect();
    assert_eq!(sizes, vec![100, 100, 50]);
    let mut want: Vec<i64> = (0..120).collect();
    want.extend(0..130);
    assert_eq!(seqs(&dk.lines("/v1/write/metric")), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_lines_cut_only_at_line_ends() {
    // A string field may hold a raw newline: batches must still be cut
    // between points, not at that newline; and a line longer than the byte
    // bound goes alone.
    let dk = FakeDataKit::start();
    let w = Writer::spawn(WriterConfig {
        batch_max_points: 2,
        batch_max_bytes: 200,
        ..cfg(Target::Http(dk.url()))
    });
    let mut points = pts("m", 5);
    for p in &mut points {
        p.fields
            .push(("msg".into(), FieldValue::Str("one\ntwo".into())));
    }
    points[3]
        .fields
        .push(("big".into(), FieldValue::Str("x".repeat(500))));
    w.submit(route(Category::Logging, None), encoded(points.clone()))
        .unwrap();
    w.flush_and_wait().await;
    let bodies: Vec<Vec<u8>> = dk.accepted().into_iter().map(|r| r.body).collect();
    let line = |p: &Point| {
        let mut l = Lines::new();
        l.push(p);
        l.as_bytes().to_vec()
    };
    let want: Vec<Vec<u8>> = vec![
        [line(&points[0]), line(&points[1])].concat(),
        line(&points[2]),
        line(&points[3]),
        line(&points[4]),
    ];
    assert_eq!(bodies, want);
    assert_eq!(w.stats().points_sent, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_close_on_delay_without_flush() {
    let dk = FakeDataKit::start();
    let w = Writer::spawn(WriterConfig {
        batch_max_delay: Duration::from_millis(50),
        ..cfg(Target::Http(dk.url()))
    });
    w.submit(route(Category::Logging, None), pts("l", 5))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(dk.requests().len(), 0, "not before the delay");
    let ok = tokio::task::spawn_blocking(move || {
        let r = dk.wait_for_lines(5, Duration::from_secs(3));
        (r, dk)
    })
    .await
    .unwrap();
    assert!(ok.0, "sent once the delay passed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_seals_at_once_and_flushes_within_the_gap_share_a_request() {
    let dk = FakeDataKit::start();
    let w = Writer::spawn(WriterConfig {
        flush_gap: Duration::from_millis(300),
        ..cfg(Target::Http(dk.url()))
    });
    let r = route(Category::Metric, None);
    w.submit(r.clone(), pts("a", 1)).unwrap();
    w.flush();
    let dk = tokio::task::spawn_blocking(move || {
        assert!(
            dk.wait_for_lines(1, Duration::from_secs(3)),
            "the first flush seals at once"
        );
        dk
    })
    .await
    .unwrap();
    // Three more runs end right after it: one request for the three, once
    // the gap is over.
    for p in ["b", "c", "d"] {
        w.submit(r.clone(), pts(p, 1)).unwrap();
        w.flush();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(dk.requests().len(), 1, "within the gap: held");
    let dk = tokio::task::spawn_blocking(move || {
        assert!(
            dk.wait_for_lines(4, Duration::from_secs(3)),
            "sealed when the gap is over"
        );
        dk
    })
    .await
    .unwrap();
    assert_eq!(dk.requests().len(), 2);
    // A flush that waits does not wait for the gap.
    w.submit(r.clone(), pts("e", 1)).unwrap();
    let t = std::time::Instant::now();
    w.flush_and_wait().await;
    assert!(
        t.elapsed() < Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(dk.line_count(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_hands_over_within_the_linger_in_order_and_at_shutdown() {
    let dk = FakeDataKit::start();
    let w = Writer::spawn(WriterConfig {
        batch_max_delay: Duration::from_millis(100),
        ..cfg(Target::Http(dk.url()))
    });
    let stage = w.stage("s".into());
    let r = route(Category::Metric, None);
    for i in 0..5 {
        stage.push(&r, &lines("m", i, 1));
    }
    // Never flushed: the timer hands them over, and the batch is sealed
    // counting from the first line, within the linger.
    let t = std::time::Instant::now();
    let dk = tokio::task::spawn_blocking(move || {
        assert!(dk.wait_for_lines(5, Duration::from_secs(3)));
        dk
    })
    .await
    .unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(1000),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(
        seqs(&dk.lines("/v1/write/metric")),
        (0..5).collect::<Vec<_>>()
    );
    // Another route in between hands over what was gathered first.
    stage.push(&r, &lines("m", 5, 1));
    stage.push(&route(Category::Logging, None), &lines("l", 0, 1));
    stage.push(&r, &lines("m", 6, 1));
    // Held at shutdown: delivered by it.
    let report = w
        .shutdown(tokio::time::Instant::now() + Duration::from_secs(3))
        .await;
    assert!(report.drained, "{report:?}");
    assert_eq!(
        seqs(&dk.lines("/v1/write/metric")),
        (0..7).collect::<Vec<_>>()
    );
    assert_eq!(dk.lines("/v1/write/logging").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_are_gzipped_and_decode_to_the_same_lines() {
    let dk = FakeDataKit::start();
    let w = Writer::spawn(WriterConfig {
        gzip_min_bytes: 1024,
        batch_max_points: 1000,
        ..cfg(Target::Http(dk.url()))
    });
    w.submit(route(Category::Metric, None), pts("m", 500))
        .unwrap();
    w.submit(route(Category::Object, None), pts("o", 1))
        .unwrap();
    w.flush_and_wait().await;
    let reqs = dk.accepted();
    let metric = reqs.iter().find(|r| r.path == "/v1/write/metric").unwrap();
    assert!(metric.gzip && metric.header("content-encoding") == Some("gzip"));
    assert!(
        metric.wire_len * 3 < metric.body.len(),
        "compressed: {} vs {}",
        metric.wire_len,
        metric.body.len()
    );
    assert_eq!(seqs(&metric.lines()), (0..500).collect::<Vec<_>>());
    let object = reqs.iter().find(|r| r.path == "/v1/write/object").unwrap();
    assert!(!object.gzip, "small bodies are sent plain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_carries_precision_input_and_flags_url_encoded() {
    let dk = FakeDataKit::start();
    let w = Writer::spawn(cfg(Target::Http(dk.url())));
    let r = Route {
        target: None,
        category: Category::CustomObject,
        query: WriteQuery {
            input: Some("my input&x=1".into()),
            ignore_global_tags: Some(true),
            ignore_global_host_tags: Some(false),
            version: Some("1.2".into()),
        },
    };
    w.submit(r, pts("co", 1)).unwrap();
    w.flush_and_wait().await;
    let req = &dk.accepted()[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/v1/write/custom_object");
    assert_eq!(req.query_value("precision"), Some("n"));
    assert_eq!(req.query_value("input"), Some("my input&x=1"));
    assert_eq!(req.query_value("ignore_global_tags"), Some("true"));
    // DataKit reads any non-empty value as true: false is left out.
    assert_eq!(req.query_value("ignore_global_host_tags"), None);
    assert_eq!(req.query_value("version"), Some("1.2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_reused() {
    let dk = FakeDataKit::start();
    let w = Writer::spawn(cfg(Target::Http(dk.url())));
    for i in 0..20 {
        w.submit(route(Category::Metric, None), pts(&format!("m{i}"), 10))
            .unwrap();
        w.flush_and_wait().await;
    }
    assert_eq!(dk.accepted().len(), 20);
    assert_eq!(
        dk.connections(),
        1,
        "one keep-alive connection for 20 requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_after_503_lose_and_duplicate_nothing() {
    let dk = FakeDataKit::start();
    dk.respond_next(&[503, 503, 429]);
    let w = Writer::spawn(cfg(Target::Http(dk.url())));
    w.submit(route(Category::Metric, None), pts("m", 250))
        .unwrap();
    w.flush_and_wait().await;
    assert_eq!(
        seqs(&dk.lines("/v1/write/metric")),
        (0..250).collect::<Vec<_>>(),
        "in order, once each"
    );
    let st = w.stats();
    assert_eq!(st.requests_retried, 3);
    assert_eq!(st.points_sent, 250);
    assert_eq!(st.dropped(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_until_a_late_server_starts() {
    let addr = FakeDataKit::reserve_port();
    let w = Writer::spawn(WriterConfig {
        retry_max_attempts: 100,
        ..cfg(Target::Http(format!("http://{addr}")))
    });
    w.submit(route(Category::Metric, None), pts("m", 30))
        .unwrap();
    w.flush();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        w.stats().requests_retried > 0,
        "refused connections are retried"
    );
    let dk = tokio::task::spawn_blocking(move || FakeDataKit::start_on(addr))
        .await
        .unwrap();
    w.flush_and_wait().await;
    assert_eq!(
        seqs(&dk.lines("/v1/write/metric")),
        (0..30).collect::<Vec<_>>()
    );
    assert_eq!(w.stats().dropped(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_drops_only_that_batch_and_is_counted() {
    let dk = FakeDataKit::start();
    dk.reject_bodies_containing("poison");
    let w = Writer::spawn(cfg(Target::Http(dk.url())));
    w.submit(route(Category::Metric, Some("a")), pts("fine", 10))
        .unwrap();
    w.submit(route(Category::Metric, Some("b")), pts("poison", 7))
        .unwrap();
    w.submit(route(Category::Logging, Some("a")), pts("also_fine", 3))
        .unwrap();
    w.flush_and_wait().await;
    assert_eq!(dk.all_lines().len(), 13);
    assert!(dk.all_lines().iter().all(|l| !l.starts_with("poison")));
    let st = w.stats();
    assert_eq!(st.batches_rejected, 1);
    assert_eq!(st.dropped_rejected, 7);
    assert_eq!(st.requests_retried, 0, "a 400 is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_target() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("datakit.sock");
    let dk = tokio::task::spawn_blocking({
        let sock = sock.clone();
        move || FakeDataKit::start_unix(&sock)
    })
    .await
    .unwrap();
    let w = Writer::spawn(cfg(Target::Unix(sock)));
    w.submit(route(Category::Metric, Some("u")), pts("m", 5))
        .unwrap();
    w.post_lasterror(None, "u", "boom").await.unwrap();
    w.flush_and_wait().await;
    assert_eq!(seqs(&dk.lines("/v1/write/metric")), vec![0, 1, 2, 3, 4]);
    let le = dk
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/lasterror")
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&le.body).unwrap();
    assert_eq!(v, serde_json::json!({"input": "u", "err_content": "boom"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_file_sink_writes_commented_batches() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("points.lp");
    // A gzip threshold every body passes: local sinks still get plain text.
    let w = Writer::spawn(WriterConfig {
        gzip_min_bytes: 1,
        ..cfg(Target::File(out.clone()))
    });
    w.submit(route(Category::Metric, Some("x")), pts("m", 3))
        .unwrap();
    w.flush_and_wait().await;
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("# POST /v1/write/metric?precision=n&input=x")
    );
    let rest: Vec<String> = lines.map(str::to_owned).collect();
    assert_eq!(seqs(&rest), vec![0, 1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_bound_refuses_and_counts_without_a_spool() {
    let addr = FakeDataKit::reserve_port(); // nobody listens: nothing drains
    let w = Writer::spawn(WriterConfig {
        queue_max_points: 100,
        retry_max_attempts: 1000,
        ..cfg(Target::Http(format!("http://{addr}")))
    });
    w.submit(route(Category::Metric, None), pts("m", 80))
        .unwrap();
    let e = w
        .submit(route(Category::Metric, None), pts("m", 30))
        .unwrap_err();
    assert!(e.to_string().contains("queue full"), "{e}");
    assert_eq!(w.stats().dropped_queue_full, 30);
    assert_eq!(w.stats().held_points, 80);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_goes_to_the_spool_and_replays_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let addr = FakeDataKit::reserve_port();
    let spool = Spool::open(&dir.path().join("spool"), SpoolLimits::default()).unwrap();
    let w = Writer::spawn_with_spool(cfg(Target::Http(format!("http://{addr}"))), Some(spool));
    for i in 0..10 {
        let mut p = pts("m", 20);
        for (j, pt) in p.iter_mut().enumerate() {
            pt.fields[0].1 = FieldValue::I64((i * 20 + j) as i64);
        }
        w.submit(route(Category::Metric, None), p).unwrap();
        w.flush_and_wait().await;
    }
    assert_eq!(w.stats().points_spooled, 200, "{:?}", w.stats());
    assert_eq!(w.stats().held_points, 0, "memory released");
    let dk = tokio::task::spawn_blocking(move || FakeDataKit::start_on(addr))
        .await
        .unwrap();
    let dk = tokio::task::spawn_blocking(move || {
        assert!(dk.wait_for_lines(200, Duration::from_secs(10)));
        dk
    })
    .await
    .unwrap();
    assert_eq!(
        seqs(&dk.lines("/v1/write/metric")),
        (0..200).collect::<Vec<_>>(),
        "in order, once each"
    );
    // New points after recovery go straight through again.
    w.submit(route(Category::Metric, None), pts("after", 1))
        .unwrap();
    w.flush_and_wait().await;
    assert!(dk.wait_for_lines(201, Duration::from_secs(5)));
    assert_eq!(w.spool_stats().unwrap().records, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_cannot_be_built_is_dropped_alone_and_never_blocks_the_spool() {
    // An `input` longer than a URL may be (the native methods refuse such a
    // value; the writer must not depend on it): the request cannot even be
    // built. It is a rejection, not an outage: dropped and counted, and the
    // batches after it, spooled or not, are delivered.
    let dir = tempfile::tempdir().unwrap();
    let dk = tokio::task::spawn_blocking(FakeDataKit::start)
        .await
        .unwrap();
    let spool = Spool::open(&dir.path().join("spool"), SpoolLimits::default()).unwrap();
    let w = Writer::spawn_with_spool(cfg(Target::Http(dk.url())), Some(spool));
    let huge = "x".repeat(70_000);
    w.submit(route(Category::Metric, Some(&huge)), pts("poison", 3))
        .unwrap();
    w.flush_and_wait().await;
    w.submit(route(Category::Metric, Some("fine")), pts("after", 4))
        .unwrap();
    w.flush_and_wait().await;
    let dk = tokio::task::spawn_blocking(move || {
        assert!(dk.wait_for_lines(4, Duration::from_secs(10)));
        dk
    })
    .await
    .unwrap();
    assert_eq!(seqs(&dk.lines("/v1/write/metric")), vec![0, 1, 2, 3]);
    let st = w.stats();
    assert_eq!(st.dropped_rejected, 3, "{st:?}");
    assert_eq!(st.points_spooled, 0, "not an outage: {st:?}");
    assert!(w
        .status()
        .last_delivery_error
        .unwrap()
        .message
        .contains("invalid request"));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn shutdown_against_a_frozen_datakit_spools_everything_by_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("spool");
    let dk = FakeDataKit::start();
    dk.freeze(true);
    let cats = [Category::Metric, Category::Logging, Category::Object];
    // One runtime per life of the input: dropping it ends the writer and
    // releases the spool, as the worker's exit does.
    let (report, took) = runtime().block_on(async {
        let spool = pythond_core::writer::open_spool(&spool_dir, SpoolLimits::default()).unwrap();
        let w = Writer::spawn_with_spool(cfg(Target::Http(dk.url())), Some(spool));
        for c in &cats {
            w.submit(route(c.clone(), None), pts(c.as_str(), 100))
                .unwrap();
        }
        w.flush();
        // Every route's attempt hangs. The stop comes well before the 2 s
        // after which a hung attempt's batch is spooled anyway.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(w.stats().points_spooled, 0, "nothing spooled yet");
        assert!(dk.unanswered() >= 1);
        let t = std::time::Instant::now();
        let report = w
            .shutdown(tokio::time::Instant::now() + Duration::from_secs(1))
            .await;
        (report, t.elapsed())
    });
    assert!(
        took < Duration::from_secs(2),
        "shutdown kept its deadline: {took:?}"
    );
    assert_eq!(report.lost(), 0, "{report:?}");
    assert_eq!(report.stats.points_spooled, 300, "{report:?}");
    assert_eq!(report.spool.unwrap().weight, 300, "{report:?}");
    // DataKit is back, and so is the input: everything arrives, once.
    dk.freeze(false);
    runtime().block_on(async {
        let spool = pythond_core::writer::open_spool(&spool_dir, SpoolLimits::default()).unwrap();
        let _w = Writer::spawn_with_spool(cfg(Target::Http(dk.url())), Some(spool));
        let dk = &dk;
        tokio::task::block_in_place(|| {
            assert!(dk.wait_for_lines(300, Duration::from_secs(10)));
        });
    });
    std::thread::sleep(Duration::from_millis(200));
    for c in &cats {
        assert_eq!(
            seqs(&dk.lines(&format!("/v1/write/{}", c.as_str()))),
            (0..100).collect::<Vec<_>>(),
            "{c}"
        );
    }
}
