//! The data rules (`docs/compat.md#data-rules`): a [`RawPoint`] checked and
//! converted into a [`Point`], or a [`PointError`] naming the point and key.
//!
//! Decisions:
//! - `None` fields and `None` tags are dropped.
//! - Non-string tag values: `int`/`float` are written with their decimal form,
//!   `bool` as `true`/`false`; anything else (list, dict, bytes) is an error.
//!   The original posted them as JSON, which DataKit rejected with a 400 for the
//!   whole request; converting scalars keeps the data, rejecting containers
//!   names the mistake.
//! - A point with no field left (after dropping `None`) is an error.
//! - Names follow DataKit's parser (influxdb1 `models`, GuanceCloud's fork),
//!   not the influx 2/3 one: trailing backslashes are stripped from the
//!   measurement, keys and tag values (no escape can express them there, and
//!   DataKit's own checker strips them too); an empty tag value, also after
//!   stripping, is dropped (DataKit answers `k=` with a 400 for the whole
//!   request); a measurement starting with `#` is refused (read as a comment,
//!   silently dropped); a field key with an odd run of backslashes right
//!   before `,` `=` or space is refused (DataKit's field scanner misreads it).

use super::{
    normalize_time, normalize_time_f64, ArrayValue, ConvertOptions, FieldValue, Point, RawPoint,
    RawValue,
};

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
    #[error("arrays cannot hold a {0} (nested values are not allowed)")]
    NestedInArray(String),
    #[error("array mixes types ({0} and {1}); arrays must be homogeneous")]
    MixedArray(String, String),
    #[error("arrays may hold only int, float, bool, str or bytes, got {0}")]
    ArrayElement(String),
    #[error("newline, carriage return and tab are not allowed in {0}")]
    Newline(&'static str),
    #[error("NUL characters are not allowed in {0}")]
    Nul(&'static str),
    #[error("measurement may not start with '#' (DataKit drops such a line as a comment)")]
    CommentMeasurement,
    #[error("a field key cannot have a backslash right before ',', '=' or space (DataKit's parser misreads it)")]
    FieldKeyBackslash,
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
    #[error("time cannot be NaN or infinite")]
    TimeNotFinite,
}

fn int_value(i: i128, as_float: bool) -> Result<FieldValue, PointErrorKind> {
    if as_float {
        return Ok(FieldValue::F64(i as f64));
    }
    if let Ok(v) = i64::try_from(i) {
        Ok(FieldValue::I64(v))
    } else if let Ok(v) = u64::try_from(i) {
        Ok(FieldValue::U64(v))
    } else {
        Err(PointErrorKind::IntRange)
    }
}

fn float_value(f: f64) -> Result<FieldValue, PointErrorKind> {
    if f.is_finite() {
        Ok(FieldValue::F64(f))
    } else {
        Err(PointErrorKind::NonFinite)
    }
}

/// A list field: every element must have the kind of the first one. Ints
/// widen to u64 when one of them needs it (all must then be non-negative).
fn array_value(items: Vec<RawValue>, as_float: bool) -> Result<Option<FieldValue>, PointErrorKind> {
    let Some(first) = items.first() else {
        // DataKit cannot type an empty array: dropped like a None value.
        return Ok(None);
    };
    let kind = |v: &RawValue| -> Result<&'static str, PointErrorKind> {
        Ok(match v {
            RawValue::Bool(_) => "bool",
            RawValue::Int(_) | RawValue::BigInt if as_float => "float",
            RawValue::Int(_) | RawValue::BigInt => "int",
            RawValue::Float(_) => "float",
            RawValue::Str(_) => "str",
            RawValue::Bytes(_) => "bytes",
            RawValue::List(_) | RawValue::Map | RawValue::Nested(_) => {
                return Err(PointErrorKind::NestedInArray(v.type_name().to_owned()))
            }
            other => return Err(PointErrorKind::ArrayElement(other.type_name().to_owned())),
        })
    };
    let k0 = kind(first)?;
    for v in &items[1..] {
        let k = kind(v)?;
        if k != k0 {
            return Err(PointErrorKind::MixedArray(k0.to_owned(), k.to_owned()));
        }
    }
    let arr = match k0 {
        "bool" => ArrayValue::Bool(
            items
                .into_iter()
                .map(|v| matches!(v, RawValue::Bool(true)))
                .collect(),
        ),
        "float" => ArrayValue::F64(
            items
                .into_iter()
                .map(|v| match v {
                    RawValue::Float(f) if f.is_finite() => Ok(f),
                    RawValue::Float(_) => Err(PointErrorKind::NonFinite),
                    RawValue::Int(i) => Ok(i as f64),
                    _ => Err(PointErrorKind::IntRange),
                })
                .collect::<Result<_, _>>()?,
        ),
        "int" => {
            let ints: Vec<i128> = items
                .into_iter()
                .map(|v| match v {
                    RawValue::Int(i) => Ok(i),
                    _ => Err(PointErrorKind::IntRange),
                })
                .collect::<Result<_, _>>()?;
            if ints.iter().all(|i| i64::try_from(*i).is_ok()) {
                ArrayValue::I64(ints.into_iter().map(|i| i as i64).collect())
            } else if ints.iter().all(|i| u64::try_from(*i).is_ok()) {
                ArrayValue::U64(ints.into_iter().map(|i| i as u64).collect())
            } else {
                return Err(PointErrorKind::IntRange);
            }
        }
        "str" => ArrayValue::Str(
            items
                .into_iter()
                .map(|v| match v {
                    RawValue::Str(s) => s,
                    _ => unreachable!("kind checked"),
                })
                .collect(),
        ),
        _ => ArrayValue::Bytes(
            items
                .into_iter()
                .map(|v| match v {
                    RawValue::Bytes(b) => b,
                    _ => unreachable!("kind checked"),
                })
                .collect(),
        ),
    };
    Ok(Some(FieldValue::Array(arr)))
}

/// A field value, or `None` when the field is dropped.
fn field_value(v: RawValue, as_float: bool) -> Result<Option<FieldValue>, PointErrorKind> {
    Ok(Some(match v {
        RawValue::None => return Ok(None),
        RawValue::Bool(b) => FieldValue::Bool(b),
        RawValue::Int(i) => int_value(i, as_float)?,
        RawValue::BigInt => return Err(PointErrorKind::IntRange),
        RawValue::Float(f) => float_value(f)?,
        RawValue::Str(s) => FieldValue::Str(s),
        RawValue::Bytes(b) => FieldValue::Bytes(b),
        RawValue::List(items) => return array_value(items, as_float),
        RawValue::Map => return Err(PointErrorKind::Nested),
        RawValue::Nested(t) => return Err(PointErrorKind::NestedInArray(t)),
        RawValue::Other(t) => return Err(PointErrorKind::ValueType(t)),
    }))
}

/// A tag value as a string, or `None` when the tag is dropped.
fn tag_value(v: RawValue) -> Result<Option<String>, PointErrorKind> {
    Ok(Some(match v {
        RawValue::None => return Ok(None),
        RawValue::Str(s) => s,
        RawValue::Bool(b) => if b { "true" } else { "false" }.to_owned(),
        RawValue::Int(i) => i.to_string(),
        RawValue::Float(f) if f.is_finite() => ryu::Buffer::new().format_finite(f).to_owned(),
        RawValue::Float(_) => return Err(PointErrorKind::NonFinite),
        RawValue::BigInt => return Err(PointErrorKind::IntRange),
        other => return Err(PointErrorKind::TagType(other.type_name().to_owned())),
    }))
}

/// Refuse in a name a character line protocol reads as a line or token
/// break (`\n`, `\r`, `\t`), or NUL, which influxdata's parser refuses in a
/// measurement (and other tools end a string at). One byte scan: this runs
/// for every key.
fn check_chars(s: &str, what: &'static str) -> Result<(), PointErrorKind> {
    match s
        .bytes()
        .find(|b| matches!(b, b'\n' | b'\r' | b'\t' | b'\0'))
    {
        None => Ok(()),
        Some(b'\0') => Err(PointErrorKind::Nul(what)),
        Some(_) => Err(PointErrorKind::Newline(what)),
    }
}

/// Remove trailing backslashes: DataKit's parser decides whether a separator
/// is escaped by the byte before it, so a name ending in `\` would swallow the
/// next `,`/`=`/space whatever we write. DataKit's own point checker strips
/// them the same way.
fn strip_trailing_backslashes(s: &mut String) {
    while s.ends_with('\\') {
        s.pop();
    }
}

fn check_key(key: &mut String, what: &'static str) -> Result<(), PointErrorKind> {
    strip_trailing_backslashes(key);
    if key.is_empty() {
        return Err(PointErrorKind::EmptyKey);
    }
    check_chars(key, what)
}

/// In the field section DataKit's scanner skips backslash pairs, so an odd
/// run of backslashes right before `,` `=` or space in a field key escapes
/// the wrong byte. Tag keys and values are scanned differently and are fine.
fn field_key_misread(key: &str) -> bool {
    if !key.contains('\\') {
        return false;
    }
    let mut run = 0usize;
    for b in key.bytes() {
        match b {
            b'\\' => run += 1,
            b',' | b'=' | b' ' if run % 2 == 1 => return true,
            _ => run = 0,
        }
    }
    false
}

/// Whether `key` is one of the keys of `pairs` (linear: points usually have
/// a handful of tags; big points use a set, see `into_point`).
fn has_key<V>(pairs: &[(String, V)], key: &str) -> bool {
    pairs.iter().any(|(k, _)| k == key)
}

impl RawPoint {
    /// Apply DataKit's data rules and produce an encodable point.
    pub fn into_point(self, index: usize, opts: &ConvertOptions) -> Result<Point, PointError> {
        let err = |key: Option<&str>, reason| PointError {
            index,
            key: key.map(str::to_owned),
            reason,
        };
        let mut measurement = match self.measurement {
            RawValue::Str(s) => s,
            RawValue::None => return Err(err(None, PointErrorKind::EmptyMeasurement)),
            other => {
                return Err(err(
                    None,
                    PointErrorKind::MeasurementType(other.type_name().to_owned()),
                ))
            }
        };
        strip_trailing_backslashes(&mut measurement);
        if measurement.is_empty() {
            return Err(err(None, PointErrorKind::EmptyMeasurement));
        }
        check_chars(&measurement, "measurement").map_err(|r| err(None, r))?;
        if measurement.starts_with('#') {
            return Err(err(None, PointErrorKind::CommentMeasurement));
        }
        let mut tags = Vec::with_capacity(self.tags.len());
        for (mut k, v) in self.tags {
            check_key(&mut k, "tag key").map_err(|r| err(Some(&k), r))?;
            match tag_value(v) {
                Ok(Some(mut v)) => {
                    check_chars(&v, "tag value").map_err(|r| err(Some(&k), r))?;
                    strip_trailing_backslashes(&mut v);
                    // DataKit refuses `k=` (the whole request): dropped like None.
                    if !v.is_empty() {
                        tags.push((k, v));
                    }
                }
                Ok(None) => {}
                Err(r) => return Err(err(Some(&k), r)),
            }
        }
        let mut fields = Vec::with_capacity(self.fields.len());
        for (mut k, v) in self.fields {
            check_key(&mut k, "field key").map_err(|r| err(Some(&k), r))?;
            if field_key_misread(&k) {
                return Err(err(Some(&k), PointErrorKind::FieldKeyBackslash));
            }
            match field_value(v, opts.numbers_as_float) {
                Ok(Some(v)) => fields.push((k, v)),
                Ok(None) => {}
                Err(r) => return Err(err(Some(&k), r)),
            }
        }
        if fields.is_empty() {
            return Err(err(None, PointErrorKind::NoFields));
        }
        if !tags.is_empty() {
            if tags.len() * fields.len() <= 256 {
                if let Some((k, _)) = fields.iter().find(|(k, _)| has_key(&tags, k)) {
                    return Err(err(Some(k), PointErrorKind::TagAndField));
                }
            } else {
                let set: std::collections::HashSet<&str> =
                    tags.iter().map(|(k, _)| k.as_str()).collect();
                if let Some((k, _)) = fields.iter().find(|(k, _)| set.contains(k.as_str())) {
                    return Err(err(Some(k), PointErrorKind::TagAndField));
                }
            }
        }
        let time_ns = match self.time {
            RawValue::None => opts.now_ns,
            RawValue::Int(t) => {
                let t = i64::try_from(t).map_err(|_| err(None, PointErrorKind::TimeRange))?;
                normalize_time(t, opts.precision)
                    .ok_or_else(|| err(None, PointErrorKind::TimeRange))?
            }
            // The fraction is kept, scaled to the precision (1.5 s is
            // 1_500_000_000 ns): the original sent the float as is and
            // DataKit's JSON decoder refuses a fractional time, so no script
            // relies on truncation.
            RawValue::Float(f) if !f.is_finite() => {
                return Err(err(None, PointErrorKind::TimeNotFinite))
            }
            RawValue::Float(f) => normalize_time_f64(f, opts.precision)
                .ok_or_else(|| err(None, PointErrorKind::TimeRange))?,
            RawValue::BigInt => return Err(err(None, PointErrorKind::TimeRange)),
            other => {
                return Err(err(
                    None,
                    PointErrorKind::TimeType(other.type_name().to_owned()),
                ))
            }
        };
        Ok(Point {
            measurement,
            tags,
            fields,
            time_ns,
        })
    }
}

#[cfg(test)]
mod tests;
