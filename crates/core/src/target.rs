//! Where data goes: DataKit's HTTP API (over TCP or a Unix socket) or a local
//! output. One type for every place an address appears: `datakit.conf`'s
//! `[http_api] listen`, `--datakit-url`, `--output`, a script's
//! `__init__(ip=..., port=...)`, the worker spec and the spool's records.

use std::fmt;
use std::path::PathBuf;

/// A destination for points and for the script helpers' requests.
///
/// The serde form (an externally tagged enum) is part of the spool's on-disk
/// record header: do not change it without a migration.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Target {
    /// `http://host:port` (no trailing slash, no path).
    Http(String),
    /// DataKit's `listen` given as a Unix socket path.
    Unix(PathBuf),
    /// Write lines to stdout instead of posting (`--output -`).
    Stdout,
    /// Append lines to a file instead of posting (`--output FILE`).
    File(PathBuf),
}

impl Default for Target {
    /// DataKit's default listen address.
    fn default() -> Self {
        Target::Http("http://127.0.0.1:9529".into())
    }
}

impl Target {
    /// `listen` as DataKit writes it (`host:port`, `0.0.0.0:9529`, a socket
    /// path) or a URL given on the command line → where to connect.
    pub fn from_listen(listen: &str) -> Target {
        let l = listen.trim();
        if let Some(p) = l.strip_prefix("unix:") {
            return Target::Unix(PathBuf::from(p));
        }
        if l.starts_with('/') || l.ends_with(".sock") {
            return Target::Unix(PathBuf::from(l));
        }
        let l = l.trim_start_matches("http://").trim_end_matches('/');
        let (host, port) = match l.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') => (h, p),
            _ => (l, "9529"),
        };
        let host = match host {
            "" | "0.0.0.0" | "::" | "[::]" | "localhost" => "127.0.0.1",
            h => h,
        };
        Target::Http(format!("http://{host}:{port}"))
    }

    /// A script's `__init__(ip=..., port=...)`: `None` when it names
    /// DataKit's default address, so the configured DataKit (which may be a
    /// Unix socket or another port from datakit.conf) is used.
    pub fn from_ip_port(host: &str, port: &str) -> Option<Target> {
        if (host == "127.0.0.1" || host == "localhost") && port == "9529" {
            return None;
        }
        Some(Target::Http(format!("http://{host}:{port}")))
    }

    /// Whether requests leave the process (HTTP) rather than being written
    /// locally.
    pub fn is_remote(&self) -> bool {
        matches!(self, Target::Http(_) | Target::Unix(_))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Http(u) => f.write_str(u),
            Target::Unix(p) => write!(f, "unix:{}", p.display()),
            Target::Stdout => f.write_str("-"),
            Target::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms_become_connectable_addresses() {
        assert_eq!(
            Target::from_listen("0.0.0.0:19529"),
            Target::Http("http://127.0.0.1:19529".into())
        );
        assert_eq!(
            Target::from_listen("localhost:9529"),
            Target::Http("http://127.0.0.1:9529".into())
        );
        assert_eq!(
            Target::from_listen("http://10.0.0.5:9529/"),
            Target::Http("http://10.0.0.5:9529".into())
        );
        assert_eq!(
            Target::from_listen("/var/run/datakit.sock"),
            Target::Unix("/var/run/datakit.sock".into())
        );
        assert_eq!(
            Target::from_listen("unix:/tmp/dk"),
            Target::Unix("/tmp/dk".into())
        );
    }

    #[test]
    fn default_ip_and_port_mean_the_configured_datakit() {
        assert_eq!(Target::from_ip_port("127.0.0.1", "9529"), None);
        assert_eq!(
            Target::from_ip_port("10.1.1.1", "9529"),
            Some(Target::Http("http://10.1.1.1:9529".into()))
        );
    }

    #[test]
    fn display_is_the_command_line_notation() {
        assert_eq!(Target::Unix("/s".into()).to_string(), "unix:/s");
        assert_eq!(Target::Stdout.to_string(), "-");
        assert_eq!(Target::File("/f".into()).to_string(), "file:/f");
    }
}
