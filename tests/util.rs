//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use influxdb_line_protocol::{FieldValue, ParsedLine};

/// The binary under test.
pub fn pythond() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pythond"));
    c.env_remove("PYTHOND_WORKER_SPEC");
    c
}

/// The repository root (for python.d/, conf.d/).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Write `files` (relative path → content) under a new temp dir.
pub fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (rel, content) in files {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    dir
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `pythond test --format json PATHS...` → (exit ok, one JSON value per point).
pub fn test_json(paths: &[&Path]) -> (Output, Vec<serde_json::Value>) {
    let out = pythond()
        .arg("test")
        .arg("--format")
        .arg("json")
        .args(paths)
        .output()
        .unwrap();
    let vals = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect();
    (out, vals)
}

/// A point as the independent parser sees it, in comparable form.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub measurement: String,
    pub tags: Vec<(String, String)>,
    pub fields: Vec<(String, String)>,
    pub time: Option<i64>,
}

/// Parse one line with influxdata's parser (not ours).
pub fn parse_line(line: &str) -> Seen {
    let parsed: Vec<_> = influxdb_line_protocol::parse_lines(line).collect();
    assert_eq!(parsed.len(), 1, "one line expected: {line:?}");
    let p: ParsedLine = parsed
        .into_iter()
        .next()
        .unwrap()
        .unwrap_or_else(|e| panic!("{line:?}: {e}"));
    Seen {
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
    }
}

/// A field value with its type: `i:1`, `u:1`, `f:1.5`, `s:text`, `b:true`.
pub fn field_text(v: &FieldValue) -> String {
    match v {
        FieldValue::I64(i) => format!("i:{i}"),
        FieldValue::U64(u) => format!("u:{u}"),
        FieldValue::F64(f) => format!("f:{f}"),
        FieldValue::String(s) => format!("s:{s}"),
        FieldValue::Boolean(b) => format!("b:{b}"),
    }
}

pub fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
