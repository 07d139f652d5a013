//! The point model: what one reported data point is once it has left Python.
//!
//! Everything a script hands over is first described as a [`RawPoint`] (plain
//! Rust values mirroring what Python can express), then checked and converted
//! by [`RawPoint::into_point`] into a [`Point`] that the line-protocol encoder
//! can write without further checks. The rules live here, free of pyo3, so they
//! are unit-tested on their own and shared by every entry point (`report`,
//! `feed_*`, test mode).
//!
//! Decisions (SPEC §4):
//! - `None` fields and `None` tags are dropped.
//! - Non-string tag values: `int`/`float` are written with their decimal form,
//!   `bool` as `true`/`false`; anything else (list, dict, bytes) is an error.
//!   The original posted them as JSON, which DataKit rejected with a 400 for the
//!   whole request; converting scalars keeps the data, rejecting containers
//!   names the mistake.
//! - A point with no field left (after dropping `None`) is an error.

use std::fmt;

/// DataKit data categories, each with its `/v1/write/<path>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    Metric,
    Logging,
    Object,
    CustomObject,
    KeyEvent,
    Rum,
    Network,
    Security,
    Tracing,
    Profiling,
}

impl Category {
    /// The `report()` dict key (`M`, `L`, ...) for the categories scripts can name.
    pub fn from_report_key(key: &str) -> Option<Category> {
        Some(match key {
            "M" => Category::Metric,
            "L" => Category::Logging,
            "R" => Category::Rum,
            "O" => Category::Object,
            "CO" => Category::CustomObject,
            "E" => Category::KeyEvent,
            _ => return None,
        })
    }

    /// The report keys, in the order `report()` walks them.
    pub const REPORT_KEYS: [&'static str; 6] = ["M", "L", "R", "O", "CO", "E"];

    /// The last path segment of `/v1/write/<name>`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Category::Metric => "metric",
            Category::Logging => "logging",
            Category::Object => "object",
            Category::CustomObject => "custom_object",
            Category::KeyEvent => "keyevent",
            Category::Rum => "rum",
            Category::Network => "network",
            Category::Security => "security",
            Category::Tracing => "tracing",
            Category::Profiling => "profiling",
        }
    }

    pub fn from_name(name: &str) -> Option<Category> {
        Some(match name {
            "metric" => Category::Metric,
            "logging" => Category::Logging,
            "object" => Category::Object,
            "custom_object" => Category::CustomObject,
            "keyevent" => Category::KeyEvent,
            "rum" => Category::Rum,
            "network" => Category::Network,
            "security" => Category::Security,
            "tracing" => Category::Tracing,
            "profiling" => Category::Profiling,
            _ => return None,
        })
    }

    pub fn write_path(&self) -> String {
        format!("/v1/write/{}", self.as_str())
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A typed field value, ready to encode.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    Str(String),
    Bytes(Vec<u8>),
    Array(ArrayValue),
}

/// A homogeneous array field (DataKit's `[1i,2i]` form).
#[derive(Debug, Clone, PartialEq)]
pub enum ArrayValue {
    I64(Vec<i64>),
    U64(Vec<u64>),
    F64(Vec<f64>),
    Bool(Vec<bool>),
    Str(Vec<String>),
    Bytes(Vec<Vec<u8>>),
}

/// One validated point. Tags and fields keep the order the script gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub measurement: String,
    pub tags: Vec<(String, String)>,
    pub fields: Vec<(String, FieldValue)>,
    /// Nanoseconds since the Unix epoch.
    pub time_ns: i64,
}

/// A value as a script expressed it, before the rules are applied.
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    None,
    Bool(bool),
    /// Python ints fit here up to the limits the converter checks; the rules
    /// reject anything outside `i64::MIN..=u64::MAX`.
    Int(i128),
    /// A Python int too large even for i128: always an error, kept so the
    /// error can name the key.
    BigInt,
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<RawValue>),
    /// A dict (or any mapping); never valid as a field or tag value.
    Map,
    /// Any other Python object, by its type name.
    Other(String),
}

/// A point as a script described it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RawPoint {
    pub measurement: RawValue,
    pub tags: Vec<(String, RawValue)>,
    pub fields: Vec<(String, RawValue)>,
    /// `None` when the script gave no time.
    pub time: RawValue,
}

impl Default for RawValue {
    fn default() -> Self {
        RawValue::None
    }
}

/// How [`RawPoint::into_point`] treats numbers and time.
#[derive(Debug, Clone, Copy)]
pub struct ConvertOptions {
    /// Write every number (int, and ints inside arrays) as a float, as the
    /// original's JSON path did (SPEC §4 "Types"). Per input, opt-in.
    pub numbers_as_float: bool,
    /// The `precision` the script gave with `report()`; `None` means guess the
    /// unit from the magnitude as DataKit does.
    pub precision: Option<crate::lineproto::Precision>,
    /// The time stamped on points without one (ns), taken when the script
    /// hands the points over.
    pub now_ns: i64,
}

/// Why one point was refused. Becomes a Python `ValueError` with this text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("point {index}{}: {reason}", key.as_ref().map(|k| format!(" key {k:?}")).unwrap_or_default())]
pub struct PointError {
    /// Position of the point in the list the script handed over.
    pub index: usize,
    /// The tag or field key at fault, when there is one.
    pub key: Option<String>,
    pub reason: PointErrorKind,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PointErrorKind {
    #[error("measurement is missing or empty")]
    EmptyMeasurement,
    #[error("measurement must be a str, got {0}")]
    MeasurementType(String),
    #[error("point has no fields (None values are dropped)")]
    NoFields,
    #[error("NaN and infinities cannot be written")]
    NonFinite,
    #[error("nested dicts are not allowed as values")]
    Nested,
    #[error("array mixes types ({0} and {1}); arrays must be homogeneous")]
    MixedArray(String, String),
    #[error("arrays may hold only int, float, bool, str or bytes, got {0}")]
    ArrayElement(String),
    #[error("newline is not allowed in {0}")]
    Newline(&'static str),
    #[error("key is empty")]
    EmptyKey,
    #[error("key is both a tag and a field")]
    TagAndField,
    #[error("integer out of range (must fit in i64 or u64)")]
    IntRange,
    #[error("tag value must be str, int, float or bool, got {0}")]
    TagType(String),
    #[error("unsupported value type {0}")]
    ValueType(String),
    #[error("time must be an int (or float) timestamp, got {0}")]
    TimeType(String),
    #[error("time is out of range for a nanosecond timestamp")]
    TimeRange,
}

impl RawPoint {
    /// Apply DataKit's data rules and produce an encodable point.
    pub fn into_point(self, index: usize, opts: &ConvertOptions) -> Result<Point, PointError> {
        let _ = (index, opts);
        todo!("issue 2: validation rules")
    }
}
