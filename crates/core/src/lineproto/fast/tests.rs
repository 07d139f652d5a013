//! The fast path against the reference path (`into_point` + `encode_point`).

use super::*;
use crate::lineproto::encode_point;
use crate::point::{Precision, RawPoint, RawValue};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum V {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

fn raw(v: &V) -> RawValue {
    match v {
        V::None => RawValue::None,
        V::Bool(b) => RawValue::Bool(*b),
        V::Int(i) => RawValue::Int(*i as i128),
        V::Float(f) => RawValue::Float(*f),
        V::Str(s) => RawValue::Str(s.clone()),
    }
}

fn val(rp: &mut RawPoints, v: &V) -> Val {
    match v {
        V::None => Val::None,
        V::Bool(b) => Val::Bool(*b),
        V::Int(i) => Val::Int(*i),
        V::Float(f) => Val::Float(*f),
        V::Str(s) => Val::Str(rp.str(s)),
    }
}

type Case = (String, Vec<(String, V)>, Vec<(String, V)>, V);

/// The reference: what `finish()` in the runtime does (input tags, then the rules).
fn slow(c: &Case, opts: &ConvertOptions, input_tags: &[(String, String)]) -> Option<Vec<u8>> {
    let mut p = RawPoint {
        measurement: RawValue::Str(c.0.clone()),
        tags: c.1.iter().map(|(k, v)| (k.clone(), raw(v))).collect(),
        fields: c.2.iter().map(|(k, v)| (k.clone(), raw(v))).collect(),
        time: raw(&c.3),
    };
    for (k, v) in input_tags {
        let taken = p.tags.iter().any(|(t, _)| t == k) || p.fields.iter().any(|(f, _)| f == k);
        if !taken {
            p.tags.push((k.clone(), RawValue::Str(v.clone())));
        }
    }
    let p = p.into_point(0, opts).ok()?;
    let mut out = Vec::new();
    encode_point(&p, &mut out);
    Some(out)
}

fn fast(c: &Case, opts: &ConvertOptions, input_tags: &[(String, String)]) -> Option<Vec<u8>> {
    let mut rp = RawPoints::new();
    let m = rp.str(&c.0);
    rp.begin_point(m);
    for (k, v) in &c.1 {
        let k = rp.str(k);
        let v = val(&mut rp, v);
        rp.item(k, v);
    }
    rp.fields();
    for (k, v) in &c.2 {
        let k = rp.str(k);
        let v = val(&mut rp, v);
        rp.item(k, v);
    }
    let t = val(&mut rp, &c.3);
    rp.end_point(t);
    let mut lines = Lines::new();
    encode_fast(&rp, 0, opts, input_tags, &mut lines).ok()?;
    Some(lines.as_bytes().to_vec())
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z]{1,4}",
        1 => "[a-c ,=\\\\\"#\n\t\0]{0,4}",
        1 => Just(String::new()),
    ]
}

fn value() -> impl Strategy<Value = V> {
    prop_oneof![
        Just(V::None),
        any::<bool>().prop_map(V::Bool),
        any::<i64>().prop_map(V::Int),
        prop_oneof![
            Just(1e300),
            Just(-0.0),
            Just(f64::NAN),
            Just(f64::INFINITY),
            any::<f64>()
        ]
        .prop_map(V::Float),
        name().prop_map(V::Str),
    ]
}

fn time() -> impl Strategy<Value = V> {
    prop_oneof![
        Just(V::None),
        any::<i64>().prop_map(V::Int),
        (0i64..2_000_000_000_000_000_000).prop_map(V::Int),
        prop_oneof![Just(1.5e9), Just(f64::NAN), any::<f64>()].prop_map(V::Float),
        Just(V::Str("x".into())),
    ]
}

fn keys() -> impl Strategy<Value = Vec<(String, V)>> {
    // Distinct keys, as in a dict.
    proptest::collection::btree_map(name(), value(), 0..5).prop_map(|m| m.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]
    #[test]
    fn whatever_the_fast_path_writes_is_what_the_rules_write(
        m in name(),
        tags in keys(),
        fields in keys(),
        t in time(),
        as_float in any::<bool>(),
        precision in prop_oneof![Just(None), Just(Some(Precision::Seconds)), Just(Some(Precision::Nanos))],
        input_tags in proptest::collection::btree_map(name(), name(), 0..3),
    ) {
        let opts = ConvertOptions { numbers_as_float: as_float, precision, now_ns: 1_700_000_000_000_000_000 };
        let input_tags: Vec<(String, String)> = input_tags.into_iter().collect();
        let case = (m, tags, fields, t);
        let s = slow(&case, &opts, &input_tags);
        if let Some(f) = fast(&case, &opts, &input_tags) {
            prop_assert_eq!(Some(f), s);
        }
    }
}

#[test]
fn the_common_point_takes_the_fast_path() {
    let opts = ConvertOptions {
        numbers_as_float: false,
        precision: None,
        now_ns: 7,
    };
    let case: Case = (
        "m".into(),
        vec![("host".into(), V::Str("h1".into())), ("n".into(), V::None)],
        vec![
            ("i".into(), V::Int(3)),
            ("f".into(), V::Float(1.5)),
            ("s".into(), V::Str("x y".into())),
            ("b".into(), V::Bool(true)),
        ],
        V::None,
    );
    let tags = vec![
        ("region".to_owned(), "eu".to_owned()),
        ("n".to_owned(), "x".to_owned()),
    ];
    let f = fast(&case, &opts, &tags).expect("fast path");
    assert_eq!(Some(f.clone()), slow(&case, &opts, &tags));
    assert_eq!(
        String::from_utf8(f).unwrap(),
        "m,host=h1,region=eu i=3i,f=1.5,s=\"x y\",b=true 7\n"
    );
}

#[test]
fn merge_field_replaces_in_place_and_set_tag_appends() {
    let mut rp = RawPoints::new();
    let m = rp.str("m");
    rp.begin_point(m);
    let k = rp.str("a");
    let v = rp.str("1");
    rp.item(k, Val::Str(v));
    rp.set_tag("name", Val::Int(5));
    rp.set_tag("a", Val::Int(2));
    rp.fields();
    let k = rp.str("x");
    rp.item(k, Val::Int(1));
    let k = rp.str("y");
    rp.item(k, Val::Int(2));
    let k = rp.str("x");
    rp.merge_field(k, Val::Int(9));
    rp.end_point(Val::Int(1));
    let mut lines = Lines::new();
    let opts = ConvertOptions {
        numbers_as_float: false,
        precision: Some(Precision::Nanos),
        now_ns: 0,
    };
    encode_fast(&rp, 0, &opts, &[], &mut lines).unwrap();
    assert_eq!(lines.as_bytes(), b"m,a=2,name=5 x=9i,y=2i 1\n");
}

#[test]
fn timestamps_are_written_whole_whatever_came_before() {
    let ts = [
        1_700_000_000_123_456_789,
        1_700_000_000_123_456_789,
        1_700_000_000_000_000_001,
        1_700_000_000_999_999_999,
        1_700_000_001_000_000_000,
        999_999_999,
        1_000_000_000,
        1_000_000_001,
        -1_000_000_001,
        -5,
        0,
        i64::MAX,
        i64::MAX - 1,
        9_999_999_999,
        10_000_000_000,
    ];
    let mut s = LineScratch::new();
    for &t in &ts {
        let mut out = Vec::new();
        s.write_time(&mut out, t);
        assert_eq!(String::from_utf8(out).unwrap(), t.to_string());
    }
}

proptest! {
    #[test]
    fn a_run_of_timestamps_is_written_as_itoa_writes_each(start in 0i64..4_000_000_000_000_000_000, steps in proptest::collection::vec(0i64..3_000_000_000, 1..20)) {
        let mut t = start;
        let mut scratch = LineScratch::new();
        for s in steps {
            t = t.saturating_add(s);
            let mut out = Vec::new();
            scratch.write_time(&mut out, t);
            prop_assert_eq!(String::from_utf8(out).unwrap(), t.to_string());
        }
    }
}
