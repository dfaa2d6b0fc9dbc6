//! Open WebUI 0.12.4's schema: created on an empty database, checked on an existing one.
//!
//! An empty database (none of Open WebUI's tables) gets the complete 0.12.4 schema from the
//! exact DDL dumps in `schema/`, including the `alembic_version` row `0bd252b206fb` without which
//! Open WebUI re-runs its migrations and crashes. An existing database must be at that revision
//! and have every table and column chatstore reads or writes; otherwise opening it fails with a
//! message naming what is wrong. chatstore never alters an existing Open WebUI table or column;
//! the only tables it adds are its own: `chatstore_vector` (SQLite vectors, on first use) and
//! `chatstore_change` (what the change feed's catch-up cannot read from Open WebUI's tables),
//! on SQLite `chatstore_chat_tag` with three triggers on `chat` (which chats carry which tag;
//! see `tag_links`), and its own `chatstore_*` indexes (see `indexes`).

use chatstore_core::{Error, Result};

use crate::pool::{Arg, Dialect, Mode, Pool, Sql, Tx, args};

/// The alembic revision of Open WebUI 0.12.4's schema, the one chatstore reads and writes.
pub const OPEN_WEBUI_REVISION: &str = "0bd252b206fb";

/// The Open WebUI version whose schema chatstore uses.
pub const OPEN_WEBUI_VERSION: &str = "0.12.4";

/// Open WebUI 0.12.4's complete SQLite schema (ends with the `alembic_version` row).
pub const SQLITE_DDL: &str = include_str!("../schema/openwebui-0.12.4-sqlite.sql");

/// Open WebUI 0.12.4's complete PostgreSQL schema (ends with the `alembic_version` row).
pub const POSTGRES_DDL: &str = include_str!("../schema/openwebui-0.12.4-postgres.sql");

/// The tables and columns chatstore reads or writes.
pub const REQUIRED_COLUMNS: &[(&str, &[&str])] = &[
    (
        "user",
        &[
            "id",
            "name",
            "email",
            "role",
            "profile_image_url",
            "last_active_at",
            "updated_at",
            "created_at",
            "oauth",
            "info",
            "settings",
            "scim",
        ],
    ),
    (
        "auth",
        &["id", "email", "password", "active", "session_stamp"],
    ),
    (
        "chat",
        &[
            "id",
            "user_id",
            "title",
            "chat",
            "meta",
            "archived",
            "pinned",
            "folder_id",
            "share_id",
            "created_at",
            "updated_at",
            "last_read_at",
            "current_message_id",
            "tasks",
        ],
    ),
    (
        "chat_message",
        &[
            "id",
            "chat_id",
            "user_id",
            "role",
            "parent_id",
            "content",
            "output",
            "model_id",
            "files",
            "sources",
            "embeds",
            "done",
            "status_history",
            "error",
            "usage",
            "created_at",
            "updated_at",
            "context_summary",
            "meta",
        ],
    ),
    ("tag", &["id", "name", "user_id", "meta"]),
    (
        "file",
        &[
            "id",
            "user_id",
            "hash",
            "filename",
            "path",
            "data",
            "meta",
            "created_at",
            "updated_at",
        ],
    ),
];

/// The table holding SQLite vectors.
pub const VECTOR_TABLE: &str = "chatstore_vector";

const LIST_TABLES: Sql = Sql::each(
    "SELECT name FROM sqlite_master WHERE type = 'table'",
    "SELECT table_name::text AS name FROM information_schema.tables \
     WHERE table_schema = current_schema()",
);

const LIST_COLUMNS: Sql = Sql::each(
    "SELECT name FROM pragma_table_info($1)",
    "SELECT column_name::text AS name FROM information_schema.columns \
     WHERE table_schema = current_schema() AND table_name = $1",
);

const ALEMBIC_VERSIONS: Sql = Sql::both("SELECT version_num FROM alembic_version");

/// Serialises schema creation between processes on PostgreSQL (an arbitrary constant key).
const PG_CREATE_LOCK: Sql = Sql::both("SELECT pg_advisory_xact_lock(7306218947160523)");

/// Whether the database has none of Open WebUI's tables.
fn is_empty(tables: &[String]) -> bool {
    let ours = REQUIRED_COLUMNS
        .iter()
        .map(|(t, _)| *t)
        .chain(["alembic_version"]);
    !ours
        .into_iter()
        .any(|t| tables.iter().any(|have| have == t))
}

async fn tables(tx: &mut Tx) -> Result<Vec<String>> {
    tx.fetch_all(LIST_TABLES, args![])
        .await?
        .iter()
        .map(|r| r.text("name"))
        .collect()
}

/// Creates the schema on an empty database (unless `read_only`) and checks it.
pub(crate) async fn prepare(pool: &Pool, read_only: bool) -> Result<()> {
    let mode = if read_only { Mode::Read } else { Mode::Write };
    let mut tx = pool.begin("schema", mode).await?;
    if tx.dialect() == Dialect::Postgres && !read_only {
        tx.fetch_all(PG_CREATE_LOCK, args![]).await?;
    }
    let mut have = tables(&mut tx).await?;
    if is_empty(&have) {
        if read_only {
            return Err(Error::backend_msg(
                "the database has no Open WebUI tables (opened read-only, so chatstore did not \
                 create them)",
            ));
        }
        let ddl = match tx.dialect() {
            Dialect::Sqlite => SQLITE_DDL,
            Dialect::Postgres => POSTGRES_DDL,
        };
        tx.execute_script(ddl).await?;
        tracing::info!(
            "created Open WebUI {OPEN_WEBUI_VERSION} schema (revision {OPEN_WEBUI_REVISION})"
        );
        have = tables(&mut tx).await?;
    }
    check_revision(&mut tx, &have).await?;
    check_columns(&mut tx, &have).await?;
    if !read_only {
        tx.execute_script(crate::changes::CREATE_TABLE).await?;
        if tx.dialect() == Dialect::Sqlite {
            crate::tag_links::ensure(&mut tx).await?;
        }
    }
    tx.commit().await
}

async fn check_revision(tx: &mut Tx, tables: &[String]) -> Result<()> {
    if !tables.iter().any(|t| t == "alembic_version") {
        return Err(Error::backend_msg(format!(
            "the database has Open WebUI tables but no alembic_version table; chatstore works \
             on Open WebUI {OPEN_WEBUI_VERSION}'s schema (revision {OPEN_WEBUI_REVISION}) only"
        )));
    }
    let versions: Vec<String> = tx
        .fetch_all(ALEMBIC_VERSIONS, args![])
        .await?
        .iter()
        .map(|r| r.text("version_num"))
        .collect::<Result<_>>()?;
    match versions.as_slice() {
        [v] if v == OPEN_WEBUI_REVISION => Ok(()),
        [] => Err(Error::backend_msg(format!(
            "the database's alembic_version table is empty; Open WebUI {OPEN_WEBUI_VERSION} \
             would re-run its migrations on it. Expected revision {OPEN_WEBUI_REVISION}"
        ))),
        [v] => Err(Error::backend_msg(format!(
            "the database is at Open WebUI schema revision {v:?}, which chatstore does not know \
             (it knows Open WebUI {OPEN_WEBUI_VERSION}, revision {OPEN_WEBUI_REVISION}); a newer \
             Open WebUI made or migrated it, or an older one that was never upgraded. chatstore \
             refuses to write into a schema it has not seen"
        ))),
        many => Err(Error::backend_msg(format!(
            "the database's alembic_version table holds {} rows ({many:?}); expected the single \
             revision {OPEN_WEBUI_REVISION}",
            many.len()
        ))),
    }
}

async fn check_columns(tx: &mut Tx, tables: &[String]) -> Result<()> {
    let mut missing = Vec::new();
    for (table, columns) in REQUIRED_COLUMNS {
        if !tables.iter().any(|t| t == table) {
            missing.push(format!("table {table}"));
            continue;
        }
        let have: Vec<String> = tx
            .fetch_all(LIST_COLUMNS, vec![Arg::from(*table)])
            .await?
            .iter()
            .map(|r| r.text("name"))
            .collect::<Result<_>>()?;
        for column in *columns {
            if !have.iter().any(|c| c == column) {
                missing.push(format!("column {table}.{column}"));
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::backend_msg(format!(
        "the database lacks what chatstore needs from Open WebUI {OPEN_WEBUI_VERSION}'s schema: \
         missing {}",
        missing.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ddl_dumps_end_with_the_revision_row() {
        for ddl in [SQLITE_DDL, POSTGRES_DDL] {
            assert!(ddl.contains(&format!(
                "INSERT INTO alembic_version (version_num) VALUES ('{OPEN_WEBUI_REVISION}');"
            )));
        }
        assert!(!POSTGRES_DDL.contains("public."));
        assert!(!POSTGRES_DDL.contains("\\restrict"));
    }

    #[test]
    fn a_database_with_only_foreign_tables_counts_as_empty() {
        assert!(is_empty(&["document_chunk".to_owned()]));
        assert!(!is_empty(&["chat".to_owned()]));
    }
}
