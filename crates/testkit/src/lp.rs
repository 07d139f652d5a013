//! Reading line protocol with influxdata's parser (`influxdb-line-protocol`),
//! an implementation independent of pythond's encoder, into a form tests can
//! compare.

use influxdb_line_protocol::{FieldValue, ParsedLine};

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
