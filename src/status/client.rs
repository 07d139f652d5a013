//! `pythond status`: read a running daemon's status endpoint and show it,
//! as JSON or as a table; the exit code says whether anything is wrong.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use pythond_core::status::{InputStatus, ScriptStatus, Status};

/// Options of `pythond status`.
#[derive(clap::Args, Clone)]
pub struct StatusArgs {
    /// The daemon's status socket (default: <data-dir>/pythond.sock).
    #[arg(long, conflicts_with = "url")]
    socket: Option<PathBuf>,
    /// Or its TCP endpoint, e.g. http://127.0.0.1:9530 (--status-listen).
    #[arg(long)]
    url: Option<String>,
    /// The daemon's data dir (where the socket is).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// DataKit's install dir (the default data dir is <dir>/cache/pythond).
    #[arg(long, default_value = "/usr/local/datakit")]
    datakit_dir: PathBuf,
    /// Print the JSON of GET /status.
    #[arg(long)]
    json: bool,
    /// Refresh every N seconds (default 2) until interrupted.
    #[arg(long, num_args = 0..=1, default_missing_value = "2",
          value_parser = pythond_core::seconds::parse_arg)]
    watch: Option<f64>,
}

/// Exit codes of `pythond status`.
pub mod code {
    /// Every script ok, nothing dropped.
    pub const OK: i32 = 0;
    /// A script is failing, hung, quarantined or not loaded, or an input
    /// dropped points since start.
    pub const PROBLEMS: i32 = 1;
    /// The daemon could not be reached.
    pub const UNREACHABLE: i32 = 2;
}

async fn get(client: reqwest::Client, url: &str) -> anyhow::Result<Status> {
    let body = client
        .get(url)
        .send()
        .await
        .and_then(|r| r.error_for_status())?
        .text()
        .await?;
    serde_json::from_str(&body)
        .context("the status endpoint answered something else than pythond's status")
}

fn unix_client(sock: &std::path::Path) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .unix_socket(sock.to_owned())
        .timeout(Duration::from_secs(5))
        .build()?)
}

/// The status of the daemon asked for: one endpoint, or every pythond whose
/// socket is in the data dir (DataKit runs one pythond per block), merged.
async fn fetch(args: &StatusArgs) -> anyhow::Result<Status> {
    if let Some(u) = &args.url {
        let c = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()?;
        return get(c, &format!("{}/status", u.trim_end_matches('/')))
            .await
            .with_context(|| format!("no pythond status endpoint at {u}"));
    }
    if let Some(sock) = &args.socket {
        return get(unix_client(sock)?, "http://pythond/status")
            .await
            .with_context(|| format!("no pythond answers on {}", sock.display()));
    }
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| crate::data_dir_in(&args.datakit_dir));
    let mut merged: Option<Status> = None;
    for sock in super::server::sockets_in(&data_dir) {
        // A socket nobody answers on is a pythond that was killed.
        let Ok(st) = get(unix_client(&sock)?, "http://pythond/status").await else {
            continue;
        };
        match &mut merged {
            None => merged = Some(st),
            Some(m) => m.inputs.extend(st.inputs),
        }
    }
    merged.with_context(|| {
        format!(
            "no running pythond has its status socket in {} (give --data-dir, --socket or --url)",
            data_dir.display()
        )
    })
}

pub fn main(args: StatusArgs) -> anyhow::Result<i32> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        loop {
            let code = match fetch(&args).await {
                Ok(st) => {
                    if args.json {
                        println!("{}", serde_json::to_string_pretty(&st)?);
                    } else {
                        print!("{}", table(&st));
                    }
                    if st.problems().is_empty() {
                        code::OK
                    } else {
                        code::PROBLEMS
                    }
                }
                Err(e) => {
                    eprintln!("pythond status: {e:#}");
                    code::UNREACHABLE
                }
            };
            let Some(every) = args.watch else {
                return Ok(code);
            };
            // Finite and in range (`seconds::parse_arg`): no panic here.
            tokio::time::sleep(Duration::from_secs_f64(every.clamp(0.2, 3600.0))).await;
            // Clear the screen between refreshes.
            print!("\x1b[2J\x1b[H");
        }
    })
}

fn ago(now_ms: u64, at: Option<u64>) -> String {
    match at {
        None => "-".into(),
        Some(t) => {
            let s = now_ms.saturating_sub(t) as f64 / 1000.0;
            if s < 120.0 {
                format!("{s:.0}s ago")
            } else if s < 7200.0 {
                format!("{:.0}m ago", s / 60.0)
            } else {
                format!("{:.1}h ago", s / 3600.0)
            }
        }
    }
}

fn state(s: &ScriptStatus) -> String {
    serde_json::to_value(s.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn input_line(i: &InputStatus) -> String {
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1 << 20) as f64);
    let mut parts = vec![
        match i.pid {
            Some(p) => format!("pid {p}"),
            None => "not running".into(),
        },
        format!(
            "up {}",
            i.uptime_secs
                .map(|u| format!("{u:.0}s"))
                .unwrap_or_else(|| "-".into())
        ),
        format!("restarts {}", i.restarts),
    ];
    if let Some(r) = i.rss_bytes {
        parts.push(match i.max_rss_bytes {
            Some(m) => format!("rss {} of {}", mib(r), mib(m)),
            None => format!("rss {}", mib(r)),
        });
    }
    let sent: u64 = i.writer.points_sent.values().sum();
    parts.push(format!("sent {sent}"));
    parts.push(format!("queue {}", i.writer.queue_points));
    if i.writer.spool_records > 0 {
        parts.push(format!(
            "spool {} points ({})",
            i.writer.spool_points,
            mib(i.writer.spool_bytes)
        ));
    }
    if i.lost_points > 0 {
        parts.push(format!("DROPPED {}", i.lost_points));
    }
    if let Some(n) = i.pipe_lines_dropped.filter(|n| *n > 0) {
        parts.push(format!("{n} lines not written to DataKit's pipe (full)"));
    }
    format!("input {:?}  {}\n", i.name, parts.join(", "))
}

/// The human form.
pub fn table(st: &Status) -> String {
    let now = pythond_core::status::unix_ms(std::time::SystemTime::now());
    let mut out = String::new();
    for i in &st.inputs {
        out.push_str(&input_line(i));
        if let Some(e) = &i.reload_error {
            out.push_str(&format!(
                "  reload failed {}: {}\n",
                ago(now, Some(e.at_ms)),
                e.message.lines().next().unwrap_or("")
            ));
        }
        if let Some(e) = &i.writer.last_delivery_error {
            out.push_str(&format!(
                "  last delivery error {}: {}\n",
                ago(now, Some(e.at_ms)),
                e.message.lines().next().unwrap_or("")
            ));
        }
        out.push_str(&format!(
            "  {:<32} {:<12} {:>7} {:>7} {:>9} {:>10}  {}\n",
            "script", "state", "runs", "fails", "p99 ms", "last ok", "last error"
        ));
        for s in &i.scripts {
            let id = match &s.class {
                Some(c) => format!("{}.{c}", s.module),
                None => s.module.clone(),
            };
            let err = s
                .last_error
                .as_ref()
                .map(|e| {
                    e.message
                        .lines()
                        .rev()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("")
                        .trim()
                        .to_owned()
                })
                .unwrap_or_default();
            out.push_str(&format!(
                "  {:<32} {:<12} {:>7} {:>7} {:>9} {:>10}  {}\n",
                id,
                state(s),
                s.runs,
                s.failures,
                s.duration_p99_ms
                    .map(|d| format!("{d:.1}"))
                    .unwrap_or_else(|| "-".into()),
                ago(now, s.last_success_ms),
                err
            ));
        }
    }
    let problems = st.problems();
    if !problems.is_empty() {
        out.push_str("problems:\n");
        for p in problems {
            out.push_str(&format!("  {p}\n"));
        }
    }
    out
}
