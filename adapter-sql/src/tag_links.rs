//! SQLite: which chats carry which tag, kept by triggers in a table of chatstore's own.
//!
//! Open WebUI keeps a chat's tags as an id array in `chat.meta` and has no join table, so
//! "does any chat of this user still carry this tag?", asked when a tag leaves a chat, had to
//! read every chat of the user (through the list index, testing each entry's `meta`): 1.6 ms
//! for a user with 10,000 chats. SQLite has no index on the elements of a JSON array, so
//! chatstore keeps `chatstore_chat_tag (chat_id, tag_id, user_id)`: one row per string element
//! of a chat's `meta.tags` array, internal chats included, exactly the chats
//! `sqlite_has_tag!` finds. Triggers on `chat` keep it in step with every write, chatstore's
//! and Open WebUI's alike, so the orphan-tag check reads one index entry.
//!
//! The rows are only as good as the triggers, so the check trusts them only while all three
//! triggers are on `chat` ([`TRIGGERS_PRESENT`]). A tool that rebuilds `chat` (an Open WebUI
//! migration on SQLite copies the table, drops it and renames the copy) drops its triggers with
//! it; the check then falls back to reading the user's chats, and the next open that may write
//! creates the triggers again and rebuilds the rows from `chat` in the same transaction
//! ([`ensure`]). Triggers are never created without that rebuild, so "the triggers are there"
//! implies "the rows are right".
//!
//! The triggers never fail a write: `meta` that is not JSON text (which Open WebUI's `json`
//! column would not hold, and on which the tag filters fail) carries no tags here. They use
//! only JSON functions of SQLite 3.38, which any writer of an Open WebUI database has (Open
//! WebUI's own tag filters use them). Each costs a chat write one lookup by the chat's id and
//! one insert per tag, and only when the chat's id, owner or `meta` changes.

use chatstore_core::Result;

use crate::pool::{Sql, Tx, args};

/// The link table and its index by owner and tag (the orphan check's lookup).
const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS chatstore_chat_tag (\
     chat_id TEXT NOT NULL, \
     tag_id TEXT NOT NULL, \
     user_id TEXT NOT NULL, \
     PRIMARY KEY (chat_id, tag_id)) WITHOUT ROWID; \
     CREATE INDEX IF NOT EXISTS chatstore_chat_tag_owner ON chatstore_chat_tag (user_id, tag_id);";

/// The name of the trigger for `$kind` (`insert`, `update`, `delete`). A change to a
/// trigger's text takes a new version here, so that an open finds the old ones missing and
/// replaces all three (with the rebuild).
macro_rules! trigger {
    ($kind:ident) => {
        concat!("chatstore_chat_tag_", stringify!($kind), "_v1")
    };
}
pub(crate) use trigger;

#[cfg(test)]
const TRIGGER_NAMES: [&str; 3] = [trigger!(insert), trigger!(update), trigger!(delete)];

/// Whether all three triggers are on `chat` (a SQL expression; `1` or `0`). Written out in
/// the orphan-tag check, which trusts the link table only when it holds.
macro_rules! sqlite_tag_links_kept {
    () => {
        concat!(
            "(SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'chat' \
             AND name IN ('",
            $crate::tag_links::trigger!(insert),
            "', '",
            $crate::tag_links::trigger!(update),
            "', '",
            $crate::tag_links::trigger!(delete),
            "')) = 3"
        )
    };
}
pub(crate) use sqlite_tag_links_kept;

/// The same test as a statement of its own.
const TRIGGERS_PRESENT: Sql = Sql::both(concat!("SELECT ", sqlite_tag_links_kept!(), " AS kept"));

/// The rows of chat `$row` (`new` in a trigger; `chat` in the rebuild, which reads `$from`
/// ahead of the tags): its tag ids, each once. `meta.tags` counts only as an array, and only
/// its string elements, as `sqlite_has_tag!` reads them; `meta` that is not JSON text carries
/// none.
macro_rules! links_of {
    ($row:literal, $from:literal) => {
        concat!(
            "SELECT DISTINCT ",
            $row,
            ".id, t.value, ",
            $row,
            ".user_id FROM ",
            $from,
            "json_each(CASE WHEN json_valid(",
            $row,
            ".meta) AND json_type(",
            $row,
            ".meta, '$.tags') = 'array' THEN ",
            $row,
            ".meta ELSE '{\"tags\": []}' END, '$.tags') AS t WHERE t.type = 'text' AND ",
            $row,
            ".id IS NOT NULL AND ",
            $row,
            ".user_id IS NOT NULL"
        )
    };
}

/// Drops the three triggers and the rows, then creates the triggers and fills the rows from
/// every chat: one script, run inside [`ensure`]'s write transaction. The insert trigger
/// first deletes the id's rows: an `INSERT OR REPLACE` removes the row it replaces without
/// firing delete triggers.
const REBUILD: &str = concat!(
    "DROP TRIGGER IF EXISTS ",
    trigger!(insert),
    "; DROP TRIGGER IF EXISTS ",
    trigger!(update),
    "; DROP TRIGGER IF EXISTS ",
    trigger!(delete),
    "; DELETE FROM chatstore_chat_tag; CREATE TRIGGER ",
    trigger!(insert),
    " AFTER INSERT ON chat BEGIN \
     DELETE FROM chatstore_chat_tag WHERE chat_id = new.id; \
     INSERT INTO chatstore_chat_tag (chat_id, tag_id, user_id) ",
    links_of!("new", ""),
    "; END; CREATE TRIGGER ",
    trigger!(update),
    " AFTER UPDATE OF id, user_id, meta ON chat \
     WHEN old.id IS NOT new.id OR old.user_id IS NOT new.user_id OR old.meta IS NOT new.meta \
     BEGIN \
     DELETE FROM chatstore_chat_tag WHERE chat_id = old.id; \
     DELETE FROM chatstore_chat_tag WHERE chat_id = new.id; \
     INSERT INTO chatstore_chat_tag (chat_id, tag_id, user_id) ",
    links_of!("new", ""),
    "; END; CREATE TRIGGER ",
    trigger!(delete),
    " AFTER DELETE ON chat BEGIN \
     DELETE FROM chatstore_chat_tag WHERE chat_id = old.id; END; \
     INSERT INTO chatstore_chat_tag (chat_id, tag_id, user_id) ",
    links_of!("chat", "chat, "),
    ";"
);

/// Creates the link table where it is missing and, unless all three triggers are on `chat`,
/// replaces them and rebuilds the rows from `chat` ([`REBUILD`]), in `tx` (a SQLite write
/// transaction, so no writer comes between the triggers and the rows).
pub(crate) async fn ensure(tx: &mut Tx) -> Result<()> {
    tx.execute_script(CREATE_TABLE).await?;
    let kept = tx.fetch_one(TRIGGERS_PRESENT, args![]).await?;
    if kept.int("kept")? != 1 {
        tx.execute_script(REBUILD).await?;
        tracing::info!("built chatstore_chat_tag (which chats carry which tag) and its triggers");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_presence_test_names_every_trigger_the_rebuild_creates() {
        let test = sqlite_tag_links_kept!();
        for name in TRIGGER_NAMES {
            assert!(test.contains(&format!("'{name}'")), "{name}");
            assert!(
                REBUILD.contains(&format!("CREATE TRIGGER {name} ")),
                "{name}"
            );
            assert!(
                REBUILD.contains(&format!("DROP TRIGGER IF EXISTS {name};")),
                "{name}"
            );
        }
        assert_eq!(
            REBUILD.matches("CREATE TRIGGER").count(),
            TRIGGER_NAMES.len()
        );
    }
}
