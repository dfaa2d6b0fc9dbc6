//! chatstore's own indexes on Open WebUI's tables, where Open WebUI's schema has none that
//! serves chatstore's queries. They are named `chatstore_*`, never change a column, and are
//! only ever used by statements that say what their `WHERE` says (they are partial), so Open
//! WebUI's own queries plan as before.
//!
//! - `chatstore_chat_list` serves every chat list: one user's chats that are not internal,
//!   archived or not, newest first (`updated_at DESC, id`, the list's order). Open WebUI's
//!   `user_id_updated_at_id_idx` has the order but not the internal test, which reads
//!   `chat.meta`; on SQLite that column sits behind the conversation blob in the row, so every
//!   list and count read each chat's whole blob. On SQLite the index also carries the columns a
//!   list shows and filters by (title, meta, pinned, folder), so a list, its count and the tag
//!   and title filters read the index alone. On PostgreSQL it carries only what Open WebUI's
//!   `user_id_folder_unread_idx` already holds (an index entry has a size limit, and a long
//!   title or meta must never make Open WebUI's write fail), so counts and page offsets are
//!   index-only scans and the page's rows are read by id.
//!
//! SQLite builds it at open (`CREATE INDEX IF NOT EXISTS`; about a second per 100,000 chats,
//! once). PostgreSQL builds it `CONCURRENTLY`, so writers never wait, on a connection of its
//! own holding a session advisory lock: replicas opening at once build it once (the others go
//! on without waiting; lists are correct without the index, only slower), and an index an
//! interrupted build left `INVALID` is dropped and built again by the next open.

use chatstore_core::{Error, Result};
use sqlx::{Connection, PgConnection, Row as _};

use crate::chats::{pg_not_internal, sqlite_not_internal};
use crate::error::db_error;
use crate::pool::{Pool, Sql, args};

/// The chat list index's name.
pub(crate) const CHAT_LIST_INDEX: &str = "chatstore_chat_list";

/// SQLite: every column a list reads or filters by, so lists never read the table.
const SQLITE_CHAT_LIST: Sql = Sql::both(concat!(
    "CREATE INDEX IF NOT EXISTS chatstore_chat_list ON chat (user_id, COALESCE(archived, FALSE), \
     updated_at DESC, id, pinned, folder_id, title, created_at, meta) WHERE ",
    sqlite_not_internal!()
));

/// PostgreSQL: the list's key and order; `INCLUDE` holds only columns Open WebUI's own
/// `user_id_folder_unread_idx` holds too, so no entry can be larger than one of that index.
const PG_CHAT_LIST: &str = concat!(
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS chatstore_chat_list ON chat (user_id, \
     (COALESCE(archived, FALSE)), updated_at DESC NULLS LAST, id COLLATE \"C\") \
     INCLUDE (archived, pinned, folder_id) WHERE ",
    pg_not_internal!()
);

/// Whether the index exists and is valid (`NULL`: it does not exist).
const PG_VALID: &str = "SELECT i.indisvalid AS valid FROM pg_index i \
     WHERE i.indexrelid = to_regclass('chatstore_chat_list')";

const PG_DROP_INVALID: &str = "DROP INDEX CONCURRENTLY IF EXISTS chatstore_chat_list";

/// Session advisory lock held while chatstore builds one of its indexes ("chatlist").
const PG_BUILD_LOCK: i64 = 0x6368_6174_6c69_7374;

/// What [`ensure_postgres`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IndexBuild {
    /// The index was there and valid.
    Present,
    /// The index was built now (after dropping an invalid leftover, if there was one).
    Built {
        /// Whether an `INVALID` leftover of an interrupted build was dropped first.
        replaced_invalid: bool,
    },
    /// Another connection holds the build lock: it is building the index.
    BuiltElsewhere,
}

/// SQLite: creates the index if it is missing (one statement; a no-op once it exists).
pub(crate) async fn ensure_sqlite(pool: &Pool) -> Result<()> {
    pool.execute("chat list index", SQLITE_CHAT_LIST, args![])
        .await
        .map(drop)
}

/// PostgreSQL: makes sure the chat list index exists and is valid, building it
/// `CONCURRENTLY` on `conn` (a connection of its own, outside any transaction, that the caller
/// closes afterwards, which also releases the build lock if a step failed).
pub(crate) async fn ensure_postgres(conn: &mut PgConnection) -> Result<IndexBuild> {
    if valid(conn).await? == Some(true) {
        return Ok(IndexBuild::Present);
    }
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(PG_BUILD_LOCK)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| db_error("chat list index", e))?;
    if !locked {
        return Ok(IndexBuild::BuiltElsewhere);
    }
    let outcome = build_locked(conn).await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(PG_BUILD_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(|e| db_error("chat list index", e));
    let outcome = outcome?;
    unlocked?;
    Ok(outcome)
}

/// The build itself, under the lock: nobody else is building, so an invalid index is a
/// leftover.
async fn build_locked(conn: &mut PgConnection) -> Result<IndexBuild> {
    let replaced_invalid = match valid(conn).await? {
        Some(true) => return Ok(IndexBuild::Present),
        Some(false) => {
            tracing::warn!(
                "dropping the INVALID index {CHAT_LIST_INDEX} an interrupted build left, to \
                 build it again"
            );
            sqlx::raw_sql(PG_DROP_INVALID)
                .execute(&mut *conn)
                .await
                .map_err(|e| db_error("chat list index", e))?;
            true
        }
        None => false,
    };
    sqlx::raw_sql(PG_CHAT_LIST)
        .execute(&mut *conn)
        .await
        .map_err(|e| db_error("chat list index", e))?;
    match valid(conn).await? {
        Some(true) => Ok(IndexBuild::Built { replaced_invalid }),
        _ => Err(Error::backend_msg(format!(
            "{CHAT_LIST_INDEX} is not valid after CREATE INDEX CONCURRENTLY"
        ))),
    }
}

async fn valid(conn: &mut PgConnection) -> Result<Option<bool>> {
    let row = sqlx::query(PG_VALID)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| db_error("chat list index", e))?;
    row.map(|r| r.try_get::<bool, _>("valid"))
        .transpose()
        .map_err(|e| db_error("chat list index", e))
}

/// Builds the index on a new connection made with `options` (closed afterwards).
pub(crate) async fn ensure_postgres_with(
    options: &sqlx::postgres::PgConnectOptions,
) -> Result<IndexBuild> {
    let mut conn = PgConnection::connect_with(options)
        .await
        .map_err(|e| db_error("chat list index", e))?;
    let outcome = ensure_postgres(&mut conn).await;
    let _ = conn.close().await;
    outcome
}
