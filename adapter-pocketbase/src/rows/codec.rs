//! How a [`Row`] is stored in a PocketBase record, and read back.
//!
//! | Open WebUI column | PocketBase field | SQL `NULL` |
//! |---|---|---|
//! | `id` | the record id ([`record_id`]: the escaped id, or the whole escaped primary key), and the text field `owui_id` as it is | never |
//! | text | text | `""` plus the bool field `<column>__null` = true |
//! | integer | text: [`encode_int`], 19 digits, ordered like the integers | `""` |
//! | boolean | bool | false plus `<column>__null` = true |
//! | JSON, JSON in text | json | null |
//!
//! Conditions and orders on `id` use `owui_id` (indexed), so they compare ids byte by byte
//! like every other backend; the record id keeps get-by-id and uniqueness exact.
//!
//! Only nullable text and boolean columns get a `__null` field: PocketBase stores a null text
//! as `""` and a null bool as false, so without it `NULL` and `""` (or false) would read back
//! alike. Integers are text because PocketBase numbers are float64: an epoch in nanoseconds
//! (about 1.7e18) is beyond 2^53 and would lose its last digits.

use chatstore_core::rows::{Column, ColumnKind, Row, Table};
use chatstore_core::{Error, Result};
use serde_json::{Map, Value};

use crate::error::malformed;
use crate::record::json_value;

/// The text field holding a row's `id` as it is (the record id is escaped, [`encode_id`]).
pub const ID_FIELD: &str = "owui_id";

/// The field conditions and orders on `column` use.
pub fn field_name(column: &Column) -> &'static str {
    if column.name == "id" {
        ID_FIELD
    } else {
        column.name
    }
}

/// The suffix of the field telling that a nullable text or boolean column is `NULL`.
pub const NULL_SUFFIX: &str = "__null";

/// Whether `column` has a `<column>__null` field.
pub fn has_null_field(column: &Column) -> bool {
    column.nullable
        && matches!(column.kind, ColumnKind::Text | ColumnKind::Bool)
        && column.name != "id"
}

/// The name of the null field of `column`.
pub fn null_field(column: &str) -> String {
    format!("{column}{NULL_SUFFIX}")
}

/// An integer as text whose byte order is the integer order: 19 zero-padded digits for
/// `0 ..= i64::MAX`; `-` and the 19 digits of `n + 2^63` for negative `n` (`-` sorts before
/// every digit, and `""`, a null, before both).
pub fn encode_int(n: i64) -> String {
    if n >= 0 {
        format!("{n:019}")
    } else {
        format!("-{:019}", i128::from(n) + (1_i128 << 63))
    }
}

/// The integer [`encode_int`] wrote; `None` for anything else.
pub fn decode_int(s: &str) -> Option<i64> {
    if s.len() == 19 && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    let digits = s.strip_prefix('-')?;
    if digits.len() != 19 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let shifted: i128 = digits.parse().ok()?;
    i64::try_from(shifted - (1_i128 << 63))
        .ok()
        .filter(|n| *n < 0)
}

/// The record id of an Open WebUI id. PocketBase forbids many characters in ids (`/`, `\`,
/// `.`, `:`, space, `%`, quotes, ...; model ids such as `llama3.1:8b` have them) and compares
/// ids case-insensitively, so every ASCII character but `a-z`, `0-9`, `-` and `_` is written
/// `~XX` (two upper-case hex digits): `llama3.1:8b` is stored as `llama3~2E1~3A8b`. Uuids are
/// kept as they are. Two different ids never get record ids equal ignoring case.
pub fn encode_id(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for c in id.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' || !c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("~{:02X}", c as u32));
        }
    }
    out
}

/// What separates the escaped columns of a composite primary key in a record id:
/// [`encode_id`] never writes two `~` in a row.
pub const KEY_SEPARATOR: &str = "~~";

/// The record id of a row: its escaped `id` ([`encode_id`]), or, for a table whose primary key
/// has more columns (`folder`: `(id, user_id)`), every key column escaped and joined by
/// [`KEY_SEPARATOR`] (`f1~~u1`), so two users' rows with one id are two records. Different
/// keys never get record ids equal ignoring case.
pub fn record_id(table: &Table, row: &Row) -> String {
    let part = |column: &str| {
        let text = match row.get(column) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        encode_id(&text)
    };
    table
        .primary_key
        .iter()
        .map(|c| part(c))
        .collect::<Vec<_>>()
        .join(KEY_SEPARATOR)
}

/// Whether records of `table` are keyed by more than the `id` column.
pub fn composite_key(table: &Table) -> bool {
    table.primary_key != ["id"]
}

/// The Open WebUI id of a record id written by [`encode_id`].
pub fn decode_id(record_id: &str) -> Result<String> {
    if !record_id.contains('~') {
        return Ok(record_id.to_owned());
    }
    let bad = || malformed(format!("record id {record_id:?} has a bad escape"));
    let mut out = String::with_capacity(record_id.len());
    let mut rest = record_id;
    while let Some(at) = rest.find('~') {
        out.push_str(&rest[..at]);
        let hex = rest.get(at + 1..at + 3).ok_or_else(bad)?;
        let code = u8::from_str_radix(hex, 16).map_err(|_| bad())?;
        if !code.is_ascii() {
            return Err(bad());
        }
        out.push(char::from(code));
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The stored form of one non-null scalar value of `column` inside a filter (text, encoded
/// integer or bool keyword are chosen by the caller); `None` when the value does not fit.
pub fn text_form(column: &Column, value: &Value) -> Option<String> {
    match (column.kind, value) {
        (ColumnKind::Text, Value::String(s)) => Some(s.clone()),
        (ColumnKind::Int, v) => v.as_i64().map(encode_int),
        _ => None,
    }
}

/// Writes the fields of `column` = `value` into `fields` (the column's own field, and its
/// null field when it has one).
pub fn put(
    fields: &mut Map<String, Value>,
    table: &Table,
    column: &Column,
    value: &Value,
) -> Result<()> {
    let bad = || {
        Error::invalid(format!(
            "{}.{} cannot hold {value}",
            table.name, column.name
        ))
    };
    let stored = match (column.kind, value) {
        (ColumnKind::Text, Value::Null) | (ColumnKind::Int, Value::Null) => {
            Value::String(String::new())
        }
        (ColumnKind::Text, Value::String(s)) if column.name == "id" => {
            fields.insert(ID_FIELD.to_owned(), Value::String(s.clone()));
            Value::String(encode_id(s))
        }
        (ColumnKind::Text, Value::String(s)) => Value::String(s.clone()),
        (ColumnKind::Int, v) => Value::String(encode_int(v.as_i64().ok_or_else(bad)?)),
        (ColumnKind::Bool, Value::Null) => Value::Bool(false),
        (ColumnKind::Bool, Value::Bool(b)) => Value::Bool(*b),
        (ColumnKind::Json | ColumnKind::JsonText, Value::Null) => Value::Null,
        (ColumnKind::Json | ColumnKind::JsonText, v) => json_value(v),
        _ => return Err(bad()),
    };
    fields.insert(column.name.to_owned(), stored);
    if has_null_field(column) {
        fields.insert(null_field(column.name), Value::Bool(value.is_null()));
    }
    Ok(())
}

/// The record body of a whole row (every column; missing ones are null), its record id
/// included ([`record_id`]).
pub fn record_of(table: &Table, row: &Row) -> Result<Value> {
    let mut fields = Map::new();
    for column in table.columns {
        put(
            &mut fields,
            table,
            column,
            row.get(column.name).unwrap_or(&Value::Null),
        )?;
    }
    if composite_key(table) {
        fields.insert("id".to_owned(), Value::String(record_id(table, row)));
    }
    Ok(Value::Object(fields))
}

/// The record body setting some columns.
pub fn patch_of(table: &Table, set: &Row) -> Result<Value> {
    let mut fields = Map::new();
    for (name, value) in set {
        let column = table
            .column(name)
            .ok_or_else(|| Error::invalid(format!("{} has no column {name:?}", table.name)))?;
        put(&mut fields, table, column, value)?;
    }
    Ok(Value::Object(fields))
}

/// The row a record holds (its values are moved, not copied: JSON columns can be large).
pub fn row_of(table: &Table, record: Value) -> Result<Row> {
    let values = values_of(table, record)?;
    Ok(table
        .columns
        .iter()
        .map(|column| column.name.to_owned())
        .zip(values)
        .collect())
}

/// The values a record holds, one per column of `table` in its order, moved out of the
/// record in one pass over its fields (no map is built and no field name allocated: a page
/// of records is decoded for every read of a model).
pub fn values_of(table: &Table, record: Value) -> Result<Vec<Value>> {
    let Value::Object(record) = record else {
        return Err(malformed(format!(
            "a {} record that is not an object",
            table.name
        )));
    };
    let columns = table.columns;
    let mut fields = vec![Value::Null; columns.len()];
    let mut nulls = vec![false; columns.len()];
    let mut original_id = None;
    for (key, value) in record {
        if key == ID_FIELD {
            original_id = Some(value);
        } else if let Some(i) = columns.iter().position(|c| c.name == key) {
            fields[i] = value;
        } else if let Some(name) = key.strip_suffix(NULL_SUFFIX)
            && let Some(i) = columns
                .iter()
                .position(|c| c.name == name && has_null_field(c))
        {
            nulls[i] = value.as_bool() == Some(true);
        }
    }
    let mut values = Vec::with_capacity(columns.len());
    for ((column, field), is_null) in columns.iter().zip(fields).zip(nulls) {
        let value = match column.kind {
            _ if is_null => Value::Null,
            ColumnKind::Text if column.name == "id" => match original_id.take() {
                Some(Value::String(id)) if !id.is_empty() => Value::String(id),
                _ => {
                    let id = field
                        .as_str()
                        .ok_or_else(|| malformed("a record without id"))?;
                    let id = id.split(KEY_SEPARATOR).next().unwrap_or_default();
                    Value::String(decode_id(id)?)
                }
            },
            ColumnKind::Text => match field {
                Value::String(_) | Value::Null => field,
                other => {
                    return Err(malformed(format!(
                        "{}.{} is {other}",
                        table.name, column.name
                    )));
                }
            },
            ColumnKind::Int => match field.as_str() {
                None | Some("") => Value::Null,
                Some(s) => Value::from(decode_int(s).ok_or_else(|| {
                    malformed(format!(
                        "{}.{} holds {s:?}, not an encoded integer",
                        table.name, column.name
                    ))
                })?),
            },
            ColumnKind::Bool => match field {
                Value::Bool(_) => field,
                _ => Value::Null,
            },
            ColumnKind::Json | ColumnKind::JsonText => field,
        };
        values.push(value);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_encode_in_order_and_round_trip() {
        let values = [
            i64::MIN,
            i64::MIN + 1,
            -1_000,
            -1,
            0,
            1,
            9,
            10,
            1_700_000_000,
            1_764_000_000_123_456_789,
            i64::MAX,
        ];
        let encoded: Vec<String> = values.iter().map(|n| encode_int(*n)).collect();
        for (n, e) in values.iter().zip(&encoded) {
            assert_eq!(decode_int(e), Some(*n), "{e}");
        }
        let mut sorted = encoded.clone();
        sorted.sort();
        assert_eq!(sorted, encoded, "byte order is integer order");
        assert!(String::new() < encoded[0], "a null sorts first");
        assert_eq!(decode_int("12"), None);
        assert_eq!(
            decode_int("-9223372036854775808"),
            None,
            "not written by encode_int"
        );
    }

    #[test]
    fn ids_escape_what_pocketbase_forbids_and_round_trip() {
        for id in [
            "plain-uuid",
            "openai/gpt-4o",
            "a\\b",
            "50%",
            "~2F",
            "Llama 3.1:8b",
            "é\"'$*",
        ] {
            let stored = encode_id(id);
            assert!(
                stored
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_~".contains(c) || !c.is_ascii()),
                "{stored}"
            );
            assert_eq!(decode_id(&stored).expect("decodes"), id);
        }
        assert_eq!(encode_id("3f2a-uuid_x"), "3f2a-uuid_x");
        assert_eq!(encode_id("llama3.1:8b"), "llama3~2E1~3A8b");
        assert_ne!(encode_id("A").to_lowercase(), encode_id("a").to_lowercase());
        assert!(decode_id("bad~zz").is_err());
    }

    #[test]
    fn composite_keys_make_one_record_id_per_key() {
        use chatstore_core::rows::tables::{FOLDER, NOTE};
        let folder = |id: &str, user: &str| {
            let mut row = Row::new();
            row.insert("id".into(), Value::from(id));
            row.insert("user_id".into(), Value::from(user));
            row
        };
        assert_eq!(record_id(&FOLDER, &folder("f1", "u1")), "f1~~u1");
        assert_ne!(
            record_id(&FOLDER, &folder("f1", "u1")),
            record_id(&FOLDER, &folder("f1", "u2"))
        );
        // The separator cannot be forged by the parts: `~` itself is escaped.
        assert_ne!(
            record_id(&FOLDER, &folder("a~~b", "c")).to_lowercase(),
            record_id(&FOLDER, &folder("a", "b~~c")).to_lowercase()
        );
        assert_eq!(record_id(&FOLDER, &folder("A.b", "u")), "~41~2Eb~~u");
        assert_eq!(record_id(&NOTE, &folder("n.1", "u")), "n~2E1");
        let record = record_of(&FOLDER, &folder("f1", "u1")).expect("encodes");
        assert_eq!(record["id"], "f1~~u1");
        assert_eq!(record["owui_id"], "f1");
    }
}
