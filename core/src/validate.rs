//! Input checks shared by every backend, so that bad input gets the same
//! [`Error::InvalidInput`](crate::Error::InvalidInput) everywhere and changes nothing.

use crate::{Error, Result};

/// The longest id chatstore accepts (Open WebUI ids are 36-character uuids; composite message
/// ids are two of them).
pub const MAX_ID_LEN: usize = 255;

/// Characters no id may hold: path separators, and those PocketBase refuses in record ids.
/// Open WebUI's uuids never contain them; refusing them everywhere keeps every backend alike.
pub const RESERVED_ID_CHARS: &[char] = &[
    '/', '\\', '.', '|', '"', '\'', '`', '<', '>', ':', '?', '*', '%', '$',
];

/// An id: non-empty, at most [`MAX_ID_LEN`] bytes, no whitespace, no control characters and
/// none of [`RESERVED_ID_CHARS`].
pub fn id(what: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(format!("{what} must not be empty")));
    }
    if value.len() > MAX_ID_LEN {
        return Err(Error::invalid(format!(
            "{what} is {} bytes long; at most {MAX_ID_LEN} are allowed",
            value.len()
        )));
    }
    if let Some(c) = value
        .chars()
        .find(|c| c.is_control() || c.is_whitespace() || RESERVED_ID_CHARS.contains(c))
    {
        return Err(Error::invalid(format!(
            "{what} {value:?} contains {c:?}; ids may hold letters, digits, '-' and '_' \
             (uuids fit), not whitespace, control characters or any of / \\ . | \" ' ` < > : ? * % $"
        )));
    }
    Ok(())
}

/// Free text stored in a text column: no NUL bytes (PostgreSQL rejects them in text).
pub fn text(what: &str, value: &str) -> Result<()> {
    if value.contains('\0') {
        return Err(Error::invalid(format!("{what} must not contain NUL bytes")));
    }
    Ok(())
}

/// The largest timestamp a store takes: 2^53 - 1, the largest integer every backend keeps
/// exactly (PocketBase's number fields are 64-bit floats, so 2^53 + 1 would read back as
/// 2^53). Epoch seconds reach it in some 285 million years; milliseconds in 285,000.
pub const MAX_TIMESTAMP: i64 = (1 << 53) - 1;

/// A timestamp in epoch seconds: from 0 to [`MAX_TIMESTAMP`].
pub fn timestamp(what: &str, value: i64) -> Result<()> {
    if !(0..=MAX_TIMESTAMP).contains(&value) {
        return Err(Error::invalid(format!(
            "{what} must be epoch seconds from 0 to {MAX_TIMESTAMP} (2^53 - 1, the largest \
             integer every backend keeps exactly), got {value}"
        )));
    }
    Ok(())
}

/// A JSON value that must be an object.
pub fn object(what: &str, value: &serde_json::Value) -> Result<()> {
    if !value.is_object() {
        return Err(Error::invalid(format!(
            "{what} must be a JSON object, got {}",
            json_type(value)
        )));
    }
    json_text(what, value)
}

/// A JSON value: strings and keys must not hold NUL (PostgreSQL's json rejects `\u0000`).
pub fn json_text(what: &str, value: &serde_json::Value) -> Result<()> {
    use serde_json::Value;
    match value {
        Value::String(s) => text(what, s),
        Value::Array(items) => items.iter().try_for_each(|v| json_text(what, v)),
        Value::Object(map) => json_map(what, map),
        _ => Ok(()),
    }
}

/// A JSON object's keys and values, as [`json_text`] checks them (for maps held outside a
/// `Value`, checked without copying them into one).
pub fn json_map(what: &str, map: &serde_json::Map<String, serde_json::Value>) -> Result<()> {
    map.iter().try_for_each(|(k, v)| {
        text(what, k)?;
        json_text(what, v)
    })
}

/// The JSON type name of a value, for messages.
pub fn json_type(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks an email address: non-empty, one `@` with text on both sides, no whitespace.
pub fn email(value: &str) -> Result<()> {
    let well_formed = value
        .split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        && value.len() <= MAX_ID_LEN;
    if !well_formed {
        return Err(Error::invalid(format!(
            "email {value:?} is not an address like name@example.com"
        )));
    }
    Ok(())
}

/// The current time in epoch seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A fresh uuid4 id, as Open WebUI makes them.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_reject_empty_slash_and_whitespace() {
        assert!(id("id", "").is_err());
        assert!(id("id", "a/b").is_err());
        assert!(id("id", "a b").is_err());
        assert!(id("id", "0b1e-uuid_like-ID").is_ok());
    }

    #[test]
    fn emails_need_an_at_sign() {
        assert!(email("a@b").is_ok());
        assert!(email("ab").is_err());
        assert!(email("@b").is_err());
        assert!(email("a b@c").is_err());
    }
}
