//! chatstore's [`VectorFilter`] as a Chroma `where` clause, plus metadata checks.
//!
//! chatstore compares filter values as text (PostgreSQL's `->>`: `1` matches `1` and `"1"`);
//! Chroma compares typed values. The `where` clause therefore asks for every typed reading of
//! each value (the string, and the integer, float or boolean it spells), a superset that
//! Chroma can narrow with its metadata index, and the adapter keeps only the records the
//! filter itself matches ([`VectorFilter::matches`]).

use chatstore_core::vectors::{Condition, VectorFilter, as_text};
use chatstore_core::{Error, Result};
use serde_json::{Map, Value, json};

/// Every typed value whose text is `text`.
fn readings(text: &str) -> Vec<Value> {
    let mut out = vec![Value::String(text.to_owned())];
    match text {
        "true" => out.push(Value::Bool(true)),
        "false" => out.push(Value::Bool(false)),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        out.push(json!(i));
    } else if let Ok(f) = text.parse::<f64>()
        && f.is_finite()
    {
        out.push(json!(f));
    }
    out
}

fn any_of(mut clauses: Vec<Value>) -> Value {
    if clauses.len() == 1 {
        clauses.pop().unwrap_or(Value::Null)
    } else {
        json!({ "$or": clauses })
    }
}

/// The `where` clause of a filter; `None` for an empty filter.
pub(crate) fn to_where(filter: &VectorFilter) -> Option<Value> {
    let mut per_key: Vec<Value> = Vec::with_capacity(filter.conditions.len());
    for (key, condition) in &filter.conditions {
        let values: &[Value] = match condition {
            Condition::Eq(v) => std::slice::from_ref(v),
            Condition::In(values) => values,
        };
        let mut clauses = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for v in values {
            for reading in readings(&as_text(v)) {
                if seen.insert(reading.to_string()) {
                    clauses.push(json!({ key.as_str(): { "$eq": reading } }));
                }
            }
        }
        per_key.push(any_of(clauses));
    }
    match per_key.len() {
        0 => None,
        1 => per_key.pop(),
        _ => Some(json!({ "$and": per_key })),
    }
}

/// Why Chroma cannot store `key` as a metadata key, or `None` when it can: it refuses the
/// empty key, and keeps `$` for its filter operators and `#` for its own fields.
fn refused_key(key: &str) -> Option<String> {
    match key.chars().next() {
        None => Some("the key is empty, which Chroma refuses: give the value a name".to_owned()),
        Some(c @ ('$' | '#')) => Some(format!(
            "key {key:?} starts with {c:?}, which Chroma keeps for itself: rename the key"
        )),
        Some(_) => None,
    }
}

/// Whether the filter names a key Chroma cannot store: no record holds it, so the filter
/// matches nothing (Chroma itself answers such a `where` clause with 400 or no records).
pub(crate) fn matches_nothing(filter: &VectorFilter) -> bool {
    filter
        .conditions
        .iter()
        .any(|(key, _)| refused_key(key).is_some())
}

/// Checks that Chroma can store this metadata: keys it takes (see [`refused_key`]), and values
/// that are strings, integers that fit 64 bits, finite floats, booleans, or non-empty lists of
/// one of those types. Anything else (null, objects, mixed lists) is `InvalidInput`, never
/// silently changed.
pub(crate) fn check_metadata(id: &str, metadata: &Map<String, Value>) -> Result<()> {
    for (key, value) in metadata {
        // Chroma refuses such keys ("Invalid metadata at index N", naming neither item nor
        // key) only when their write is sent, after the writes before it.
        if let Some(reason) = refused_key(key) {
            return Err(Error::invalid(format!(
                "metadata of vector item {id:?}: {reason}"
            )));
        }
        let ok = match value {
            Value::Array(items) => {
                !items.is_empty()
                    && items.iter().all(scalar_ok)
                    && items.iter().all(|i| kind(i) == kind(&items[0]))
            }
            other => scalar_ok(other),
        };
        if !ok {
            return Err(Error::invalid(format!(
                "metadata of vector item {id:?}: key {key:?} holds {value}; Chroma stores only \
                 strings, numbers, booleans and non-empty lists of one of those (store nested \
                 values as JSON text)"
            )));
        }
    }
    Ok(())
}

fn scalar_ok(v: &Value) -> bool {
    match v {
        Value::String(_) | Value::Bool(_) => true,
        Value::Number(n) => n.is_i64() || n.as_f64().is_some_and(f64::is_finite) && !n.is_u64(),
        _ => false,
    }
}

fn kind(v: &Value) -> u8 {
    match v {
        Value::String(_) => 0,
        Value::Bool(_) => 1,
        Value::Number(n) if n.is_i64() => 2,
        _ => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_every_typed_reading() {
        let w = to_where(&VectorFilter::eq("page", 1)).expect("a clause");
        assert_eq!(
            w,
            json!({"$or": [{"page": {"$eq": "1"}}, {"page": {"$eq": 1}}]})
        );
        let w = to_where(&VectorFilter::eq("file_id", "f1").and_eq("ok", true)).expect("a clause");
        assert_eq!(
            w,
            json!({"$and": [
                {"file_id": {"$eq": "f1"}},
                {"$or": [{"ok": {"$eq": "true"}}, {"ok": {"$eq": true}}]}
            ]})
        );
        assert!(to_where(&VectorFilter::default()).is_none());
    }

    /// A filter on a key no record can hold on Chroma matches nothing; others are sent.
    #[test]
    fn a_filter_on_a_key_chroma_refuses_matches_nothing() {
        assert!(matches_nothing(&VectorFilter::eq("$x", 1)));
        assert!(matches_nothing(
            &VectorFilter::eq("a", 1).and_eq("#document", "x")
        ));
        assert!(!matches_nothing(
            &VectorFilter::eq("file_id", "f1").and_eq("a$", 1)
        ));
    }

    #[test]
    fn metadata_chroma_cannot_store_is_refused() {
        let ok = json!({"a": "x", "b": 1, "c": 1.5, "d": true, "e": ["x", "y"]});
        assert!(check_metadata("i", ok.as_object().expect("object")).is_ok());
        for bad in [
            json!({"a": null}),
            json!({"a": {"b": 1}}),
            json!({"a": []}),
            json!({"a": [1, "x"]}),
            json!({"a": u64::MAX}),
            json!({"": 1}),
            json!({"$a": 1}),
            json!({"#a": 1}),
        ] {
            assert!(
                check_metadata("i", bad.as_object().expect("object")).is_err(),
                "{bad}"
            );
        }
    }
}
