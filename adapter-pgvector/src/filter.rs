//! Metadata filters as SQL: Open WebUI's `(vmetadata ->> key) = value` form, every key and value
//! a bound parameter. Values compare as text, as `->>` renders them (see
//! [`chatstore_core::vectors::as_text`]).

use chatstore_core::vectors::{Condition, VectorFilter, as_text};
use sqlx::{Postgres, QueryBuilder};

use crate::schema::FILTER_KEYS;

/// Appends ` AND (d.vmetadata ->> $k) = $v ...` for every condition of `filter`; `alias` is the
/// table alias of `document_chunk` in the query.
pub(crate) fn push(qb: &mut QueryBuilder<Postgres>, alias: &str, filter: Option<&VectorFilter>) {
    let Some(filter) = filter else { return };
    for (key, condition) in &filter.conditions {
        qb.push(format_args!(" AND ({alias}.vmetadata ->> "));
        match FILTER_KEYS.iter().find(|k| **k == key.as_str()) {
            // A key with a filter index is written as the index's own constant, so the planner
            // matches the expression (it is one of chatstore's constants, never user text).
            Some(indexed) => {
                qb.push(format_args!("'{indexed}'"));
            }
            None => {
                qb.push_bind(key.clone());
            }
        }
        match condition {
            Condition::Eq(v) => {
                qb.push(") = ");
                qb.push_bind(as_text(v));
            }
            Condition::In(values) => {
                qb.push(") = ANY(");
                qb.push_bind(values.iter().map(as_text).collect::<Vec<String>>());
                qb.push(")");
            }
        }
    }
}
