//! Open WebUI's remaining tables (the `workspace` group) as the migration walks them: keyset
//! pages by primary key through [`RowStore::select`], rows compared with every column present,
//! and the order a batch is written in so that a row never arrives before the row of the same
//! table it points at.

use std::collections::{HashMap, HashSet};

use chatstore_core::rows::{
    Column, ColumnKind, Cond, Dir, Row, RowQuery, RowStore, Table, TimeUnit,
};
use chatstore_core::{Error, Result, Store, TagKey};
use serde_json::{Map, Value};

use crate::read::retrying;

/// Columns that point at a row of the same table (`(table, column)`, always at its `id`). A
/// child may sort before its parent by id, and PostgreSQL (foreign keys `fk_group_parent`,
/// `knowledge_directory_parent_id_fkey`) or a PocketBase relation refuses it until the parent
/// is there: a batch brings the parents it points at first.
pub const SELF_REFERENCES: &[(&str, &str)] = &[
    ("folder", "parent_id"),
    ("group", "parent_group_id"),
    ("knowledge_directory", "parent_id"),
    ("message", "parent_id"),
    ("message", "reply_to_id"),
];

/// How many parents up a chain a batch follows before giving up (a cycle in the source).
const MAX_DEPTH: usize = 64;

/// The key columns of the tag table, read without its other cells through the source's rows:
/// how the keys of a page of tags are listed when a tag in it cannot be decoded (invalid JSON
/// in `meta`), so that only that tag is set aside.
static TAG_KEYS: Table = Table {
    name: "tag",
    columns: &[
        Column {
            name: "user_id",
            kind: ColumnKind::Text,
            nullable: false,
        },
        Column {
            name: "id",
            kind: ColumnKind::Text,
            nullable: false,
        },
    ],
    primary_key: &["user_id", "id"],
    unique: &[],
    indexes: &[],
    owner: None,
    time_unit: TimeUnit::Seconds,
};

/// The `id` and `chat_id` columns of Open WebUI's `chat_message`, read without the other cells
/// through the source's rows: how the key of a message row without a chat that cannot be
/// decoded is found, so that only that row is set aside.
pub static MESSAGE_KEYS: Table = Table {
    name: "chat_message",
    columns: &[
        Column {
            name: "id",
            kind: ColumnKind::Text,
            nullable: false,
        },
        Column {
            name: "chat_id",
            kind: ColumnKind::Text,
            nullable: true,
        },
    ],
    primary_key: &["id"],
    unique: &[],
    indexes: &[],
    owner: None,
    time_unit: TimeUnit::Seconds,
};

/// The message key (`{chat_id}-{id}`) of a `chat_message` row read through [`MESSAGE_KEYS`]:
/// its id when that starts with its chat's id, else the chat's id and the whole row id.
pub fn message_row_key(row: &Row) -> Option<(String, String)> {
    let id = row.get("id").and_then(Value::as_str)?;
    let chat = row.get("chat_id").and_then(Value::as_str)?;
    let key = match id
        .strip_prefix(chat)
        .and_then(|rest| rest.strip_prefix('-'))
    {
        Some(_) => id.to_owned(),
        None => chatstore_core::messages::message_key(chat, id),
    };
    Some((key, chat.to_owned()))
}

/// The keys (`user_id` NUL `id`, as [`tag_key`] reads them) of up to `limit` tags after
/// `after`, in the order of [`TagRepo::scan`](chatstore_core::TagRepo::scan), read without
/// decoding the tags. `Unsupported` for a store without rows.
pub async fn tag_keys(store: &Store, after: Option<&TagKey>, limit: u32) -> Result<Vec<String>> {
    let rows = store.rows()?;
    let cursor = after.map(|k| serde_json::json!({"user_id": k.user_id, "id": k.id}));
    let query = page_after(&TAG_KEYS, cursor.as_ref(), limit)?;
    Ok(rows
        .select(&TAG_KEYS, &query)
        .await?
        .iter()
        .map(|row| merge_key(&TAG_KEYS, row))
        .collect())
}

/// A tag's key from its merge key (`user_id` NUL `id`).
pub fn tag_key(key: &str) -> TagKey {
    let (user_id, id) = key.split_once('\u{0}').unwrap_or((key, ""));
    TagKey {
        user_id: user_id.to_owned(),
        id: id.to_owned(),
    }
}

/// The primary key of `row` as an object (column -> value): the form a cursor is saved in.
pub fn key_value(table: &Table, row: &Row) -> Value {
    let key: Map<String, Value> = table
        .primary_key
        .iter()
        .map(|k| ((*k).to_owned(), row.get(*k).cloned().unwrap_or(Value::Null)))
        .collect();
    Value::Object(key)
}

/// The merge key of a row: its primary key values joined by NUL, which sorts exactly as the
/// key columns do one after the other (byte order, as every backend sorts text).
pub fn merge_key(table: &Table, row: &Row) -> String {
    table
        .primary_key
        .iter()
        .map(|k| match row.get(*k) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        })
        .collect::<Vec<_>>()
        .join("\u{0}")
}

/// The rows after `cursor` (a saved [`key_value`]) in primary key order, at most `limit`:
/// `id > last` for one key column; for `(a, b)`, `a >= x AND (a > x OR (a = x AND b > y))`.
/// The leading `a >= x` says nothing the alternatives do not, but it is what lets a database
/// start reading the key's index at the cursor: PostgreSQL reads an `OR` of ranges as a filter
/// on a walk from the index's first entry, so without it every page of a composite key's walk
/// read the index from the start (31 ms a page of 500 at 100,000 folders, against 0.4 ms).
pub fn page_after(table: &'static Table, cursor: Option<&Value>, limit: u32) -> Result<RowQuery> {
    let mut query = RowQuery::default();
    for k in table.primary_key {
        query = query.order_by(k, Dir::Asc);
    }
    query = query.page(0, Some(u64::from(limit)));
    let Some(cursor) = cursor else {
        return Ok(query);
    };
    let values: Vec<Value> = table
        .primary_key
        .iter()
        .map(|k| cursor.get(*k).cloned().unwrap_or(Value::Null))
        .collect();
    if values.iter().any(Value::is_null) {
        return Err(Error::invalid(format!(
            "the state file's cursor for {} ({cursor}) does not hold its primary key {:?}; \
             remove the state file to start over",
            table.name, table.primary_key
        )));
    }
    let mut alternatives = Vec::new();
    for (i, k) in table.primary_key.iter().enumerate() {
        let mut all: Vec<Cond> = table.primary_key[..i]
            .iter()
            .zip(&values)
            .map(|(e, v)| Cond::Eq(e, v.clone()))
            .collect();
        all.push(Cond::Gt(k, values[i].clone()));
        alternatives.push(all);
    }
    query.filter = match (
        alternatives.len(),
        table.primary_key.first(),
        values.first(),
    ) {
        (2.., Some(first), Some(value)) => {
            vec![Cond::Ge(first, value.clone()), Cond::Any(alternatives)]
        }
        _ => alternatives.pop().unwrap_or_default(),
    };
    Ok(query)
}

/// The row as compared: every column of the table (a missing one as `null`), no other key.
pub fn normalised(table: &Table, row: &Row) -> Row {
    table
        .columns
        .iter()
        .map(|c| {
            (
                c.name.to_owned(),
                row.get(c.name).cloned().unwrap_or(Value::Null),
            )
        })
        .collect()
}

fn parent_columns(table: &Table) -> Vec<&'static str> {
    SELF_REFERENCES
        .iter()
        .filter(|(t, _)| *t == table.name)
        .map(|(_, c)| *c)
        .collect()
}

fn id_of(row: &Row) -> Option<&str> {
    row.get("id").and_then(Value::as_str)
}

/// The batch in the order it is written: every row after the rows of this table it points at
/// (parents in the batch first; parents the source holds beyond the batch, read from the
/// source, put in front). A parent written early is written again, unchanged, in its own batch.
/// Returns the rows to write, each with whether it is such an early parent.
pub async fn parents_first(
    source: &dyn RowStore,
    table: &'static Table,
    batch: Vec<Row>,
) -> Result<Vec<(Row, bool)>> {
    let columns = parent_columns(table);
    if columns.is_empty() {
        return Ok(batch.into_iter().map(|r| (r, false)).collect());
    }
    let parents_of = |row: &Row| -> Vec<String> {
        columns
            .iter()
            .filter_map(|c| row.get(*c).and_then(Value::as_str))
            .filter(|p| Some(*p) != id_of(row))
            .map(str::to_owned)
            .collect()
    };
    // Parents outside the batch, fetched from the source, level by level.
    let mut known: HashSet<String> = batch
        .iter()
        .filter_map(|r| id_of(r).map(str::to_owned))
        .collect();
    let mut early: Vec<Row> = Vec::new();
    let mut wanted: Vec<String> = batch
        .iter()
        .flat_map(parents_of)
        .filter(|p| !known.contains(p))
        .collect();
    for _ in 0..MAX_DEPTH {
        wanted.sort();
        wanted.dedup();
        wanted.retain(|p| !known.contains(p));
        if wanted.is_empty() {
            break;
        }
        let found = parent_rows(source, table, &wanted).await?;
        known.extend(wanted.drain(..));
        for row in found {
            wanted.extend(parents_of(&row));
            early.push(row);
        }
    }
    let n_early = early.len();
    let mut all = early;
    all.extend(batch);
    let flags: Vec<bool> = (0..all.len()).map(|i| i < n_early).collect();
    let sequence = order(&all, &parents_of);
    let mut slots: Vec<Option<Row>> = all.into_iter().map(Some).collect();
    Ok(sequence
        .into_iter()
        .filter_map(|i| Some((slots.get_mut(i)?.take()?, flags[i])))
        .collect())
}

/// The rows of `table` with these ids, read together; when that read fails for a reason other
/// than availability, one by one, leaving out the rows the source cannot read (each is set
/// aside when the walk reaches it, and a child the target refuses without it is set aside with
/// the target's reason).
async fn parent_rows(
    source: &dyn RowStore,
    table: &'static Table,
    ids: &[String],
) -> Result<Vec<Row>> {
    let select = |ids: Vec<Value>| {
        let query = RowQuery::filter(vec![Cond::In("id", ids)]);
        async move { retrying("reading parent rows", || source.select(table, &query)).await }
    };
    let error = match select(ids.iter().cloned().map(Value::String).collect()).await {
        Err(e) if !e.is_retryable() => e,
        other => return other,
    };
    tracing::warn!(table = table.name, %error, "parent rows could not be read together; reading them one by one");
    let mut found = Vec::new();
    for id in ids {
        match select(vec![Value::String(id.clone())]).await {
            Ok(rows) => found.extend(rows),
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) => {
                tracing::warn!(table = table.name, id, error = %e, "a parent row cannot be read")
            }
        }
    }
    Ok(found)
}

/// The positions of `rows` in an order where each comes after the rows it points at (a
/// stable depth-first order; rows in a cycle keep their place).
fn order(rows: &[Row], parents_of: &dyn Fn(&Row) -> Vec<String>) -> Vec<usize> {
    let index: HashMap<String, usize> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| id_of(r).map(|id| (id.to_owned(), i)))
        .collect();
    let mut placed = vec![false; rows.len()];
    let mut out_order = Vec::with_capacity(rows.len());
    for start in 0..rows.len() {
        // Walk up to the highest unplaced ancestor, then place downwards.
        let mut chain = vec![start];
        let mut seen: HashSet<usize> = HashSet::from([start]);
        while let Some(&i) = chain.last() {
            let next = parents_of(&rows[i])
                .iter()
                .filter_map(|p| index.get(p).copied())
                .find(|j| !placed[*j] && !seen.contains(j));
            match next {
                Some(j) if chain.len() < MAX_DEPTH * 4 => {
                    seen.insert(j);
                    chain.push(j);
                }
                _ => break,
            }
        }
        for i in chain.into_iter().rev() {
            if !placed[i] {
                placed[i] = true;
                out_order.push(i);
            }
        }
    }
    out_order
}

/// The smallest value of the text `column` among the rows matching `filter`, found with
/// counts only (never reading a row): how the key of a row the source cannot read (invalid
/// JSON in one of its cells) is learnt, so that the row is set aside and the walk goes on.
/// One character at a time, each by a binary search over code points (about 21 counts a
/// character). `None` when no row matches.
pub async fn min_text(
    rows: &dyn RowStore,
    table: &'static Table,
    filter: &[Cond],
    column: &'static str,
) -> Result<Option<String>> {
    let count = |extra: Vec<Cond>| {
        let mut all = filter.to_vec();
        all.extend(extra);
        async move {
            retrying("counting rows around an unreadable one", || {
                rows.count(table, &all)
            })
            .await
        }
    };
    if count(Vec::new()).await? == 0 {
        return Ok(None);
    }
    let below = |prefix: &str, c: char| {
        let mut bound = prefix.to_owned();
        bound.push(c);
        vec![Cond::Lt(column, Value::String(bound))]
    };
    let mut prefix = String::new();
    // Keys are short; a longer walk means the store does not order as expected.
    for _ in 0..1024 {
        if !prefix.is_empty()
            && count(vec![Cond::Eq(column, Value::String(prefix.clone()))]).await? > 0
        {
            return Ok(Some(prefix));
        }
        // The next character c is the largest one with no value below `prefix + c`.
        let (mut lo, mut hi) = ('\u{1}', char::MAX);
        if count(below(&prefix, hi)).await? == 0 {
            prefix.push(hi);
            continue;
        }
        while let Some(mid) = middle(lo, hi) {
            if count(below(&prefix, mid)).await? > 0 {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        prefix.push(lo);
    }
    Err(Error::backend_msg(format!(
        "{}: the key of an unreadable row could not be found",
        table.name
    )))
}

/// A character strictly between `lo` and `hi` (code point order, surrogates skipped), if any.
fn middle(lo: char, hi: char) -> Option<char> {
    let (a, b) = (u32::from(lo), u32::from(hi));
    if b <= a + 1 {
        return None;
    }
    let mid = a + (b - a) / 2;
    char::from_u32(mid)
        .or_else(|| char::from_u32(0xE000).filter(|c| *c < hi))
        .or_else(|| char::from_u32(0xD7FF).filter(|c| *c > lo))
        .filter(|c| *c > lo && *c < hi)
}

#[cfg(test)]
mod tests {
    use chatstore_core::rows::tables::{FOLDER, GROUP, NOTE};
    use serde_json::json;

    use super::*;

    fn row(v: Value) -> Row {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_composite_key_pages_on_both_columns() {
        let q =
            page_after(&FOLDER, Some(&json!({"id": "f1", "user_id": "u1"})), 10).expect("query");
        assert_eq!(
            q.filter,
            vec![
                Cond::Ge("id", json!("f1")),
                Cond::Any(vec![
                    vec![Cond::Gt("id", json!("f1"))],
                    vec![
                        Cond::Eq("id", json!("f1")),
                        Cond::Gt("user_id", json!("u1"))
                    ],
                ])
            ]
        );
        assert_eq!(q.order, vec![("id", Dir::Asc), ("user_id", Dir::Asc)]);
        let q = page_after(&NOTE, Some(&json!({"id": "n1"})), 10).expect("query");
        assert_eq!(q.filter, vec![Cond::Gt("id", json!("n1"))]);
        assert_eq!(q.limit, Some(10));
        assert!(page_after(&NOTE, Some(&json!({"x": 1})), 10).is_err());
    }

    #[test]
    fn children_come_after_their_parents() {
        let rows = vec![
            row(json!({"id": "a", "parent_group_id": "c"})),
            row(json!({"id": "b", "parent_group_id": null})),
            row(json!({"id": "c", "parent_group_id": "b"})),
            row(json!({"id": "d", "parent_group_id": "d"})),
        ];
        let parents = |r: &Row| -> Vec<String> {
            r.get("parent_group_id")
                .and_then(Value::as_str)
                .filter(|p| Some(*p) != id_of(r))
                .map(|p| vec![p.to_owned()])
                .unwrap_or_default()
        };
        let ids: Vec<String> = order(&rows, &parents)
            .into_iter()
            .filter_map(|i| id_of(&rows[i]).map(str::to_owned))
            .collect();
        assert_eq!(ids, ["b", "c", "a", "d"]);
        assert_eq!(parent_columns(&GROUP), ["parent_group_id"]);
    }
}
