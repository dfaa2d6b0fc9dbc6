//! chatstore's own indexes on Open WebUI's tables, where Open WebUI's schema has none that
//! serves chatstore's queries. They are named `chatstore_*` and never change a column. The chat
//! indexes are partial, only ever used by statements that say what their `WHERE` says, so Open
//! WebUI's own chat queries plan as before; the note index may serve Open WebUI's note queries
//! too, which changes nothing they return.
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
//! - `chatstore_chat_internal` holds the internal chats of each user (few): a tag no chat of its
//!   user carries any more is deleted, and "no chat" includes internal ones, which the list
//!   index leaves out; with both, that check reads index entries instead of every chat.
//! - `chatstore_chat_tags` (PostgreSQL only) finds the chats carrying a tag: a GIN index on each
//!   chat's tag array (`meta::jsonb -> 'tags'`, `jsonb_path_ops`). With it the orphan-tag
//!   check of a tag removal reads the tag's entries instead of every one of the user's chats'
//!   `meta` (which the list index cannot hold on PostgreSQL). Its entries are hashes, so no tag
//!   list, however long, can make an Open WebUI write fail. SQLite has no such index; it keeps
//!   the table `chatstore_chat_tag` instead (`tag_links`).
//! - `chatstore_note_list` serves the notes page: one user's notes, newest first. Open WebUI's
//!   `note` table has no index but its key, so without it every list of notes read every note
//!   of every user (93 ms with 50,000 notes on SQLite, against 1.4 ms with 500).
//! - `chatstore_chat_scan`, `chatstore_chat_message_scan`, `chatstore_user_scan`,
//!   `chatstore_file_scan` and one `chatstore_<table>_scan` for each of the remaining models'
//!   tables keyed by `id` (PostgreSQL only) hold each table's key in bytes order
//!   (`COLLATE "C"`), the order of a keyset scan (a migration's or a verification's pages).
//!   Open WebUI's primary keys sort by the database's collation, which PostgreSQL does not use
//!   for a `COLLATE "C"` order even where that collation is `C`, so without them every page
//!   of a scan read and sorted the whole table. SQLite's keys already sort by bytes.
//! - `chatstore_folder_scan` (PostgreSQL only) does the same for `folder`, keyed by `(id,
//!   user_id)`: a walk page bounds `id` from its cursor on (`id >= x`, then the pair's test), so
//!   it starts reading at the cursor. SQLite's own key on the pair serves it.
//! - `chatstore_user_list` (both engines) serves the users page, newest first
//!   (`COALESCE(created_at, 0) DESC, id`): without it every page sorted every user (at
//!   100,000 users, 46 ms a page on PostgreSQL and 36 ms on SQLite; 0.08 and 0.04 ms with it).
//! - `chatstore_tag_scan` (both engines) holds every user's tags in the order of their keyset
//!   scan, `(user_id, id)`: Open WebUI's key on `tag` is `(id, user_id)`, the other way round.
//! - `chatstore_chat_message_changes` (PostgreSQL 16 and later) serves the change feed's
//!   catch-up, which reads the messages updated since a moment: a BRIN index on
//!   `chat_message.updated_at`, a few kilobytes, which leaves every streamed update HOT (an
//!   update changing only a BRIN index's columns is HOT from PostgreSQL 16 on). Without it a
//!   catch-up read the whole table (330 ms at a million messages, 0.6 ms with it).
//!   `chatstore_file_changes` does the same for `file.updated_at`.
//! - `chatstore_user_email_not_ascii` holds the users whose email has a character outside
//!   ASCII (few). Finding the users an email may belong to (a sign-in by email, a new user, a
//!   changed email) asks `uq_user_email_lower` for the ASCII ones and this index for the rest,
//!   which Rust compares with Unicode case folding (`users`); without it that statement read
//!   every user.
//!
//! SQLite builds it at open (`CREATE INDEX IF NOT EXISTS`; about a second per 100,000 chats,
//! once). PostgreSQL builds it `CONCURRENTLY`, so writers never wait, on a connection of its
//! own holding a session advisory lock: replicas opening at once build it once (the others go
//! on without waiting; lists are correct without the index, only slower), and an index an
//! interrupted build left `INVALID` is dropped and built again by the next open.

use chatstore_core::{Error, Result};
use sqlx::{Connection, PgConnection, Row as _};

use crate::chats::{pg_internal, pg_not_internal, sqlite_internal, sqlite_not_internal};
use crate::error::db_error;
use crate::pool::{Arg, Dialect, List, Pool, Sql, args};
use crate::users::{pg_email_not_ascii, sqlite_email_not_ascii};

/// One of chatstore's indexes: its name and its DDL on each dialect.
struct OwnIndex {
    name: &'static str,
    /// `None`: PostgreSQL only.
    sqlite: Option<Sql>,
    postgres: &'static str,
    drop_postgres: &'static str,
    /// The oldest PostgreSQL (`server_version_num`) it is built on; older servers go without.
    postgres_since: i64,
}

/// An index in the keyset scans' order (bytes) on `table`'s key, PostgreSQL only. An entry is
/// as large as the primary key's, so no Open WebUI write that its primary key takes can fail
/// here.
macro_rules! scan_index {
    ($name:literal, $table:literal) => {
        OwnIndex {
            name: $name,
            sqlite: None,
            postgres: concat!(
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS ",
                $name,
                " ON ",
                $table,
                " (id COLLATE \"C\")"
            ),
            drop_postgres: concat!("DROP INDEX CONCURRENTLY IF EXISTS ", $name),
            postgres_since: 0,
        }
    };
}

/// chatstore's indexes, in the order they are built.
const INDEXES: &[OwnIndex] = &[
    OwnIndex {
        name: "chatstore_chat_list",
        // SQLite: every column a list reads or filters by, so lists never read the table.
        sqlite: Some(Sql::both(concat!(
            "CREATE INDEX IF NOT EXISTS chatstore_chat_list ON chat (user_id, \
             COALESCE(archived, FALSE), updated_at DESC, id, pinned, folder_id, title, \
             created_at, meta) WHERE ",
            sqlite_not_internal!()
        ))),
        // PostgreSQL: the list's key and order; `INCLUDE` holds only columns Open WebUI's own
        // `user_id_folder_unread_idx` holds too, so no entry can be larger than one of that
        // index.
        postgres: concat!(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS chatstore_chat_list ON chat (user_id, \
             (COALESCE(archived, FALSE)), updated_at DESC NULLS LAST, id COLLATE \"C\") \
             INCLUDE (archived, pinned, folder_id) WHERE ",
            pg_not_internal!()
        ),
        drop_postgres: "DROP INDEX CONCURRENTLY IF EXISTS chatstore_chat_list",
        postgres_since: 0,
    },
    OwnIndex {
        name: "chatstore_chat_internal",
        sqlite: Some(Sql::both(concat!(
            "CREATE INDEX IF NOT EXISTS chatstore_chat_internal ON chat (user_id, meta) WHERE ",
            sqlite_internal!()
        ))),
        postgres: concat!(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS chatstore_chat_internal ON chat (user_id) \
             WHERE ",
            pg_internal!()
        ),
        drop_postgres: "DROP INDEX CONCURRENTLY IF EXISTS chatstore_chat_internal",
        postgres_since: 0,
    },
    OwnIndex {
        name: "chatstore_chat_tags",
        sqlite: None,
        // The expression is the orphan-tag check's, and only its: the tag filter of a list
        // writes `(meta -> 'tags')::jsonb`, and a list is best served walking the user's
        // entries of the list index in order (an index of every chat carrying two common
        // tags, intersected with the user's, read 1,000 rows to sort where the walk read 600
        // to fill the page: 3.7 against 1.5 ms at the benchmark's 100k). Open WebUI's own
        // queries never write it either, so their plans stay as they were. Casting `meta`
        // fails where `meta -> 'internal'` in the list index's condition already does (a
        // `\u0000` escape), never elsewhere.
        // Not partial: PostgreSQL estimates a tag's share from the statistics of an expression
        // index only when the index covers every row; without them it reckons a tag no other
        // chat carries common enough to be found soon by reading the table from the start.
        // No pending list (`fastupdate`): a search never reads unsorted entries.
        postgres: "CREATE INDEX CONCURRENTLY IF NOT EXISTS chatstore_chat_tags ON chat USING gin \
             ((meta::jsonb -> 'tags') jsonb_path_ops) WITH (fastupdate = off)",
        drop_postgres: "DROP INDEX CONCURRENTLY IF EXISTS chatstore_chat_tags",
        postgres_since: 0,
    },
    OwnIndex {
        name: "chatstore_note_list",
        // The notes page: a user's notes newest first (`updated_at DESC, id`, the order of
        // every row-store list sorted by `updated_at`).
        sqlite: Some(Sql::both(
            "CREATE INDEX IF NOT EXISTS chatstore_note_list ON note (user_id, updated_at DESC, id)",
        )),
        postgres: "CREATE INDEX CONCURRENTLY IF NOT EXISTS chatstore_note_list ON note (user_id, \
             updated_at DESC NULLS LAST, id COLLATE \"C\")",
        drop_postgres: "DROP INDEX CONCURRENTLY IF EXISTS chatstore_note_list",
        postgres_since: 0,
    },
    scan_index!("chatstore_chat_scan", "chat"),
    scan_index!("chatstore_chat_message_scan", "chat_message"),
    scan_index!("chatstore_user_scan", "\"user\""),
    scan_index!("chatstore_file_scan", "\"file\""),
    OwnIndex {
        name: "chatstore_tag_scan",
        // Open WebUI's key is `(id, user_id)`, the other way round, and its `user_id_idx`
        // holds no id: every page of every user's tags sorted them all.
        sqlite: Some(Sql::both(
            "CREATE INDEX IF NOT EXISTS chatstore_tag_scan ON tag (user_id, id)",
        )),
        postgres: "CREATE INDEX CONCURRENTLY IF NOT EXISTS chatstore_tag_scan ON tag \
             (user_id COLLATE \"C\", id COLLATE \"C\")",
        drop_postgres: "DROP INDEX CONCURRENTLY IF EXISTS chatstore_tag_scan",
        postgres_since: 0,
    },
    // The remaining models' tables keyed by `id` alone (`chatstore_core::rows`); `folder`'s
    // key has two columns, its index comes after them.
    scan_index!("chatstore_group_scan", "\"group\""),
    scan_index!("chatstore_group_member_scan", "group_member"),
    scan_index!("chatstore_access_grant_scan", "access_grant"),
    scan_index!("chatstore_knowledge_scan", "knowledge"),
    scan_index!("chatstore_knowledge_directory_scan", "knowledge_directory"),
    scan_index!("chatstore_knowledge_file_scan", "knowledge_file"),
    scan_index!("chatstore_note_scan", "note"),
    scan_index!("chatstore_pinned_note_scan", "pinned_note"),
    scan_index!("chatstore_memory_scan", "memory"),
    scan_index!("chatstore_prompt_scan", "prompt"),
    scan_index!("chatstore_prompt_history_scan", "prompt_history"),
    scan_index!("chatstore_model_scan", "model"),
    scan_index!("chatstore_model_history_scan", "model_history"),
    scan_index!("chatstore_channel_scan", "channel"),
    scan_index!("chatstore_channel_member_scan", "channel_member"),
    scan_index!("chatstore_message_scan", "message"),
    scan_index!("chatstore_message_reaction_scan", "message_reaction"),
    scan_index!("chatstore_channel_file_scan", "channel_file"),
    scan_index!("chatstore_feedback_scan", "feedback"),
    scan_index!("chatstore_shared_chat_scan", "shared_chat"),
    scan_index!("chatstore_chat_file_scan", "chat_file"),
    OwnIndex {
        name: "chatstore_folder_scan",
        // `folder`'s key is `(id, user_id)`: two users' folders may share an id. A walk page
        // bounds `id` from the cursor on, then tests the pair.
        sqlite: None,
        postgres: "CREATE INDEX CONCURRENTLY IF NOT EXISTS chatstore_folder_scan ON folder \
             (id COLLATE \"C\", user_id COLLATE \"C\")",
        drop_postgres: "DROP INDEX CONCURRENTLY IF EXISTS chatstore_folder_scan",
        postgres_since: 0,
    },
    OwnIndex {
        name: "chatstore_user_list",
        // The users page, newest first (`users::LIST`'s order). Open WebUI's `user` table has
        // no index but its key and the email's, so every page sorted every user. Neither
        // column changes once a user exists, so the frequent `last_active_at` updates stay
        // HOT on PostgreSQL.
        sqlite: Some(Sql::both(
            "CREATE INDEX IF NOT EXISTS chatstore_user_list ON \"user\" \
             (COALESCE(created_at, 0) DESC, id)",
        )),
        postgres: "CREATE INDEX CONCURRENTLY IF NOT EXISTS chatstore_user_list ON \"user\" \
             ((COALESCE(created_at, 0)) DESC, id COLLATE \"C\")",
        drop_postgres: "DROP INDEX CONCURRENTLY IF EXISTS chatstore_user_list",
        postgres_since: 0,
    },
    OwnIndex {
        name: "chatstore_chat_message_changes",
        // The change feed's catch-up (`changes::MESSAGES_SINCE`): the messages updated since a
        // moment. A BRIN index holds each range of table pages' smallest and largest
        // `updated_at`, and messages are written, and streamed into, in time order, so the
        // recent ones sit in the last ranges. From PostgreSQL 16, an update that changes only
        // columns of such an index stays HOT, so a streamed message's updates write no
        // index entry, as before; a btree would add one to every index of the table.
        sqlite: None,
        postgres: "CREATE INDEX CONCURRENTLY IF NOT EXISTS chatstore_chat_message_changes ON \
             chat_message USING brin (updated_at)",
        drop_postgres: "DROP INDEX CONCURRENTLY IF EXISTS chatstore_chat_message_changes",
        postgres_since: 160_000,
    },
    OwnIndex {
        name: "chatstore_file_changes",
        // The same for files (`changes::FILES_SINCE`): Open WebUI has no index holding
        // `file.updated_at`, and files too are written in time order.
        sqlite: None,
        postgres: "CREATE INDEX CONCURRENTLY IF NOT EXISTS chatstore_file_changes ON \"file\" \
             USING brin (updated_at)",
        drop_postgres: "DROP INDEX CONCURRENTLY IF EXISTS chatstore_file_changes",
        postgres_since: 160_000,
    },
    OwnIndex {
        name: "chatstore_user_email_not_ascii",
        // Partial, with the condition the email statements write: only they use it, and it
        // holds only the users a non-ASCII email gives (the key is whatever is smallest).
        sqlite: Some(Sql::both(concat!(
            "CREATE INDEX IF NOT EXISTS chatstore_user_email_not_ascii ON \"user\" (id) WHERE ",
            sqlite_email_not_ascii!()
        ))),
        postgres: concat!(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS chatstore_user_email_not_ascii ON \"user\" \
             (id) WHERE ",
            pg_email_not_ascii!()
        ),
        drop_postgres: "DROP INDEX CONCURRENTLY IF EXISTS chatstore_user_email_not_ascii",
        postgres_since: 0,
    },
];

/// Whether an index exists and is valid (no row: it does not exist).
const PG_VALID: &str = "SELECT i.indisvalid AS valid FROM pg_index i \
     WHERE i.indexrelid = to_regclass($1)";

/// How many of the indexes named in `$1` this server should have (their `postgres_since` in
/// `$2` at most its version), and how many of those exist and are valid (one round trip
/// through the pool).
const PG_VALID_COUNT: Sql = Sql::both(
    "SELECT count(*) AS wanted, count(*) FILTER (WHERE i.indisvalid) AS valid \
     FROM unnest($1::text[], $2::bigint[]) AS w(name, since) \
     LEFT JOIN pg_index i ON i.indexrelid = to_regclass(w.name) \
     WHERE w.since <= current_setting('server_version_num')::bigint",
);

/// The server's version as a number (`180001` for 18.1).
const PG_VERSION: &str = "SELECT current_setting('server_version_num')::bigint";

/// Session advisory lock held while chatstore builds its indexes ("chatlist").
const PG_BUILD_LOCK: i64 = 0x6368_6174_6c69_7374;

/// What [`ensure_postgres`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IndexBuild {
    /// Every index was there and valid.
    Present,
    /// Missing indexes were built now (after dropping invalid leftovers, if there were any).
    Built {
        /// How many `INVALID` leftovers of interrupted builds were dropped first.
        replaced_invalid: usize,
    },
    /// Another connection holds the build lock: it is building them.
    BuiltElsewhere,
}

/// SQLite: creates the indexes that are missing (a no-op once they exist).
pub(crate) async fn ensure_sqlite(pool: &Pool) -> Result<()> {
    for index in INDEXES {
        if let Some(create) = index.sqlite {
            pool.execute(index.name, create, args![]).await?;
        }
    }
    Ok(())
}

/// PostgreSQL: whether every index exists and is valid, asked through the pool (so an open
/// that finds them needs no connection of its own, even through a transaction pooler).
pub(crate) async fn all_valid_pooled(pool: &Pool) -> Result<bool> {
    let row = pool
        .fetch_optional(
            "chatstore indexes",
            PG_VALID_COUNT,
            vec![
                Arg::List(List::Text(names())),
                Arg::List(List::Int(since())),
            ],
        )
        .await?;
    match row {
        Some(row) => Ok(row.int("valid")? == row.int("wanted")?),
        None => Ok(false),
    }
}

/// The names of chatstore's indexes, as [`PG_VALID_COUNT`] takes them.
fn names() -> Vec<String> {
    INDEXES.iter().map(|i| i.name.to_owned()).collect()
}

/// The oldest server version of each index, in the order of [`names`].
fn since() -> Vec<i64> {
    INDEXES.iter().map(|i| i.postgres_since).collect()
}

/// PostgreSQL: makes sure every index exists and is valid, building the missing ones
/// `CONCURRENTLY` on `conn` (a connection of its own, outside any transaction, that the caller
/// closes afterwards, which also releases the build lock if a step failed).
pub(crate) async fn ensure_postgres(conn: &mut PgConnection) -> Result<IndexBuild> {
    if all_valid(conn).await? {
        return Ok(IndexBuild::Present);
    }
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(PG_BUILD_LOCK)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| db_error("chatstore indexes", e))?;
    if !locked {
        return Ok(IndexBuild::BuiltElsewhere);
    }
    let outcome = build_locked(conn).await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(PG_BUILD_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(|e| db_error("chatstore indexes", e));
    let outcome = outcome?;
    unlocked?;
    Ok(outcome)
}

async fn all_valid(conn: &mut PgConnection) -> Result<bool> {
    let (wanted, valid): (i64, i64) = sqlx::query_as(PG_VALID_COUNT.text(Dialect::Postgres))
        .bind(names())
        .bind(since())
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| db_error("chatstore indexes", e))?;
    Ok(valid == wanted)
}

/// The build itself, under the lock: nobody else is building, so an invalid index is a
/// leftover.
async fn build_locked(conn: &mut PgConnection) -> Result<IndexBuild> {
    let version: i64 = sqlx::query_scalar(PG_VERSION)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| db_error("chatstore indexes", e))?;
    let mut built = false;
    let mut replaced_invalid = 0;
    for index in INDEXES.iter().filter(|i| i.postgres_since <= version) {
        match valid(conn, index.name).await? {
            Some(true) => continue,
            Some(false) => {
                tracing::warn!(
                    "dropping the INVALID index {} an interrupted build left, to build it again",
                    index.name
                );
                sqlx::raw_sql(index.drop_postgres)
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| db_error(index.name, e))?;
                replaced_invalid += 1;
            }
            None => {}
        }
        sqlx::raw_sql(index.postgres)
            .execute(&mut *conn)
            .await
            .map_err(|e| db_error(index.name, e))?;
        if valid(conn, index.name).await? != Some(true) {
            return Err(Error::backend_msg(format!(
                "{} is not valid after CREATE INDEX CONCURRENTLY",
                index.name
            )));
        }
        built = true;
    }
    Ok(if built {
        IndexBuild::Built { replaced_invalid }
    } else {
        IndexBuild::Present
    })
}

async fn valid(conn: &mut PgConnection, name: &str) -> Result<Option<bool>> {
    let row = sqlx::query(PG_VALID)
        .bind(name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| db_error("chatstore indexes", e))?;
    row.map(|r| r.try_get::<bool, _>("valid"))
        .transpose()
        .map_err(|e| db_error("chatstore indexes", e))
}

/// Builds the indexes on a new connection made with `options` (closed afterwards).
pub(crate) async fn ensure_postgres_with(
    options: &sqlx::postgres::PgConnectOptions,
) -> Result<IndexBuild> {
    let mut conn = PgConnection::connect_with(options)
        .await
        .map_err(|e| db_error("chatstore indexes", e))?;
    let outcome = ensure_postgres(&mut conn).await;
    let _ = conn.close().await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_index_is_named_in_its_statements() {
        for index in INDEXES {
            assert!(
                index.postgres.contains(index.name) && index.drop_postgres.contains(index.name)
            );
            assert!(
                index
                    .sqlite
                    .is_none_or(|sql| sql.text(Dialect::Sqlite).contains(index.name))
            );
        }
    }

    /// Every table of the remaining models has its keyset scan index: its key's columns in
    /// order, each by bytes.
    #[test]
    fn every_row_table_has_a_scan_index_on_its_key() {
        for table in chatstore_core::rows::ALL_TABLES {
            let name = format!("chatstore_{}_scan", table.name);
            let index = INDEXES
                .iter()
                .find(|i| i.name == name)
                .unwrap_or_else(|| panic!("{} has no {name}", table.name));
            let key = table
                .primary_key
                .iter()
                .map(|c| format!("{c} COLLATE \"C\""))
                .collect::<Vec<_>>()
                .join(", ");
            assert!(
                index
                    .postgres
                    .contains(&format!(" ON {} ({key})", table.name))
                    || index
                        .postgres
                        .contains(&format!(" ON \"{}\" ({key})", table.name)),
                "{}",
                index.postgres
            );
        }
    }
}
