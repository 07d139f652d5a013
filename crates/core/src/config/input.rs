//! One `[[inputs.pythond]]` block: its keys, their types and defaults.

use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::{ConfigError, Location};

/// One `[[inputs.pythond]]` block, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct InputConfig {
    pub name: String,
    pub cmd: String,
    pub dirs: Vec<String>,
    pub envs: Vec<String>,
    pub tags: Vec<(String, String)>,
    pub numbers_as_float: bool,
    pub timeout: Option<Duration>,
    /// Import scripts that someone other than root and pythond's user could
    /// change, with a warning, instead of refusing them (see `trust`).
    pub insecure_paths: bool,
    /// Restart the worker (gracefully: its data is spooled) when its
    /// resident memory passes this many bytes.
    pub max_rss: Option<u64>,
    /// Where the block is: `file:line`.
    pub source: Location,
}

const KNOWN_KEYS: &[&str] = &[
    "name",
    "cmd",
    "dirs",
    "envs",
    "tags",
    "numbers_as_float",
    "timeout",
    "insecure_paths",
    "max_rss",
];

pub(super) fn parse_block(
    t: &DeTable<'_>,
    block_offset: usize,
    label: &str,
    at: &dyn Fn(usize) -> Location,
    warnings: &mut Vec<ConfigError>,
) -> Result<InputConfig, ConfigError> {
    let name_for_msgs = t
        .get("name")
        .and_then(|v| v.get_ref().as_str())
        .map(|n| format!("{label} ({n:?})"))
        .unwrap_or_else(|| label.to_owned());
    let err = |offset: usize, key: &str, msg: String| ConfigError {
        at: at(offset),
        message: format!("{name_for_msgs}: key {key:?}: {msg}"),
    };
    for (k, v) in t.iter() {
        if !KNOWN_KEYS.contains(&k.get_ref().as_ref()) {
            warnings.push(ConfigError {
                at: at(k.span().start.min(v.span().start)),
                message: format!("{name_for_msgs}: unknown key {:?} ignored", k.get_ref()),
            });
        }
    }
    let required_str = |key: &str| -> Result<String, ConfigError> {
        match t.get(key) {
            None => Err(err(block_offset, key, "missing (required)".into())),
            Some(v) => match v.get_ref().as_str() {
                Some(s) if !s.trim().is_empty() => Ok(s.to_owned()),
                Some(_) => Err(err(v.span().start, key, "must not be empty".into())),
                None => Err(err(
                    v.span().start,
                    key,
                    format!("expected a string, got {}", v.get_ref().type_str()),
                )),
            },
        }
    };
    let str_array = |key: &str, v: &Spanned<DeValue>| -> Result<Vec<String>, ConfigError> {
        let arr = v.get_ref().as_array().ok_or_else(|| {
            err(
                v.span().start,
                key,
                format!(
                    "expected an array of strings, got {}",
                    v.get_ref().type_str()
                ),
            )
        })?;
        arr.iter()
            .map(|e| {
                e.get_ref().as_str().map(str::to_owned).ok_or_else(|| {
                    err(
                        e.span().start,
                        key,
                        format!(
                            "expected an array of strings, got an element of type {}",
                            e.get_ref().type_str()
                        ),
                    )
                })
            })
            .collect()
    };
    let name = required_str("name")?;
    let cmd = required_str("cmd")?;
    let dirs = match t.get("dirs") {
        None => return Err(err(block_offset, "dirs", "missing (required)".into())),
        Some(v) => str_array("dirs", v)?,
    };
    let envs = match t.get("envs") {
        None => Vec::new(),
        Some(v) => {
            let envs = str_array("envs", v)?;
            if let Some(bad) = envs.iter().find(|e| !e.contains('=')) {
                return Err(err(
                    v.span().start,
                    "envs",
                    format!("{bad:?} is not KEY=VALUE"),
                ));
            }
            envs
        }
    };
    let tags = match t.get("tags") {
        None => Vec::new(),
        Some(v) => {
            let table = v.get_ref().as_table().ok_or_else(|| {
                err(
                    v.span().start,
                    "tags",
                    format!(
                        "expected a table of strings, got {}",
                        v.get_ref().type_str()
                    ),
                )
            })?;
            table
                .iter()
                .map(|(k, tv)| {
                    tv.get_ref()
                        .as_str()
                        .map(|s| (k.get_ref().to_string(), s.to_owned()))
                        .ok_or_else(|| {
                            err(
                                tv.span().start,
                                &format!("tags.{}", k.get_ref()),
                                format!("expected a string, got {}", tv.get_ref().type_str()),
                            )
                        })
                })
                .collect::<Result<_, _>>()?
        }
    };
    let bool_key = |key: &str| -> Result<bool, ConfigError> {
        match t.get(key) {
            None => Ok(false),
            Some(v) => v.get_ref().as_bool().ok_or_else(|| {
                err(
                    v.span().start,
                    key,
                    format!("expected true or false, got {}", v.get_ref().type_str()),
                )
            }),
        }
    };
    let numbers_as_float = bool_key("numbers_as_float")?;
    let insecure_paths = bool_key("insecure_paths")?;
    let timeout = match t.get("timeout") {
        None => None,
        Some(v) => Some(
            parse_timeout(v.get_ref())
                .map_err(|m| err(v.span().start, "timeout", m.to_string()))?,
        ),
    };
    let max_rss = match t.get("max_rss") {
        None => None,
        Some(v) => Some(
            parse_max_rss(v.get_ref())
                .map_err(|m| err(v.span().start, "max_rss", m.to_string()))?,
        ),
    };
    Ok(InputConfig {
        name,
        cmd,
        dirs,
        envs,
        tags,
        numbers_as_float,
        timeout,
        insecure_paths,
        max_rss,
        source: at(block_offset),
    })
}

/// The smallest `max_rss` taken: an interpreter alone needs more.
const MIN_RSS: u64 = 16 << 20;

/// Why the value of `timeout` or `max_rss` cannot be taken (the key and
/// where it is are added by the caller).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum BadValue {
    #[error("{0} is not a number of bytes")]
    NotBytes(String),
    #[error("{0:?} is not a size ({1}; write e.g. \"200MiB\", \"1.5GB\" or a number of bytes)")]
    NotSize(String, String),
    #[error("{0} bytes is below the {min} MiB a worker's interpreter needs", min = MIN_RSS >> 20)]
    TooSmall(u64),
    #[error("{0} is not a number of seconds")]
    NotSeconds(String),
    #[error("{0:?} is not a duration (use seconds, or a string like \"30s\", \"2m\", \"500ms\")")]
    NotDuration(String),
    #[error("must be positive")]
    NotPositive,
    #[error("expected {expected}, got {got}")]
    WrongType {
        expected: &'static str,
        got: &'static str,
    },
    #[error(transparent)]
    Seconds(#[from] crate::seconds::SecondsError),
}

/// `max_rss = "200MiB"` (or `"1.5GB"`, or a number of bytes).
fn parse_max_rss(v: &DeValue<'_>) -> Result<u64, BadValue> {
    let bytes = match v {
        DeValue::Integer(i) => i
            .as_str()
            .replace('_', "")
            .parse::<u64>()
            .map_err(|_| BadValue::NotBytes(i.as_str().to_owned()))?,
        DeValue::String(s) => parse_size::parse_size(s.trim())
            .map_err(|e| BadValue::NotSize(s.to_string(), e.to_string()))?,
        other => {
            return Err(BadValue::WrongType {
                expected: "a size like \"200MiB\" or a number of bytes",
                got: other.type_str(),
            })
        }
    };
    if bytes < MIN_RSS {
        return Err(BadValue::TooSmall(bytes));
    }
    Ok(bytes)
}

fn parse_timeout(v: &DeValue<'_>) -> Result<Duration, BadValue> {
    let number = |s: &str| {
        s.replace('_', "")
            .parse::<f64>()
            .map_err(|_| BadValue::NotSeconds(s.to_owned()))
    };
    let secs = match v {
        DeValue::Integer(i) => number(i.as_str())?,
        DeValue::Float(f) => number(f.as_str())?,
        DeValue::String(s) => {
            parse_duration(s).ok_or_else(|| BadValue::NotDuration(s.to_string()))?
        }
        other => {
            return Err(BadValue::WrongType {
                expected: "seconds or a duration string",
                got: other.type_str(),
            })
        }
    };
    if secs <= 0.0 {
        return Err(BadValue::NotPositive);
    }
    Ok(crate::seconds::to_duration(secs)?)
}

/// `"30s"`, `"2m"`, `"1h"`, `"500ms"`, `"1.5"` → seconds.
pub fn parse_duration(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    num.trim().parse::<f64>().ok().map(|n| n * mult)
}
