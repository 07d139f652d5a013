//! `GET /metrics`: the numbers of [`Status`] in Prometheus' text format
//! (0.0.4), encoded by prometheus-client from the snapshot (no live
//! registry: the workers hold the counters, the supervisor renders what
//! they last reported).
//!
//! Labels: `input`, `script` (`module.Class`), `category`, `reason`,
//! `state`. Counters are cumulative since pythond started, summed over the
//! input's workers (the supervisor adds each ended worker's counts to the
//! running one's: `supervisor::state`), so they never go down when a worker
//! restarts.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use pythond_core::status::{InputStatus, ScriptState, ScriptStatus, Status};

/// The `Content-Type` of the rendering.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

const STATES: [(ScriptState, &str); 7] = [
    (ScriptState::Ok, "ok"),
    (ScriptState::Failing, "failing"),
    (ScriptState::BackingOff, "backing_off"),
    (ScriptState::TimedOut, "timed_out"),
    (ScriptState::Hung, "hung"),
    (ScriptState::Quarantined, "quarantined"),
    (ScriptState::NotLoaded, "not_loaded"),
];

fn script_id(s: &ScriptStatus) -> String {
    match &s.class {
        Some(c) => format!("{}.{c}", s.module),
        None => s.module.clone(),
    }
}

#[derive(Debug)]
struct Snapshot(Status);

type Enc<'a> = DescriptorEncoder<'a>;

fn counter<'a, T>(
    enc: &mut Enc<'_>,
    name: &str,
    help: &str,
    items: impl IntoIterator<Item = (T, u64)>,
) -> Result<(), std::fmt::Error>
where
    T: prometheus_client::encoding::EncodeLabelSet + 'a,
{
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in items {
        ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauge<T>(
    enc: &mut Enc<'_>,
    name: &str,
    help: &str,
    items: impl IntoIterator<Item = (T, f64)>,
) -> Result<(), std::fmt::Error>
where
    T: prometheus_client::encoding::EncodeLabelSet,
{
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in items {
        ConstGauge::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn per_input<F>(inputs: &[InputStatus], f: F) -> Vec<([(&'static str, &str); 1], u64)>
where
    F: Fn(&InputStatus) -> u64,
{
    inputs
        .iter()
        .map(|i| ([("input", i.name.as_str())], f(i)))
        .collect()
}

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let st = &self.0;
        let inputs = &st.inputs;
        gauge(
            &mut enc,
            "pythond_start_time_seconds",
            "When pythond started, Unix time",
            [([] as [(&str, &str); 0], st.started_ms as f64 / 1000.0)],
        )?;
        gauge(
            &mut enc,
            "pythond_input_up",
            "1 when the input's worker is running",
            inputs
                .iter()
                .map(|i| ([("input", i.name.as_str())], i.pid.is_some() as u8 as f64)),
        )?;
        counter(
            &mut enc,
            "pythond_input_restarts",
            "Worker restarts since pythond started",
            per_input(inputs, |i| i.restarts),
        )?;
        counter(
            &mut enc,
            "pythond_input_rss_restarts",
            "Worker restarts because it passed max_rss",
            per_input(inputs, |i| i.rss_restarts),
        )?;
        counter(
            &mut enc,
            "pythond_input_pipe_lines_dropped",
            "Launch mode: log lines DataKit's full stdout pipe could not take",
            inputs
                .iter()
                .filter_map(|i| Some(([("input", i.name.as_str())], i.pipe_lines_dropped?))),
        )?;
        gauge(
            &mut enc,
            "pythond_input_rss_bytes",
            "Resident memory of the input's worker",
            inputs
                .iter()
                .filter_map(|i| Some(([("input", i.name.as_str())], i.rss_bytes? as f64))),
        )?;
        gauge(
            &mut enc,
            "pythond_input_queue_points",
            "Points held in memory, not yet delivered",
            inputs
                .iter()
                .map(|i| ([("input", i.name.as_str())], i.writer.queue_points as f64)),
        )?;
        gauge(
            &mut enc,
            "pythond_input_spool_bytes",
            "Bytes waiting in the input's disk spool",
            inputs
                .iter()
                .map(|i| ([("input", i.name.as_str())], i.writer.spool_bytes as f64)),
        )?;
        gauge(
            &mut enc,
            "pythond_input_spool_points",
            "Points waiting in the input's disk spool",
            inputs
                .iter()
                .map(|i| ([("input", i.name.as_str())], i.writer.spool_points as f64)),
        )?;
        counter(
            &mut enc,
            "pythond_requests",
            "Write requests sent to DataKit",
            per_input(inputs, |i| i.writer.requests_sent),
        )?;
        counter(
            &mut enc,
            "pythond_requests_retried",
            "Write requests retried",
            per_input(inputs, |i| i.writer.requests_retried),
        )?;
        counter(
            &mut enc,
            "pythond_requests_failed",
            "Write attempts that failed",
            per_input(inputs, |i| i.writer.requests_failed),
        )?;
        counter(
            &mut enc,
            "pythond_points_sent",
            "Points DataKit accepted",
            inputs.iter().flat_map(|i| {
                i.writer
                    .points_sent
                    .iter()
                    .map(move |(c, n)| ([("input", i.name.as_str()), ("category", c.as_str())], *n))
            }),
        )?;
        counter(
            &mut enc,
            "pythond_points_dropped",
            "Points dropped, by reason",
            inputs.iter().flat_map(|i| {
                i.writer
                    .dropped
                    .iter()
                    .map(move |(r, n)| ([("input", i.name.as_str()), ("reason", r.as_str())], *n))
            }),
        )?;
        let scripts: Vec<(&InputStatus, &ScriptStatus, String)> = inputs
            .iter()
            .flat_map(|i| i.scripts.iter().map(move |s| (i, s, script_id(s))))
            .collect();
        let labels = |i: &'_ InputStatus, id: &'_ str| -> [(&'static str, String); 2] {
            [("input", i.name.clone()), ("script", id.to_owned())]
        };
        gauge(
            &mut enc,
            "pythond_script_state",
            "1 for the script's current state",
            scripts.iter().flat_map(|(i, s, id)| {
                STATES.iter().map(move |(st, name)| {
                    (
                        [
                            ("input", i.name.clone()),
                            ("script", id.clone()),
                            ("state", (*name).to_owned()),
                        ],
                        (s.state == *st) as u8 as f64,
                    )
                })
            }),
        )?;
        for (name, help, get) in [
            (
                "pythond_script_runs",
                "Runs of the script",
                (|s: &ScriptStatus| s.runs) as fn(&ScriptStatus) -> u64,
            ),
            (
                "pythond_script_failures",
                "Runs that raised or timed out",
                |s| s.failures,
            ),
            (
                "pythond_script_timeouts",
                "Runs interrupted by their timeout",
                |s| s.timeouts,
            ),
            (
                "pythond_script_skipped_ticks",
                "Ticks skipped because the previous run was still going",
                |s| s.skipped_ticks,
            ),
        ] {
            counter(
                &mut enc,
                name,
                help,
                scripts.iter().map(|(i, s, id)| (labels(i, id), get(s))),
            )?;
        }
        gauge(
            &mut enc,
            "pythond_script_consecutive_failures",
            "Failures in a row",
            scripts
                .iter()
                .map(|(i, s, id)| (labels(i, id), s.consecutive_failures as f64)),
        )?;
        gauge(
            &mut enc,
            "pythond_script_last_success_timestamp_seconds",
            "When the script last ran successfully, Unix time",
            scripts
                .iter()
                .filter_map(|(i, s, id)| Some((labels(i, id), s.last_success_ms? as f64 / 1000.0))),
        )?;
        counter(
            &mut enc,
            "pythond_script_points",
            "Points the script handed over, by category",
            scripts.iter().flat_map(|(i, s, id)| {
                s.points.iter().map(move |(c, n)| {
                    (
                        [
                            ("input", i.name.clone()),
                            ("script", id.clone()),
                            ("category", c.clone()),
                        ],
                        *n,
                    )
                })
            }),
        )?;
        {
            let mut m = enc.encode_descriptor(
                "pythond_script_run_duration_seconds",
                "Duration of the script's runs",
                None,
                MetricType::Histogram,
            )?;
            for (i, s, id) in &scripts {
                let h = &s.durations;
                if h.counts.is_empty() {
                    continue;
                }
                m.encode_family(&labels(i, id))?
                    .encode_histogram::<NoLabelSet>(h.sum_secs, h.count, &h.buckets(), None)?;
            }
        }
        Ok(())
    }
}

/// The text `GET /metrics` answers.
pub fn render(status: &Status) -> String {
    let mut reg = Registry::default();
    reg.register_collector(Box::new(Snapshot(status.clone())));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &reg)
        .expect("writing to a String cannot fail");
    out
}
