//! A read-only overview of a database, for tools such as `chatstore inspect`.

use chatstore_core::Result;

use crate::SqlStore;
use crate::pool::{Mode, Sql, args};

const VERSION: Sql = Sql::both("SELECT version_num FROM alembic_version");

const COUNTS: Sql = Sql::both(
    "SELECT (SELECT count(*) FROM \"user\") AS users, (SELECT count(*) FROM chat) AS chats, \
     (SELECT count(*) FROM chat_message) AS messages, (SELECT count(*) FROM tag) AS tags, \
     (SELECT count(*) FROM \"file\") AS files",
);

/// Row counts of the tables chatstore uses (every row: internal chats included, messages that
/// live only in chat blobs not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableCounts {
    /// Rows of `user`.
    pub users: u64,
    /// Rows of `chat`.
    pub chats: u64,
    /// Rows of `chat_message`.
    pub messages: u64,
    /// Rows of `tag`.
    pub tags: u64,
    /// Rows of `file`.
    pub files: u64,
}

impl SqlStore {
    /// The database's Open WebUI schema revision (`alembic_version`).
    pub async fn schema_version(&self) -> Result<String> {
        let row = self
            .pool()
            .fetch_optional("schema", VERSION, args![])
            .await?;
        match row {
            Some(row) => row.text("version_num"),
            None => Ok(String::new()),
        }
    }

    /// Row counts of the tables chatstore uses, from one snapshot.
    pub async fn counts(&self) -> Result<TableCounts> {
        let mut tx = self.pool().begin("schema", Mode::Read).await?;
        let row = tx.fetch_one(COUNTS, args![]).await?;
        tx.commit().await?;
        let n = |column: &str| -> Result<u64> {
            Ok(u64::try_from(row.int(column)?).unwrap_or_default())
        };
        Ok(TableCounts {
            users: n("users")?,
            chats: n("chats")?,
            messages: n("messages")?,
            tags: n("tags")?,
            files: n("files")?,
        })
    }
}
