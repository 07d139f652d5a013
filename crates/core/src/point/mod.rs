//! The point model: what one reported data point is once it has left Python.
//!
//! Everything a script hands over is first described as a [`RawPoint`] (plain
//! Rust values mirroring what Python can express), then checked and converted
//! by [`RawPoint::into_point`] ([`rules`]) into a [`Point`] that the
//! line-protocol encoder can write without further checks. The rules live
//! here, free of pyo3, so they are unit-tested on their own and shared by
//! every entry point (`report`, `feed_*`, test mode).

mod rules;
mod time;

pub use rules::{PointError, PointErrorKind};
use std::fmt;
pub use time::{normalize_time, normalize_time_f64, Precision};

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

    /// Every category, in the order of [`Category::index`].
    pub const ALL: [Category; 10] = [
        Category::Metric,
        Category::Logging,
        Category::Object,
        Category::CustomObject,
        Category::KeyEvent,
        Category::Rum,
        Category::Network,
        Category::Security,
        Category::Tracing,
        Category::Profiling,
    ];

    /// Position in [`Category::ALL`] (for per-category counters).
    pub fn index(&self) -> usize {
        self.clone() as usize
    }

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
#[derive(Debug, Clone, PartialEq, Default)]
pub enum RawValue {
    #[default]
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
    /// A list, tuple or dict found inside a list, by its Python type name.
    /// Arrays hold only scalars, so its contents are never read: that is
    /// what bounds the description of a list that contains itself, or of
    /// nesting deeper than any stack.
    Nested(String),
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

impl RawValue {
    /// The Python type this value came from, for messages.
    pub fn type_name(&self) -> &str {
        match self {
            RawValue::None => "NoneType",
            RawValue::Bool(_) => "bool",
            RawValue::Int(_) | RawValue::BigInt => "int",
            RawValue::Float(_) => "float",
            RawValue::Str(_) => "str",
            RawValue::Bytes(_) => "bytes",
            RawValue::List(_) => "list",
            RawValue::Map => "dict",
            RawValue::Nested(t) | RawValue::Other(t) => t,
        }
    }
}

/// How [`RawPoint::into_point`] treats numbers and time.
#[derive(Debug, Clone, Copy)]
pub struct ConvertOptions {
    /// Write every number (int, and ints inside arrays) as a float, as the
    /// original's JSON path did (`docs/compat.md#data-rules`). Per input,
    /// opt-in.
    pub numbers_as_float: bool,
    /// The `precision` the script gave with `report()`; `None` means guess the
    /// unit from the magnitude as DataKit does.
    pub precision: Option<Precision>,
    /// The time stamped on points without one (ns), taken when the script
    /// hands the points over.
    pub now_ns: i64,
}

#[cfg(test)]
mod tests {
    use super::Category;

    #[test]
    fn index_is_the_position_in_all() {
        for (i, c) in Category::ALL.iter().enumerate() {
            assert_eq!(c.index(), i, "{c:?}");
        }
    }
}
