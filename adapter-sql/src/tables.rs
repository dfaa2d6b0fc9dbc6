//! Every table of an Open WebUI database, row for row, between two SQL databases (SQLite or
//! PostgreSQL, either way): what a move of Open WebUI from one SQL database to another needs
//! beyond the six aggregates (auth, folder, config, knowledge, note, channel, memory, ...).
//!
//! Rows are copied with their values unchanged: JSON columns as their exact text, integers
//! (millisecond timestamps included) as integers, booleans as the target stores them (0/1 on
//! SQLite), SQL `NULL` as `NULL`. Tables are walked in foreign-key order (parents first), each
//! in keyset batches by its primary key, written with multi-row statements that replace a row
//! already there, so copying a table again (a resumed run) changes nothing.
//!
//! Statements are built per table and batch size, and a column's values may change type from
//! row to row on SQLite, so they are never cached as prepared statements (PostgreSQL would
//! otherwise reuse the parameter types of the first execution).
//!
//! The migration engine copies the aggregates' tables (`user`, `chat`, `chat_message`, `tag`,
//! `file`) through the domain model; [`RowMode::UpdateOnly`] then brings the columns the model
//! does not carry (a user's `oauth`, a chat's `tasks`, the blob exactly as stored) onto the rows
//! the engine wrote, without adding rows the engine set aside.

use std::collections::{BTreeMap, BTreeSet};

use chatstore_core::{Error, Result};
use serde_json::{Map, Value};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row as _, TypeInfo as _, ValueRef as _};

use crate::SqlStore;
use crate::error::db_error;
use crate::pool::{Handle, Pool};

/// The tables of the six aggregates, copied by the migration engine.
pub const MODELLED_TABLES: &[&str] = &["user", "chat", "chat_message", "tag", "file"];

/// Tables never copied as rows: the schema revision (each database has its own), the vector
/// tables (vectors move through the engine's vector group) and SQLite's `chatstore_chat_tag`
/// (derived from `chat` by triggers, which fill the target's own as its chats arrive).
pub const NOT_COPIED: &[&str] = &[
    "alembic_version",
    "chatstore_chat_tag",
    "chatstore_vector",
    "chatstore_collection",
    "document_chunk",
];

/// Columns of a modelled table that the row copy leaves as the engine wrote them: a file's
/// `path` names where the target keeps its bytes.
pub const KEEP_TARGET_COLUMNS: &[(&str, &str)] = &[("file", "path")];

/// How rows reach the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowMode {
    /// Insert, replacing a row with the same primary key.
    Upsert,
    /// Only update rows the target holds (rows it lacks are left out).
    UpdateOnly,
}

/// A table and how many rows it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRows {
    /// Table name.
    pub name: String,
    /// Rows.
    pub rows: u64,
}

/// A row the target refused.
#[derive(Debug, Clone)]
pub struct RejectedRow {
    /// Its primary key values, joined by `/`.
    pub key: String,
    /// The row as JSON (column -> value; blobs as byte counts).
    pub row: Value,
    /// Why.
    pub error: String,
}

/// What copying one table did.
#[derive(Debug, Clone, Default)]
pub struct TableCopy {
    /// Rows read from the source.
    pub read: u64,
    /// Rows written (inserted, replaced or updated).
    pub written: u64,
    /// Rows an update-only copy found no target row for.
    pub absent: u64,
    /// Rows the target refused.
    pub rejected: Vec<RejectedRow>,
}

/// One value as read from either dialect.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Bool(bool),
    Text(String),
    Bytes(Vec<u8>),
}

impl Cell {
    fn to_json(&self) -> Value {
        match self {
            Cell::Null => Value::Null,
            Cell::Int(i) => Value::from(*i),
            Cell::Real(f) => Value::from(*f),
            Cell::Bool(b) => Value::Bool(*b),
            Cell::Text(s) => Value::String(s.clone()),
            Cell::Bytes(b) => Value::String(format!("<{} bytes>", b.len())),
        }
    }

    fn shown(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            other => other.to_json().to_string(),
        }
    }
}

/// How a column is read and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Real,
    Bool,
    Bytes,
    /// Text, JSON and anything else, carried as text (cast on PostgreSQL).
    Text,
}

#[derive(Debug, Clone)]
struct Column {
    name: String,
    kind: Kind,
    /// The PostgreSQL type name for casts (`json`, `bigint`, ...); empty on SQLite.
    pg_type: String,
}

#[derive(Debug, Clone)]
struct Table {
    name: String,
    columns: Vec<Column>,
    key: Vec<String>,
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn pg_kind(data_type: &str) -> Kind {
    match data_type {
        "smallint" | "integer" | "bigint" => Kind::Int,
        "real" | "double precision" => Kind::Real,
        "boolean" => Kind::Bool,
        "bytea" => Kind::Bytes,
        _ => Kind::Text,
    }
}

fn sqlite_kind(declared: &str) -> Kind {
    let d = declared.to_ascii_uppercase();
    if d.contains("BOOL") {
        Kind::Bool
    } else if d.contains("INT") {
        Kind::Int
    } else if d.contains("REAL") || d.contains("FLOA") || d.contains("DOUB") {
        Kind::Real
    } else if d.contains("BLOB") || d.contains("BINARY") {
        Kind::Bytes
    } else {
        Kind::Text
    }
}

fn entity(e: sqlx::Error) -> Error {
    db_error("table copy", e)
}

impl SqlStore {
    async fn table_names(&self) -> Result<Vec<String>> {
        match self.pool_ref() {
            Pool::Sqlite(Handle { pool: p, .. }) => sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' ORDER BY name",
            )
            .fetch_all(p)
            .await
            .map_err(entity),
            Pool::Postgres(Handle { pool: p, .. }, _) => sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
                 ORDER BY table_name",
            )
            .fetch_all(p)
            .await
            .map_err(entity),
        }
    }

    /// `(table, referenced table)` pairs of the foreign keys.
    async fn foreign_keys(&self, tables: &[String]) -> Result<Vec<(String, String)>> {
        match self.pool_ref() {
            Pool::Sqlite(Handle { pool: p, .. }) => {
                let mut out = Vec::new();
                for t in tables {
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT \"table\" FROM pragma_foreign_key_list({})",
                        sql_string(t)
                    )))
                    .fetch_all(p)
                    .await
                    .map_err(entity)?;
                    for r in rows {
                        let parent: String = r.try_get(0).map_err(entity)?;
                        out.push((t.clone(), parent));
                    }
                }
                Ok(out)
            }
            Pool::Postgres(Handle { pool: p, .. }, _) => sqlx::query_as(
                "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text \
                 FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace \
                 WHERE c.contype = 'f' AND n.nspname = current_schema()",
            )
            .fetch_all(p)
            .await
            .map(|rows: Vec<(String, String)>| {
                rows.into_iter()
                    .map(|(a, b)| {
                        (
                            a.trim_matches('"').to_owned(),
                            b.trim_matches('"').to_owned(),
                        )
                    })
                    .collect()
            })
            .map_err(entity),
        }
    }

    async fn table(&self, name: &str) -> Result<Table> {
        let (columns, key) = match self.pool_ref() {
            Pool::Sqlite(Handle { pool: p, .. }) => {
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT name, type, pk FROM pragma_table_info({}) ORDER BY cid",
                    sql_string(name)
                )))
                .fetch_all(p)
                .await
                .map_err(entity)?;
                let mut columns = Vec::new();
                let mut key: Vec<(i64, String)> = Vec::new();
                for r in rows {
                    let col: String = r.try_get(0).map_err(entity)?;
                    let ty: String = r.try_get(1).map_err(entity)?;
                    let pk: i64 = r.try_get(2).map_err(entity)?;
                    if pk > 0 {
                        key.push((pk, col.clone()));
                    }
                    columns.push(Column {
                        name: col,
                        kind: sqlite_kind(&ty),
                        pg_type: String::new(),
                    });
                }
                key.sort();
                (columns, key.into_iter().map(|(_, c)| c).collect())
            }
            Pool::Postgres(Handle { pool: p, .. }, _) => {
                let rows: Vec<(String, String, String)> = sqlx::query_as(
                    "SELECT column_name::text, data_type::text, \
                     format_type(a.atttypid, a.atttypmod) \
                     FROM information_schema.columns c \
                     JOIN pg_attribute a ON a.attrelid = (quote_ident(c.table_schema) || '.' || \
                       quote_ident(c.table_name))::regclass AND a.attname = c.column_name \
                     WHERE c.table_schema = current_schema() AND c.table_name = $1 \
                     ORDER BY c.ordinal_position",
                )
                .bind(name)
                .fetch_all(p)
                .await
                .map_err(entity)?;
                let key: Vec<String> = sqlx::query_scalar(
                    "SELECT a.attname::text FROM pg_index i \
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                     WHERE i.indrelid = (quote_ident(current_schema()) || '.' || quote_ident($1))::regclass \
                     AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)",
                )
                .bind(name)
                .fetch_all(p)
                .await
                .map_err(entity)?;
                let columns = rows
                    .into_iter()
                    .map(|(col, data_type, pg_type)| Column {
                        name: col,
                        kind: pg_kind(&data_type),
                        pg_type,
                    })
                    .collect();
                (columns, key)
            }
        };
        if columns.is_empty() {
            return Err(Error::invalid(format!("table {name:?} does not exist")));
        }
        if key.is_empty() {
            return Err(Error::invalid(format!(
                "table {name:?} has no primary key; it cannot be copied in keyset batches"
            )));
        }
        Ok(Table {
            name: name.to_owned(),
            columns,
            key,
        })
    }

    /// Every table holding rows of its own (not [`MODELLED_TABLES`], not [`NOT_COPIED`]),
    /// parents before the tables whose foreign keys name them, with its row count.
    pub async fn unmodelled_tables(&self) -> Result<Vec<TableRows>> {
        let mut out = Vec::new();
        for name in self.tables_in_fk_order().await? {
            if MODELLED_TABLES.contains(&name.as_str()) || NOT_COPIED.contains(&name.as_str()) {
                continue;
            }
            let rows = self.row_count(&name).await?;
            out.push(TableRows { name, rows });
        }
        Ok(out)
    }

    /// Rows of one table.
    pub async fn row_count(&self, table: &str) -> Result<u64> {
        let sql = format!("SELECT count(*) FROM {}", quote(table));
        let n: i64 = match self.pool_ref() {
            Pool::Sqlite(Handle { pool: p, .. }) => {
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_one(p)
                    .await
            }
            Pool::Postgres(Handle { pool: p, .. }, _) => {
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_one(p)
                    .await
            }
        }
        .map_err(entity)?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    /// Every table, parents first (ties and cycles by name).
    pub async fn tables_in_fk_order(&self) -> Result<Vec<String>> {
        let names = self.table_names().await?;
        let edges = self.foreign_keys(&names).await?;
        let mut parents: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for n in &names {
            parents.entry(n.as_str()).or_default();
        }
        for (child, parent) in &edges {
            if child != parent && names.contains(parent) {
                parents
                    .entry(child.as_str())
                    .or_default()
                    .insert(parent.as_str());
            }
        }
        let mut done: Vec<String> = Vec::new();
        while done.len() < names.len() {
            let ready = parents
                .iter()
                .find(|(n, ps)| {
                    !done.iter().any(|d| d == *n) && ps.iter().all(|p| done.iter().any(|d| d == p))
                })
                .map(|(n, _)| (*n).to_owned());
            let next = match ready {
                Some(n) => n,
                // A cycle: take the first table left, by name.
                None => match names.iter().find(|n| !done.contains(n)) {
                    Some(n) => n.clone(),
                    None => break,
                },
            };
            done.push(next);
        }
        Ok(done)
    }

    /// Copies the rows of `table` into the same table of `target`, in batches of `batch`
    /// rows ordered by primary key; `progress` gets the rows done after each batch. Columns in
    /// `keep` keep the target's values. A batch the target refuses is written row by row and
    /// the rows it still refuses are returned, not written; an unreachable end is an error.
    pub async fn copy_table(
        &self,
        target: &SqlStore,
        table: &str,
        mode: RowMode,
        batch: u32,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<TableCopy> {
        let none = std::collections::HashSet::new();
        self.copy_table_except(target, table, mode, batch, &none, progress)
            .await
    }

    /// [`SqlStore::copy_table`] leaving out the rows whose one-column primary key is in
    /// `except` (counted as read, not written): records a migration set aside, whose target
    /// rows are the target's own and must not take the source's columns.
    pub async fn copy_table_except(
        &self,
        target: &SqlStore,
        table: &str,
        mode: RowMode,
        batch: u32,
        except: &std::collections::HashSet<String>,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<TableCopy> {
        let source = self.table(table).await?;
        let dest = target.table(table).await?;
        let keep: Vec<&str> = KEEP_TARGET_COLUMNS
            .iter()
            .filter(|(t, _)| *t == table)
            .map(|(_, c)| *c)
            .collect();
        let mut columns = Vec::new();
        for c in &source.columns {
            let Some(d) = dest.columns.iter().find(|d| d.name == c.name) else {
                return Err(Error::invalid(format!(
                    "column {}.{} is missing in the target; its values would be lost",
                    table, c.name
                )));
            };
            if !keep.contains(&c.name.as_str()) {
                columns.push((c.clone(), d.clone()));
            }
        }
        // Rows are matched by the target's key: a key column the copy does not carry would
        // make one source row match (and update) several target rows, or insert its default.
        if let Some(k) = dest
            .key
            .iter()
            .find(|k| !columns.iter().any(|(_, d)| &d.name == *k))
        {
            return Err(Error::invalid(format!(
                "column {table}.{k} is part of the target's primary key but not in the source; \
                 rows cannot be matched by their whole key (the two databases' schemas differ: \
                 upgrade the source's Open WebUI first)"
            )));
        }
        let batch = batch.clamp(1, 10_000) as usize;
        let mut out = TableCopy::default();
        let mut after: Option<Vec<Cell>> = None;
        loop {
            let mut rows = self.read_rows(&source, after.as_deref(), batch).await?;
            let Some(last) = rows.last() else { break };
            after = Some(key_of(&source, last));
            out.read += rows.len() as u64;
            if !except.is_empty() {
                rows.retain(|row| match key_of(&source, row).as_slice() {
                    [Cell::Text(id)] => !except.contains(id),
                    _ => true,
                });
            }
            if !rows.is_empty() {
                target
                    .write_rows(&dest, &source, &columns, mode, rows, &mut out)
                    .await?;
            }
            progress(out.read);
        }
        Ok(out)
    }

    fn pool_ref(&self) -> &Pool {
        self.pool()
    }

    async fn read_rows(
        &self,
        t: &Table,
        after: Option<&[Cell]>,
        limit: usize,
    ) -> Result<Vec<Vec<Cell>>> {
        let dialect_pg = matches!(self.pool_ref(), Pool::Postgres(..));
        let select: Vec<String> = t
            .columns
            .iter()
            .map(|c| {
                let q = quote(&c.name);
                match (dialect_pg, c.kind) {
                    (true, Kind::Int) => format!("{q}::bigint"),
                    (true, Kind::Real) => format!("{q}::float8"),
                    (true, Kind::Text) => format!("{q}::text"),
                    _ => q,
                }
            })
            .collect();
        let key: Vec<String> = t.key.iter().map(|k| quote(k)).collect();
        let mut sql = format!("SELECT {} FROM {}", select.join(", "), quote(&t.name));
        if after.is_some() {
            let params: Vec<String> = (1..=key.len()).map(|i| format!("${i}")).collect();
            sql.push_str(&format!(
                " WHERE ({}) > ({})",
                key.join(", "),
                params.join(", ")
            ));
        }
        sql.push_str(&format!(" ORDER BY {} LIMIT {limit}", key.join(", ")));
        let after = after.unwrap_or_default();
        match self.pool_ref() {
            Pool::Sqlite(Handle { pool: p, .. }) => {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
                for c in after {
                    q = bind_sqlite(q, c.clone());
                }
                let rows = q.fetch_all(p).await.map_err(entity)?;
                rows.iter()
                    .map(|r| sqlite_cells(r, t.columns.len()))
                    .collect()
            }
            Pool::Postgres(Handle { pool: p, .. }, _) => {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
                for c in after {
                    q = bind_pg(q, c.clone());
                }
                let rows = q.fetch_all(p).await.map_err(entity)?;
                rows.iter().map(|r| pg_cells(r, &t.columns)).collect()
            }
        }
    }

    async fn write_rows(
        &self,
        dest: &Table,
        source: &Table,
        columns: &[(Column, Column)],
        mode: RowMode,
        rows: Vec<Vec<Cell>>,
        out: &mut TableCopy,
    ) -> Result<()> {
        let index: Vec<usize> = columns
            .iter()
            .filter_map(|(c, _)| source.columns.iter().position(|s| s.name == c.name))
            .collect();
        let picked: Vec<Vec<Cell>> = rows
            .iter()
            .map(|r| index.iter().map(|i| r[*i].clone()).collect())
            .collect();
        let dests: Vec<&Column> = columns.iter().map(|(_, d)| d).collect();
        match self.write_chunk(dest, &dests, mode, &picked).await {
            Ok(n) => {
                out.written += n;
                if mode == RowMode::UpdateOnly {
                    // A key the source lacks can make one row match several: never below zero.
                    out.absent += (picked.len() as u64).saturating_sub(n);
                }
                return Ok(());
            }
            Err(e) if e.is_retryable() => return Err(e),
            Err(_) => {}
        }
        for (row, full) in picked.iter().zip(&rows) {
            match self
                .write_chunk(dest, &dests, mode, std::slice::from_ref(row))
                .await
            {
                Ok(n) => {
                    out.written += n;
                    if mode == RowMode::UpdateOnly && n == 0 {
                        out.absent += 1;
                    }
                }
                Err(e) if e.is_retryable() => return Err(e),
                Err(e) => {
                    let mut obj = Map::new();
                    for (c, v) in source.columns.iter().zip(full) {
                        obj.insert(c.name.clone(), v.to_json());
                    }
                    out.rejected.push(RejectedRow {
                        key: key_of(source, full)
                            .iter()
                            .map(Cell::shown)
                            .collect::<Vec<_>>()
                            .join("/"),
                        row: Value::Object(obj),
                        error: e.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Writes rows in one transaction; returns how many rows were written.
    async fn write_chunk(
        &self,
        t: &Table,
        columns: &[&Column],
        mode: RowMode,
        rows: &[Vec<Cell>],
    ) -> Result<u64> {
        let pg = matches!(self.pool_ref(), Pool::Postgres(..));
        let names: Vec<String> = columns.iter().map(|c| quote(&c.name)).collect();
        let key: Vec<String> = t.key.iter().map(|k| quote(k)).collect();
        let non_key: Vec<&&Column> = columns
            .iter()
            .filter(|c| !t.key.contains(&c.name))
            .collect();
        let placeholder = |n: usize, c: &Column| {
            if pg {
                format!("CAST(${n} AS {})", c.pg_type)
            } else {
                format!("${n}")
            }
        };
        let mut statements: Vec<(String, Vec<Cell>)> = Vec::new();
        match mode {
            RowMode::Upsert => {
                // SQLite binds at most 32 766 values per statement, PostgreSQL 65 535.
                let per = (30_000 / columns.len().max(1)).max(1);
                for chunk in rows.chunks(per) {
                    let mut n = 0;
                    let mut values = Vec::new();
                    let mut binds = Vec::new();
                    for row in chunk {
                        let cells: Vec<String> = columns
                            .iter()
                            .zip(row)
                            .map(|(c, v)| {
                                n += 1;
                                binds.push(convert(v, c.kind, pg));
                                placeholder(n, c)
                            })
                            .collect();
                        values.push(format!("({})", cells.join(", ")));
                    }
                    let conflict = if non_key.is_empty() {
                        "DO NOTHING".to_owned()
                    } else {
                        let sets: Vec<String> = non_key
                            .iter()
                            .map(|c| format!("{q} = excluded.{q}", q = quote(&c.name)))
                            .collect();
                        format!("DO UPDATE SET {}", sets.join(", "))
                    };
                    statements.push((
                        format!(
                            "INSERT INTO {} ({}) VALUES {} ON CONFLICT ({}) {conflict}",
                            quote(&t.name),
                            names.join(", "),
                            values.join(", "),
                            key.join(", ")
                        ),
                        binds,
                    ));
                }
            }
            RowMode::UpdateOnly => {
                if non_key.is_empty() {
                    return Ok(0);
                }
                for row in rows {
                    let mut n = 0;
                    let mut binds = Vec::new();
                    let mut sets = Vec::new();
                    let mut wheres = Vec::new();
                    for (c, v) in columns.iter().zip(row) {
                        n += 1;
                        binds.push(convert(v, c.kind, pg));
                        let p = placeholder(n, c);
                        if t.key.contains(&c.name) {
                            wheres.push(format!("{} = {p}", quote(&c.name)));
                        } else {
                            sets.push(format!("{} = {p}", quote(&c.name)));
                        }
                    }
                    statements.push((
                        format!(
                            "UPDATE {} SET {} WHERE {}",
                            quote(&t.name),
                            sets.join(", "),
                            wheres.join(" AND ")
                        ),
                        binds,
                    ));
                }
            }
        }
        let mut written = 0u64;
        match self.pool_ref() {
            Pool::Sqlite(Handle { pool: p, .. }) => {
                let mut tx = p.begin_with("BEGIN IMMEDIATE").await.map_err(entity)?;
                for (sql, binds) in statements {
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
                    for b in binds {
                        q = bind_sqlite(q, b);
                    }
                    written += q.execute(&mut *tx).await.map_err(entity)?.rows_affected();
                }
                tx.commit().await.map_err(entity)?;
            }
            Pool::Postgres(Handle { pool: p, .. }, _) => {
                let mut tx = p.begin().await.map_err(entity)?;
                for (sql, binds) in statements {
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
                    for b in binds {
                        q = bind_pg(q, b);
                    }
                    written += q.execute(&mut *tx).await.map_err(entity)?.rows_affected();
                }
                tx.commit().await.map_err(entity)?;
            }
        }
        Ok(written)
    }
}

fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn key_of(t: &Table, row: &[Cell]) -> Vec<Cell> {
    t.key
        .iter()
        .filter_map(|k| t.columns.iter().position(|c| &c.name == k))
        .map(|i| row[i].clone())
        .collect()
}

/// A value as the target column takes it.
fn convert(v: &Cell, kind: Kind, pg: bool) -> Cell {
    match (v, kind) {
        (Cell::Null, _) => Cell::Null,
        (Cell::Int(i), Kind::Bool) if pg => Cell::Bool(*i != 0),
        (Cell::Text(s), Kind::Bool) if pg => Cell::Bool(matches!(
            s.to_ascii_lowercase().as_str(),
            "1" | "t" | "true"
        )),
        (Cell::Bool(b), _) if !pg => Cell::Int(i64::from(*b)),
        (Cell::Bool(b), Kind::Int | Kind::Real) => Cell::Int(i64::from(*b)),
        (Cell::Int(i), Kind::Real) => Cell::Real(*i as f64),
        (Cell::Text(s), Kind::Bytes) => Cell::Bytes(s.clone().into_bytes()),
        (Cell::Int(i), Kind::Text) if pg => Cell::Text(i.to_string()),
        (Cell::Real(f), Kind::Text) if pg => Cell::Text(f.to_string()),
        (Cell::Bool(b), Kind::Text) if pg => Cell::Text(b.to_string()),
        (Cell::Real(f), Kind::Int) if pg && f.fract() == 0.0 => Cell::Int(*f as i64),
        (Cell::Real(f), Kind::Int) if pg => Cell::Text(f.to_string()),
        (other, _) => other.clone(),
    }
}

type SqliteQuery<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>;
type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

fn bind_sqlite(q: SqliteQuery<'_>, c: Cell) -> SqliteQuery<'_> {
    match c {
        Cell::Null => q.bind(None::<String>),
        Cell::Int(i) => q.bind(i),
        Cell::Real(f) => q.bind(f),
        Cell::Bool(b) => q.bind(i64::from(b)),
        Cell::Text(s) => q.bind(s),
        Cell::Bytes(b) => q.bind(b),
    }
}

fn bind_pg(q: PgQuery<'_>, c: Cell) -> PgQuery<'_> {
    match c {
        Cell::Null => q.bind(None::<String>),
        Cell::Int(i) => q.bind(i),
        Cell::Real(f) => q.bind(f),
        Cell::Bool(b) => q.bind(b),
        Cell::Text(s) => q.bind(s),
        Cell::Bytes(b) => q.bind(b),
    }
}

fn sqlite_cells(r: &SqliteRow, n: usize) -> Result<Vec<Cell>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let raw = r.try_get_raw(i).map_err(entity)?;
        let cell = if raw.is_null() {
            Cell::Null
        } else {
            match raw.type_info().name() {
                "INTEGER" => Cell::Int(r.try_get(i).map_err(entity)?),
                "REAL" => Cell::Real(r.try_get(i).map_err(entity)?),
                "BLOB" => Cell::Bytes(r.try_get(i).map_err(entity)?),
                _ => Cell::Text(r.try_get(i).map_err(entity)?),
            }
        };
        out.push(cell);
    }
    Ok(out)
}

fn pg_cells(r: &PgRow, columns: &[Column]) -> Result<Vec<Cell>> {
    let mut out = Vec::with_capacity(columns.len());
    for (i, c) in columns.iter().enumerate() {
        let cell = match c.kind {
            Kind::Int => r.try_get::<Option<i64>, _>(i).map(|v| v.map(Cell::Int)),
            Kind::Real => r.try_get::<Option<f64>, _>(i).map(|v| v.map(Cell::Real)),
            Kind::Bool => r.try_get::<Option<bool>, _>(i).map(|v| v.map(Cell::Bool)),
            Kind::Bytes => r
                .try_get::<Option<Vec<u8>>, _>(i)
                .map(|v| v.map(Cell::Bytes)),
            Kind::Text => r.try_get::<Option<String>, _>(i).map(|v| v.map(Cell::Text)),
        }
        .map_err(entity)?
        .unwrap_or(Cell::Null);
        out.push(cell);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A target whose primary key has a column the source lacks is refused before anything is
    /// written: its rows could not be matched one to one.
    #[tokio::test]
    async fn a_target_key_column_missing_in_the_source_is_refused() {
        let dir = chatstore_testkit::scratch_folder("chatstore-sql-tests", "tables");
        let open = |name: &str| {
            let url = format!("sqlite://{}", dir.join(name).display());
            async move {
                SqlStore::connect(&url, crate::SqlOptions::default())
                    .await
                    .expect("open")
            }
        };
        let (source, target) = (open("source.db").await, open("target.db").await);
        let pool_of = |store: &SqlStore| match store.pool_ref() {
            Pool::Sqlite(Handle { pool, .. }) => pool.clone(),
            _ => unreachable!("a SQLite store"),
        };
        let run = |store: &SqlStore, sql: &'static str| {
            let pool = pool_of(store);
            async move { sqlx::raw_sql(sql).execute(&pool).await.expect(sql) }
        };
        run(
            &source,
            "CREATE TABLE t (id TEXT PRIMARY KEY, v TEXT); INSERT INTO t VALUES ('a', 'new')",
        )
        .await;
        run(
            &target,
            "CREATE TABLE t (id TEXT, part TEXT, v TEXT, PRIMARY KEY (id, part)); \
             INSERT INTO t VALUES ('a', 'x', 'old'), ('a', 'y', 'old')",
        )
        .await;
        for mode in [RowMode::UpdateOnly, RowMode::Upsert] {
            let err = source
                .copy_table(&target, "t", mode, 100, &mut |_| {})
                .await
                .expect_err("refused");
            assert_eq!(err.kind(), chatstore_core::ErrorKind::InvalidInput);
            assert!(err.to_string().contains("t.part"), "{err}");
        }
        let kept: Vec<String> = sqlx::query_scalar("SELECT v FROM t ORDER BY part")
            .fetch_all(&pool_of(&target))
            .await
            .expect("read");
        assert_eq!(kept, ["old", "old"]);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn declared_sqlite_types_map_to_kinds() {
        assert_eq!(sqlite_kind("BIGINT"), Kind::Int);
        assert_eq!(sqlite_kind("BOOLEAN"), Kind::Bool);
        assert_eq!(sqlite_kind("JSON"), Kind::Text);
        assert_eq!(sqlite_kind("VARCHAR(255)"), Kind::Text);
        assert_eq!(sqlite_kind("FLOAT"), Kind::Real);
        assert_eq!(sqlite_kind("BLOB"), Kind::Bytes);
        assert_eq!(pg_kind("double precision"), Kind::Real);
        assert_eq!(pg_kind("json"), Kind::Text);
    }

    #[test]
    fn values_take_the_target_columns_form() {
        assert_eq!(convert(&Cell::Int(1), Kind::Bool, true), Cell::Bool(true));
        assert_eq!(convert(&Cell::Bool(false), Kind::Bool, false), Cell::Int(0));
        assert_eq!(
            convert(&Cell::Int(1_700_000_000_123), Kind::Int, true),
            Cell::Int(1_700_000_000_123)
        );
        assert_eq!(
            convert(&Cell::Int(5), Kind::Text, true),
            Cell::Text("5".into())
        );
        assert_eq!(
            convert(&Cell::Text("null".into()), Kind::Text, true),
            Cell::Text("null".into())
        );
        assert_eq!(convert(&Cell::Null, Kind::Bool, true), Cell::Null);
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
    }
}
