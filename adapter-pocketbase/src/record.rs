//! Reading PocketBase record JSON into chatstore values, and the values chatstore writes.

use chatstore_core::Result;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::malformed;

/// A text field; missing or not a string is a malformed record.
pub fn text(record: &Value, field: &str) -> Result<String> {
    record
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| malformed(format!("record without text field {field:?}")))
}

/// A text field where `""` means none.
pub fn opt_text(record: &Value, field: &str) -> Result<Option<String>> {
    let value = text(record, field)?;
    Ok((!value.is_empty()).then_some(value))
}

/// A number field holding epoch seconds or a count.
pub fn int(record: &Value, field: &str) -> Result<i64> {
    let value = record
        .get(field)
        .ok_or_else(|| malformed(format!("record without number field {field:?}")))?;
    value
        .as_i64()
        .or_else(|| value.as_f64().map(|f| f as i64))
        .ok_or_else(|| malformed(format!("field {field:?} is not a number: {value}")))
}

/// A bool field.
pub fn boolean(record: &Value, field: &str) -> Result<bool> {
    record
        .get(field)
        .and_then(Value::as_bool)
        .ok_or_else(|| malformed(format!("record without bool field {field:?}")))
}

/// A json field; PocketBase returns `null` for an empty one.
pub fn json(record: &Value, field: &str) -> Option<Value> {
    record.get(field).filter(|v| !v.is_null()).cloned()
}

/// The value to send for a json field.
///
/// PocketBase: a json field given a JSON *object* re-encodes it through Go's float64 (`1.0`
/// comes back as `1`, large integers lose digits); given a *string* that is valid JSON, it
/// stores that text as it is. chatstore therefore always sends the serialised text.
pub fn json_value(value: &Value) -> Value {
    Value::String(value.to_string())
}

/// A record id derived from several strings: 32 lower-case hex characters of their sha256
/// (fits PocketBase's id rules whatever the parts hold, and is the same on every server).
pub fn derived_id(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    hasher
        .finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_separate_parts() {
        assert_eq!(derived_id(&["u", "t"]), derived_id(&["u", "t"]));
        assert_ne!(derived_id(&["ab", "c"]), derived_id(&["a", "bc"]));
        assert_eq!(derived_id(&["x"]).len(), 32);
    }
}
