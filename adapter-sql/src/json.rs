//! Open WebUI's JSON columns: declared `JSON`, stored as compact UTF-8 text (SQLite TEXT,
//! PostgreSQL `json`, never `jsonb`), with Python's `None` stored as the JSON literal `null`.
//!
//! [`JsonText`] binds JSON text as a PostgreSQL `json` parameter (sqlx's own `Json` binds
//! `jsonb`, which would reformat the text) and as plain TEXT on SQLite.

use serde_json::{Map, Value};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueFormat, PgValueRef};
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Postgres, Sqlite, Type, ValueRef};

use chatstore_core::{Error, Result};

/// PostgreSQL's `json` type.
const JSON_OID: Oid = Oid(114);
/// PostgreSQL's `jsonb` type.
const JSONB_OID: Oid = Oid(3802);

/// The text of a JSON value in a JSON column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonText(pub(crate) String);

impl Type<Postgres> for JsonText {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(JSON_OID)
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        matches!(ty.oid(), Some(oid) if oid == JSON_OID || oid == JSONB_OID)
    }
}

impl Encode<'_, Postgres> for JsonText {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        // The binary form of `json` is its text.
        buf.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }
}

impl<'r> Decode<'r, Postgres> for JsonText {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        let binary = value.format() == PgValueFormat::Binary;
        let jsonb = value.type_info().oid() == Some(JSONB_OID);
        let mut bytes = value.as_bytes()?;
        if binary && jsonb {
            // jsonb's binary form starts with a version byte.
            bytes = bytes.get(1..).unwrap_or_default();
        }
        Ok(JsonText(std::str::from_utf8(bytes)?.to_owned()))
    }
}

impl Type<Sqlite> for JsonText {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
            || <i64 as Type<Sqlite>>::compatible(ty)
            || <f64 as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for JsonText {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        <String as Encode<'_, Sqlite>>::encode_by_ref(&self.0, buf)
    }
}

/// A column declared `JSON` has numeric affinity on SQLite: the text of a bare JSON number
/// (`42`, `1.5`) is stored as an INTEGER or a REAL, and read back here as its JSON text.
impl<'r> Decode<'r, Sqlite> for JsonText {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let (integer, real) = {
            let stored = value.type_info();
            (
                <i64 as Type<Sqlite>>::compatible(&stored),
                <f64 as Type<Sqlite>>::compatible(&stored),
            )
        };
        if integer {
            <i64 as Decode<'r, Sqlite>>::decode(value).map(|n| JsonText(n.to_string()))
        } else if real {
            <f64 as Decode<'r, Sqlite>>::decode(value).map(|x| JsonText(to_text(&Value::from(x))))
        } else {
            <String as Decode<'r, Sqlite>>::decode(value).map(JsonText)
        }
    }
}

/// Compact JSON text of a value, as Open WebUI writes it (raw UTF-8, no spaces).
pub(crate) fn to_text(value: &Value) -> String {
    value.to_string()
}

/// The text of an optional value: `None` is the JSON literal `null`, as Open WebUI stores
/// Python's `None`.
pub(crate) fn opt_to_text(value: Option<&Value>) -> String {
    value.map_or_else(|| "null".to_owned(), to_text)
}

/// Parses a JSON column; SQL NULL and JSON `null` both read as `None`.
pub(crate) fn parse(column: &str, text: Option<String>) -> Result<Option<Value>> {
    let Some(text) = text else { return Ok(None) };
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| Error::backend(format!("column {column} does not hold valid JSON"), e))?;
    Ok(if value.is_null() { None } else { Some(value) })
}

/// Parses a JSON column that should hold an object; anything else reads as an empty object.
pub(crate) fn parse_object(column: &str, text: Option<String>) -> Result<Map<String, Value>> {
    Ok(match parse(column, text)? {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    })
}

/// A JSON column argument for an optional value: `None` is stored as JSON `null`, the way
/// Open WebUI stores Python's `None`.
pub(crate) fn arg(value: Option<&Value>) -> crate::pool::Arg {
    crate::pool::Arg::Json(Some(opt_to_text(value)))
}

/// A JSON column argument for an optional value: `None` binds SQL NULL.
pub(crate) fn opt_arg(value: Option<&Value>) -> crate::pool::Arg {
    crate::pool::Arg::Json(value.map(to_text))
}
