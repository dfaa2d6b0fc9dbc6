//! The one normalised comparison of domain values, shared by shadow reads (router),
//! verification (migration) and the model-based property test.
//!
//! Domain values are compared as JSON: objects by key whatever their order, integers exactly.
//! Numbers that are not both integers compare by what they are:
//! - stored numbers (metadata, a chat's JSON, rows) within [`STORED_TOLERANCE`] of their
//!   magnitude: every backend keeps them as doubles or exact decimals, so only the last bits of
//!   a double may differ, and a stored `1e-7` is not a stored `9e-7`;
//! - the components of a `vector` field within single precision ([`VECTOR_TOLERANCE`] of
//!   their magnitude), since pgvector and Chroma keep embeddings as 32-bit floats;
//! - a `distance` or `score` field within [`FLOAT_TOLERANCE`]: each backend computes it, in
//!   double or single precision, summing a thousand and more products.
//!
//! Sets (a chat's tags) are already ordered in the domain types, so they compare as sorted
//! lists.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{Capabilities, Error, Result};

/// How far apart two computed distances or scores may be and still compare equal: pgvector
/// sums a cosine distance's products in single precision, the memory model and SQLite in
/// double (1536 dimensions: up to about 2e-6 apart).
pub const FLOAT_TOLERANCE: f64 = 1e-5;

/// How far apart, relative to their magnitude, two stored non-integer numbers may be and still
/// compare equal: a few units in the last place of a double.
pub const STORED_TOLERANCE: f64 = 1e-12;

/// How far apart, relative to their magnitude, two components of a vector may be: twice single
/// precision's rounding (2^-24), so a value rounded once on each side still agrees.
pub const VECTOR_TOLERANCE: f64 = 1.0 / 8_388_608.0;

/// Below single precision's smallest normal number its spacing is fixed: components this
/// close to zero agree within it.
const VECTOR_FLOOR: f64 = 1.2e-38;

/// The value as JSON with object keys sorted (whatever `serde_json`'s map order is).
pub fn canonical<T: Serialize + ?Sized>(value: &T) -> Result<Value> {
    let value = serde_json::to_value(value)
        .map_err(|e| Error::backend("a domain value could not be turned into JSON", e))?;
    Ok(sorted(value))
}

fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> =
                map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// How closely two stores' numbers must agree to be the same data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// The rules of the module header.
    #[default]
    Float,
    /// As `Float`, except where one side keeps vectors in half precision (pgvector's
    /// `halfvec`, 11 significant bits; [`Capabilities::half_vectors`]): the components of a
    /// `vector` field agree within [`HALF_TOLERANCE`] of their magnitude, and a `distance` or
    /// `score` field (computed from such vectors) within [`HALF_DISTANCE_TOLERANCE`]. Metadata
    /// keeps the `Float` rule whatever its keys.
    HalfVectors,
}

impl Precision {
    /// The precision two stores' answers are compared with.
    pub fn between(a: &Capabilities, b: &Capabilities) -> Precision {
        if a.half_vectors || b.half_vectors {
            Precision::HalfVectors
        } else {
            Precision::Float
        }
    }
}

/// How far a vector component kept in half precision may be from the one written, relative
/// to its magnitude: twice half's rounding (2^-11), so a value rounded once on each side
/// still agrees.
pub const HALF_TOLERANCE: f64 = 1.0 / 1024.0;

/// How far apart two cosine distances may be when one is computed from half-precision vectors.
pub const HALF_DISTANCE_TOLERANCE: f64 = 1.0 / 512.0;

/// The rule for the numbers below a field.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Outside metadata: stored numbers, except below a `vector`, `distance` or `score` field.
    Outside(Precision),
    /// Inside metadata: stored numbers whatever the keys below.
    Stored,
    /// Vector components.
    Component(Precision),
    /// Computed distances and scores.
    Distance(Precision),
}

impl Rule {
    fn below(self, key: &str) -> Rule {
        match (self, key) {
            (Rule::Outside(_), "metadata") => Rule::Stored,
            (Rule::Outside(p), "vector" | "vectors") => Rule::Component(p),
            (Rule::Outside(p), "distance" | "distances" | "score" | "scores") => Rule::Distance(p),
            (rule, _) => rule,
        }
    }

    fn same_number(self, x: &serde_json::Number, y: &serde_json::Number) -> bool {
        if !(x.is_f64() || y.is_f64()) {
            return x == y;
        }
        let (Some(x), Some(y)) = (x.as_f64(), y.as_f64()) else {
            return false;
        };
        let apart = (x - y).abs();
        let magnitude = x.abs().max(y.abs());
        x == y
            || match self {
                Rule::Outside(_) | Rule::Stored => apart <= magnitude * STORED_TOLERANCE,
                Rule::Component(Precision::Float) => {
                    apart <= (magnitude * VECTOR_TOLERANCE).max(VECTOR_FLOOR)
                }
                // Below half's smallest normal (2^-14) its spacing is 2^-24.
                Rule::Component(Precision::HalfVectors) => {
                    apart <= (magnitude * HALF_TOLERANCE).max(1e-7)
                }
                Rule::Distance(Precision::Float) => apart <= FLOAT_TOLERANCE,
                Rule::Distance(Precision::HalfVectors) => apart <= HALF_DISTANCE_TOLERANCE,
            }
    }
}

/// Whether two JSON values hold the same data (see the module header for the rules).
pub fn same(a: &Value, b: &Value) -> bool {
    same_by(Rule::Outside(Precision::Float), a, b)
}

/// [`same`] at `precision`.
pub fn same_within(a: &Value, b: &Value, precision: Precision) -> bool {
    same_by(Rule::Outside(precision), a, b)
}

fn same_by(rule: Rule, a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => rule.same_number(x, y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_by(rule, x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_by(rule.below(k), v, w)))
        }
        _ => a == b,
    }
}

/// One field where two values differ.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldDiff {
    /// The field's JSON pointer (`/chat/history/currentId`; `""` for the whole value).
    pub path: String,
    /// The value on the left side (`null` when the field is missing there).
    pub left: Value,
    /// The value on the right side (`null` when the field is missing there).
    pub right: Value,
}

/// The fields where `a` and `b` differ, deepest first reached, in key order. Arrays of
/// different lengths differ as a whole; arrays of the same length are compared item by item.
pub fn diff(a: &Value, b: &Value) -> Vec<FieldDiff> {
    diff_within(a, b, Precision::Float)
}

/// [`diff`] at `precision`.
pub fn diff_within(a: &Value, b: &Value, precision: Precision) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    diff_into(Rule::Outside(precision), &mut String::new(), a, b, &mut out);
    out
}

fn diff_into(rule: Rule, path: &mut String, a: &Value, b: &Value, out: &mut Vec<FieldDiff>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let len = path.len();
                path.push('/');
                push_pointer_token(path, key);
                match (x.get(key), y.get(key)) {
                    (Some(v), Some(w)) => diff_into(rule.below(key), path, v, w, out),
                    (v, w) => out.push(FieldDiff {
                        path: path.clone(),
                        left: v.cloned().unwrap_or(Value::Null),
                        right: w.cloned().unwrap_or(Value::Null),
                    }),
                }
                path.truncate(len);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                let len = path.len();
                path.push('/');
                path.push_str(&i.to_string());
                diff_into(rule, path, v, w, out);
                path.truncate(len);
            }
        }
        _ if same_by(rule, a, b) => {}
        _ => out.push(FieldDiff {
            path: path.clone(),
            left: a.clone(),
            right: b.clone(),
        }),
    }
}

/// RFC 6901 escaping of one pointer token.
fn push_pointer_token(path: &mut String, key: &str) {
    for c in key.chars() {
        match c {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            c => path.push(c),
        }
    }
}

/// Lower-case hex sha256 of the value's canonical JSON text (keys sorted). Two records hash
/// alike exactly when their canonical JSON is identical; use [`same`] where floats computed by
/// different backends must be compared within the tolerance.
pub fn content_hash<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    let canonical = canonical(value)?;
    let text = serde_json::to_vec(&canonical)
        .map_err(|e| Error::backend("a domain value could not be written as JSON", e))?;
    let digest = Sha256::digest(&text);
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A vector kept in half precision (pgvector's `halfvec`) agrees with the one written
    /// within its rounding, and its distances within theirs; metadata, whatever its keys, and
    /// a component changed beyond the rounding still differ.
    #[test]
    fn half_precision_vectors_agree_within_their_rounding_and_nothing_else() {
        let written = json!({"id": "a", "vector": [0.123_456_789, -3.0e-6, 12.5], "distance": 0.25,
            "score": 0.875, "metadata": {"score": 0.5, "vector": 0.1}});
        // The components as halfvec keeps them (11 significant bits).
        let half = json!({"id": "a", "vector": [0.123_474_121_093_75, -2.980_232_238_769_531e-6, 12.5],
            "distance": 0.2508, "score": 0.8746, "metadata": {"score": 0.5, "vector": 0.1}});
        assert!(!same(&written, &half));
        assert!(same_within(&written, &half, Precision::HalfVectors));
        assert!(diff_within(&written, &half, Precision::HalfVectors).is_empty());
        let hits = json!([[written.clone()]]);
        assert!(same_within(
            &hits,
            &json!([[half.clone()]]),
            Precision::HalfVectors
        ));
        for (path, changed) in [
            ("/vector/0", json!(0.1237)),
            ("/distance", json!(0.26)),
            ("/score", json!(0.87)),
            ("/metadata/score", json!(0.5004)),
            ("/metadata/vector", json!(0.1001)),
        ] {
            let mut other = half.clone();
            *other.pointer_mut(path).expect("a field") = changed;
            assert!(
                !same_within(&written, &other, Precision::HalfVectors),
                "{path}"
            );
            let fields = diff_within(&written, &other, Precision::HalfVectors);
            assert_eq!(
                fields.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
                [path]
            );
        }
    }

    #[test]
    fn key_order_does_not_change_the_hash() {
        let a = json!({"b": 1, "a": {"y": [1, 2], "x": null}});
        let b: Value =
            serde_json::from_str(r#"{"a": {"x": null, "y": [1, 2]}, "b": 1}"#).expect("valid json");
        assert_eq!(
            content_hash(&a).expect("hash"),
            content_hash(&b).expect("hash")
        );
        assert_ne!(
            content_hash(&a).expect("hash"),
            content_hash(&json!({"b": 2, "a": {"y": [1, 2], "x": null}})).expect("hash")
        );
    }

    /// Every JSON text a store answers is read with the workspace's `float_roundtrip`
    /// parsing: without it, about one double in ten with 17 significant digits read back one
    /// unit in the last place off (and a filter on that value found nothing).
    #[test]
    fn floats_read_from_json_text_are_exact() {
        for text in [
            "0.9522444552911937",
            "0.30000000000000004",
            "1.7976931348623157e308",
        ] {
            let parsed: Value = serde_json::from_str(text).expect("valid json");
            let exact: f64 = text.parse().expect("a float");
            assert_eq!(
                parsed.as_f64().map(f64::to_bits),
                Some(exact.to_bits()),
                "{text}"
            );
        }
    }

    #[test]
    fn floats_compare_within_the_tolerance_and_integers_exactly() {
        // A vector's components within single precision, computed distances and scores
        // within FLOAT_TOLERANCE (single against double precision sums).
        assert!(same(
            &json!({"vector": [0.1f32 as f64, 1e-40f32 as f64], "distance": 0.25, "score": 0.875}),
            &json!({"vector": [0.1, 1e-40], "distance": 0.250_001_8, "score": 0.874_999_1})
        ));
        assert!(!same(
            &json!({"vector": [0.1]}),
            &json!({"vector": [0.100_001]})
        ));
        assert!(!same(
            &json!({"distance": 0.25}),
            &json!({"distance": 0.2501})
        ));
        // Stored numbers agree to the last bits of a double only: a stored 1e-7 is not 9e-7,
        // nor 0, nor a value rounded to single precision.
        assert!(same(&json!({"lr": 0.1 + 0.2}), &json!({"lr": 0.3})));
        assert!(same(
            &json!({"metadata": {"p": 1e-300}}),
            &json!({"metadata": {"p": 1e-300}})
        ));
        for (a, b) in [
            (1e-7, 9e-7),
            (1e-7, 0.0),
            (0.1f32 as f64, 0.1),
            (1e20, 1.0000001e20),
        ] {
            assert!(!same(&json!({"lr": a}), &json!({"lr": b})), "{a} {b}");
            assert!(
                !same(
                    &json!({"metadata": {"distance": a}}),
                    &json!({"metadata": {"distance": b}})
                ),
                "{a} {b}"
            );
        }
        assert!(!same(&json!(0.1), &json!(0.2)));
        assert!(!same(&json!(1), &json!(2)));
        assert!(same(
            &json!({"a": 1, "b": [0.5]}),
            &json!({"b": [0.5], "a": 1})
        ));
    }

    #[test]
    fn diff_names_each_differing_field_by_pointer() {
        let a = json!({"title": "x", "meta": {"a/b": 1, "gone": true}, "tags": ["a", "b"]});
        let b = json!({"title": "y", "meta": {"a/b": 2}, "tags": ["a", "c"]});
        let paths: Vec<String> = diff(&a, &b).into_iter().map(|d| d.path).collect();
        assert_eq!(paths, ["/meta/a~1b", "/meta/gone", "/tags/1", "/title"]);
        assert!(diff(&a, &a).is_empty());
        let whole = diff(&json!([1]), &json!([1, 2]));
        assert_eq!(whole.len(), 1);
        assert_eq!(whole[0].path, "");
    }
}
