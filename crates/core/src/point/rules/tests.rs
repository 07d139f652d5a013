//! The data rules, one rule per test.

use super::*;
use crate::point::Precision;

const NOW: i64 = 1_700_000_000_000_000_000;

fn opts() -> ConvertOptions {
    ConvertOptions {
        numbers_as_float: false,
        precision: None,
        now_ns: NOW,
    }
}

fn s(v: &str) -> RawValue {
    RawValue::Str(v.to_owned())
}

fn raw(fields: Vec<(&str, RawValue)>) -> RawPoint {
    RawPoint {
        measurement: s("m"),
        tags: vec![],
        fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        time: RawValue::None,
    }
}

fn err_text(p: RawPoint) -> String {
    p.into_point(3, &opts()).unwrap_err().to_string()
}

#[test]
fn ints_are_i64_then_u64_and_beyond_is_an_error_naming_the_key() {
    let p = raw(vec![
        ("a", RawValue::Int(-5)),
        ("b", RawValue::Int(u64::MAX as i128)),
    ])
    .into_point(0, &opts())
    .unwrap();
    assert_eq!(p.fields[0].1, FieldValue::I64(-5));
    assert_eq!(p.fields[1].1, FieldValue::U64(u64::MAX));
    assert_eq!(
        err_text(raw(vec![("big", RawValue::Int(u64::MAX as i128 + 1))])),
        "point 3 key \"big\": integer out of range (must fit in i64 or u64)"
    );
    assert_eq!(
        err_text(raw(vec![("huge", RawValue::BigInt)])),
        "point 3 key \"huge\": integer out of range (must fit in i64 or u64)"
    );
}

#[test]
fn nan_and_infinities_are_refused() {
    assert_eq!(
        err_text(raw(vec![("x", RawValue::Float(f64::NAN))])),
        "point 3 key \"x\": NaN and infinities cannot be written"
    );
    assert!(err_text(raw(vec![("x", RawValue::Float(f64::NEG_INFINITY))])).contains("infinities"));
}

#[test]
fn none_fields_are_dropped_and_a_point_without_fields_is_refused() {
    let p = raw(vec![("a", RawValue::None), ("b", RawValue::Int(1))])
        .into_point(0, &opts())
        .unwrap();
    assert_eq!(p.fields, vec![("b".to_owned(), FieldValue::I64(1))]);
    assert_eq!(
        err_text(raw(vec![("a", RawValue::None)])),
        "point 3: point has no fields (None values are dropped)"
    );
}

#[test]
fn measurement_must_be_a_non_empty_str_without_newline() {
    let mut p = raw(vec![("a", RawValue::Int(1))]);
    p.measurement = s("");
    assert_eq!(
        err_text(p.clone()),
        "point 3: measurement is missing or empty"
    );
    p.measurement = RawValue::Int(5);
    assert_eq!(
        err_text(p.clone()),
        "point 3: measurement must be a str, got int"
    );
    p.measurement = s("a\nb");
    assert_eq!(
        err_text(p),
        "point 3: newline, carriage return and tab are not allowed in measurement"
    );
}

#[test]
fn nested_dicts_and_mixed_arrays_are_refused() {
    assert_eq!(
        err_text(raw(vec![("d", RawValue::Map)])),
        "point 3 key \"d\": nested dicts are not allowed as values"
    );
    assert_eq!(
        err_text(raw(vec![(
            "l",
            RawValue::List(vec![RawValue::Int(1), s("x")])
        )])),
        "point 3 key \"l\": array mixes types (int and str); arrays must be homogeneous"
    );
    assert_eq!(
        err_text(raw(vec![(
            "l",
            RawValue::List(vec![RawValue::Int(1), RawValue::Nested("list".into())])
        )])),
        "point 3 key \"l\": arrays cannot hold a list (nested values are not allowed)"
    );
    assert!(err_text(raw(vec![(
        "l",
        RawValue::List(vec![RawValue::List(vec![])])
    )]))
    .contains("nested"));
}

#[test]
fn homogeneous_arrays_are_typed_and_empty_ones_dropped() {
    let p = raw(vec![
        (
            "i",
            RawValue::List(vec![RawValue::Int(1), RawValue::Int(2)]),
        ),
        (
            "u",
            RawValue::List(vec![RawValue::Int(1), RawValue::Int(u64::MAX as i128)]),
        ),
        ("s", RawValue::List(vec![s("a"), s("b")])),
        ("e", RawValue::List(vec![])),
    ])
    .into_point(0, &opts())
    .unwrap();
    assert_eq!(
        p.fields[0].1,
        FieldValue::Array(ArrayValue::I64(vec![1, 2]))
    );
    assert_eq!(
        p.fields[1].1,
        FieldValue::Array(ArrayValue::U64(vec![1, u64::MAX]))
    );
    assert_eq!(
        p.fields[2].1,
        FieldValue::Array(ArrayValue::Str(vec!["a".into(), "b".into()]))
    );
    assert_eq!(p.fields.len(), 3, "empty array dropped");
}

#[test]
fn newline_in_keys_and_tag_values_is_refused() {
    let mut p = raw(vec![("a", RawValue::Int(1))]);
    p.tags = vec![("t".into(), s("x\ny"))];
    assert_eq!(
        err_text(p.clone()),
        "point 3 key \"t\": newline, carriage return and tab are not allowed in tag value"
    );
    p.tags = vec![("t\n".into(), s("x"))];
    assert_eq!(
        err_text(p),
        "point 3 key \"t\\n\": newline, carriage return and tab are not allowed in tag key"
    );
    assert_eq!(
        err_text(raw(vec![("f\n", RawValue::Int(1))])),
        "point 3 key \"f\\n\": newline, carriage return and tab are not allowed in field key"
    );
}

#[test]
fn nul_in_names_is_refused_and_kept_in_string_fields() {
    let mut p = raw(vec![("a", RawValue::Int(1))]);
    p.measurement = s("\0cpu");
    assert_eq!(
        err_text(p),
        "point 3: NUL characters are not allowed in measurement"
    );
    let mut p = raw(vec![("a", RawValue::Int(1))]);
    p.tags = vec![("t".into(), s("x\0"))];
    assert_eq!(
        err_text(p),
        "point 3 key \"t\": NUL characters are not allowed in tag value"
    );
    assert_eq!(
        err_text(raw(vec![("f\0", RawValue::Int(1))])),
        "point 3 key \"f\\0\": NUL characters are not allowed in field key"
    );
    let p = raw(vec![("msg", s("a\0b"))])
        .into_point(0, &opts())
        .unwrap();
    assert_eq!(p.fields[0].1, FieldValue::Str("a\0b".into()));
}

#[test]
fn trailing_backslashes_are_stripped_and_empty_tag_values_dropped() {
    let mut p = raw(vec![("a\\\\", RawValue::Int(1))]);
    p.measurement = s("disk\\");
    p.tags = vec![
        ("path".into(), s("C:\\dir\\")),
        ("empty".into(), s("")),
        ("only_bs".into(), s("\\")),
    ];
    let p = p.into_point(0, &opts()).unwrap();
    assert_eq!(p.measurement, "disk");
    assert_eq!(p.tags, vec![("path".to_owned(), "C:\\dir".to_owned())]);
    assert_eq!(p.fields[0].0, "a");
    let mut p = raw(vec![("a", RawValue::Int(1))]);
    p.tags = vec![("\\".into(), s("v"))];
    assert_eq!(err_text(p), "point 3 key \"\": key is empty");
    let mut p = raw(vec![("a", RawValue::Int(1))]);
    p.measurement = s("\\");
    assert_eq!(err_text(p), "point 3: measurement is missing or empty");
}

#[test]
fn comment_measurements_and_misread_field_keys_are_refused() {
    let mut p = raw(vec![("a", RawValue::Int(1))]);
    p.measurement = s("#cpu");
    assert!(err_text(p).contains("may not start with '#'"));
    assert!(err_text(raw(vec![("a\\ b", RawValue::Int(1))]))
        .contains("field key cannot have a backslash"));
    assert!(err_text(raw(vec![("a\\\\\\=b", RawValue::Int(1))]))
        .contains("field key cannot have a backslash"));
    // An even run, or a backslash before anything else, is read right.
    for ok in ["a\\\\ b", "C:\\x", "a\\b=c"] {
        assert!(
            raw(vec![(ok, RawValue::Int(1))])
                .into_point(0, &opts())
                .is_ok(),
            "{ok}"
        );
    }
}

#[test]
fn newline_in_string_fields_is_kept() {
    let p = raw(vec![("msg", s("line1\nline2"))])
        .into_point(0, &opts())
        .unwrap();
    assert_eq!(p.fields[0].1, FieldValue::Str("line1\nline2".into()));
}

#[test]
fn a_key_both_tag_and_field_is_refused() {
    let mut p = raw(vec![("host", RawValue::Int(1))]);
    p.tags = vec![("host".into(), s("a"))];
    assert_eq!(
        err_text(p),
        "point 3 key \"host\": key is both a tag and a field"
    );
}

#[test]
fn a_key_both_tag_and_field_is_refused_in_big_points_too() {
    let mut p = raw((0..40)
        .map(|i| {
            (
                Box::leak(format!("f{i}").into_boxed_str()) as &str,
                RawValue::Int(i),
            )
        })
        .collect());
    p.tags = (0..40).map(|i| (format!("t{i}"), s("x"))).collect();
    p.tags.push(("f39".into(), s("x")));
    assert_eq!(
        err_text(p),
        "point 3 key \"f39\": key is both a tag and a field"
    );
}

#[test]
fn non_string_tags_are_written_as_text_and_containers_refused() {
    let mut p = raw(vec![("a", RawValue::Int(1))]);
    p.tags = vec![
        ("i".into(), RawValue::Int(42)),
        ("f".into(), RawValue::Float(1.5)),
        ("b".into(), RawValue::Bool(false)),
        ("n".into(), RawValue::None),
    ];
    let pt = p.clone().into_point(0, &opts()).unwrap();
    assert_eq!(
        pt.tags,
        vec![
            ("i".into(), "42".into()),
            ("f".into(), "1.5".into()),
            ("b".into(), "false".into())
        ]
    );
    p.tags = vec![("l".into(), RawValue::List(vec![]))];
    assert_eq!(
        err_text(p),
        "point 3 key \"l\": tag value must be str, int, float or bool, got list"
    );
}

#[test]
fn numbers_as_float_writes_every_number_as_float() {
    let o = ConvertOptions {
        numbers_as_float: true,
        ..opts()
    };
    let p = raw(vec![
        ("i", RawValue::Int(123)),
        (
            "l",
            RawValue::List(vec![RawValue::Int(1), RawValue::Float(2.5)]),
        ),
        ("b", RawValue::Bool(true)),
    ])
    .into_point(0, &o)
    .unwrap();
    assert_eq!(p.fields[0].1, FieldValue::F64(123.0));
    assert_eq!(
        p.fields[1].1,
        FieldValue::Array(ArrayValue::F64(vec![1.0, 2.5]))
    );
    assert_eq!(p.fields[2].1, FieldValue::Bool(true));
}

#[test]
fn time_is_stamped_guessed_or_converted() {
    let p = raw(vec![("a", RawValue::Int(1))])
        .into_point(0, &opts())
        .unwrap();
    assert_eq!(p.time_ns, NOW);
    let mut r = raw(vec![("a", RawValue::Int(1))]);
    r.time = RawValue::Int(1_716_544_492);
    assert_eq!(
        r.clone().into_point(0, &opts()).unwrap().time_ns,
        1_716_544_492_000_000_000
    );
    r.time = RawValue::Int(1_716_544_492_123);
    assert_eq!(
        r.clone().into_point(0, &opts()).unwrap().time_ns,
        1_716_544_492_123_000_000
    );
    r.time = RawValue::Int(28_608_408); // minutes
    let o = ConvertOptions {
        precision: Some(Precision::Minutes),
        ..opts()
    };
    assert_eq!(
        r.clone().into_point(0, &o).unwrap().time_ns,
        1_716_504_480_000_000_000
    );
    r.time = RawValue::Float(1.5);
    let secs = ConvertOptions {
        precision: Some(Precision::Seconds),
        ..opts()
    };
    assert_eq!(
        r.clone().into_point(0, &secs).unwrap().time_ns,
        1_500_000_000,
        "the fraction is kept, never truncated"
    );
    r.time = RawValue::Float(1_716_544_492.75);
    assert_eq!(
        r.clone().into_point(0, &opts()).unwrap().time_ns,
        1_716_544_492_750_000_000
    );
    r.time = RawValue::Float(1e30);
    assert_eq!(
        err_text(r.clone()),
        "point 3: time is out of range for a nanosecond timestamp"
    );
    r.time = RawValue::Float(f64::NAN);
    assert_eq!(
        err_text(r.clone()),
        "point 3: time cannot be NaN or infinite"
    );
    r.time = s("yesterday");
    assert_eq!(
        err_text(r),
        "point 3: time must be an int (or float) timestamp, got str"
    );
}

#[test]
fn other_python_types_are_named() {
    assert_eq!(
        err_text(raw(vec![("o", RawValue::Other("datetime".into()))])),
        "point 3 key \"o\": unsupported value type datetime"
    );
}
