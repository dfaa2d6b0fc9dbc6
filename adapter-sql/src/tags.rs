//! Tags: Open WebUI's `tag` table, keyed `(id, user_id)`; a chat carries a tag when the id is
//! in its `meta.tags`.

use std::collections::HashMap;

use async_trait::async_trait;
use chatstore_core::changes::{ChangeEvent, ChangeKind, field};
use chatstore_core::{Error, Result, Tag, TagKey, TagRepo, TagUsage, tag_id};
use serde_json::Value;

use crate::chats::{
    lock_user_tags, pg_has_tag, pg_not_internal, sqlite_has_tag, sqlite_not_internal,
};
use crate::pool::{Arg, Dyn, Mode, Row, Sql, args, cursor, storable};
use crate::{SqlStore, json};

const LIST: Sql = Sql::each(
    "SELECT id, name, user_id, meta FROM tag WHERE user_id = $1 ORDER BY id",
    "SELECT id, name, user_id, meta FROM tag WHERE user_id = $1 ORDER BY id COLLATE \"C\"",
);

/// How many of the user's non-internal chats carry each tag id, in one pass over the chats.
const USAGE_COUNTS: Sql = Sql::each(
    concat!(
        "SELECT t.value AS id, count(DISTINCT chat.id) AS chats \
         FROM chat, json_each(chat.meta, '$.tags') AS t WHERE chat.user_id = $1 AND ",
        sqlite_not_internal!(),
        " AND json_type(chat.meta, '$.tags') = 'array' AND t.type = 'text' GROUP BY t.value"
    ),
    concat!(
        "SELECT t.v #>> '{}' AS id, count(DISTINCT chat.id) AS chats \
         FROM chat CROSS JOIN LATERAL json_array_elements(CASE WHEN \
         json_typeof(chat.meta -> 'tags') = 'array' THEN chat.meta -> 'tags' \
         ELSE '[]'::json END) AS t(v) WHERE chat.user_id = $1 AND ",
        pg_not_internal!(),
        " AND json_typeof(t.v) = 'string' GROUP BY 1"
    ),
);

const GET: Sql =
    Sql::both("SELECT id, name, user_id, meta FROM tag WHERE user_id = $1 AND id = $2");

const ENSURE: Sql = Sql::both(
    "INSERT INTO tag (id, name, user_id, meta) VALUES ($1, $2, $3, NULL) \
     ON CONFLICT (id, user_id) DO NOTHING",
);

/// The head of a multi-row insert of tag rows, before the rows' values.
const INSERT_MANY_HEAD: &str = "INSERT INTO tag (id, name, user_id, meta) VALUES ";

/// Tag rows per multi-row statement (4 parameters a row; SQLite takes at most 32,766).
const ROWS_PER_STATEMENT: usize = 5_000;

const DELETE: Sql = Sql::both("DELETE FROM tag WHERE user_id = $1 AND id = $2");

/// The user's chats carrying tag `$2`.
const CHATS_WITH_TAG: Sql = Sql::each(
    concat!(
        "SELECT id, meta FROM chat WHERE chat.user_id = $1 AND ",
        sqlite_has_tag!("$2")
    ),
    concat!(
        "SELECT id, meta FROM chat WHERE chat.user_id = $1 AND ",
        pg_has_tag!("$2"),
        " FOR UPDATE"
    ),
);

const UPDATE_CHAT_META: Sql = Sql::both("UPDATE chat SET meta = $2 WHERE id = $1");

/// A keyset page of every user's tags, in bytes order of (user, id): a row comparison, which
/// both engines answer from `chatstore_tag_scan` starting at the cursor.
pub(crate) const SCAN: Sql = Sql::each(
    "SELECT id, name, user_id, meta FROM tag WHERE (user_id, id) > ($1, $2) \
     ORDER BY user_id, id LIMIT $3",
    "SELECT id, name, user_id, meta FROM tag \
     WHERE (user_id COLLATE \"C\", id COLLATE \"C\") > ($1, $2) \
     ORDER BY user_id COLLATE \"C\", id COLLATE \"C\" LIMIT $3",
);

fn tag_from_row(row: &Row) -> Result<Tag> {
    let id = row.text("id")?;
    Ok(Tag {
        name: row.opt_text("name")?.unwrap_or_else(|| id.clone()),
        id,
        user_id: row.text("user_id")?,
        meta: json::parse("tag.meta", row.json_text("meta")?)?,
    })
}

#[async_trait]
impl TagRepo for SqlStore {
    async fn list(&self, user_id: &str) -> Result<Vec<Tag>> {
        self.pool()
            .fetch_all("tag", LIST, args![user_id])
            .await?
            .iter()
            .map(tag_from_row)
            .collect()
    }

    async fn usage(&self, user_id: &str) -> Result<Vec<TagUsage>> {
        let mut tx = self.begin("tag", Mode::Read).await?;
        let tags = tx.fetch_all(LIST, args![user_id]).await?;
        let counts: HashMap<String, i64> = tx
            .fetch_all(USAGE_COUNTS, args![user_id])
            .await?
            .iter()
            .map(|row| Ok((row.text("id")?, row.int("chats")?)))
            .collect::<Result<_>>()?;
        tx.commit().await?;
        tags.iter()
            .map(|row| {
                let tag = tag_from_row(row)?;
                let chats = counts.get(&tag.id).copied().unwrap_or(0);
                Ok(TagUsage {
                    tag,
                    chats: u64::try_from(chats).unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn get(&self, user_id: &str, name_or_id: &str) -> Result<Tag> {
        let id = tag_id(name_or_id);
        if !storable(&id) {
            return Err(Error::not_found("tag", name_or_id));
        }
        match self
            .pool()
            .fetch_optional("tag", GET, args![user_id, id])
            .await?
        {
            Some(row) => tag_from_row(&row),
            None => Err(Error::not_found("tag", name_or_id)),
        }
    }

    async fn ensure(&self, user_id: &str, name: &str) -> Result<Tag> {
        let id = tag_id(name);
        let mut tx = self.begin("tag", Mode::Write).await?;
        // As every tag change: a chat delete removing the tag as an orphan between the insert
        // (nothing to do) and the read would leave nothing to answer.
        lock_user_tags(&mut tx, user_id).await?;
        tx.execute(ENSURE, args![id.as_str(), name, user_id])
            .await?;
        let row = tx.fetch_one(GET, args![user_id, id.as_str()]).await?;
        let tag = tag_from_row(&row)?;
        tx.commit().await?;
        Ok(tag)
    }

    async fn create_many(&self, tags: Vec<Tag>) -> Result<()> {
        let mut tx = self.begin("tag", Mode::Write).await?;
        for chunk in tags.chunks(ROWS_PER_STATEMENT) {
            let mut d = Dyn::default();
            d.sql(INSERT_MANY_HEAD);
            for (k, tag) in chunk.iter().enumerate() {
                d.sql(if k == 0 { "(" } else { ", (" });
                d.bind(tag.id.as_str())
                    .sql(", ")
                    .bind(tag.name.as_str())
                    .sql(", ")
                    .bind(tag.user_id.as_str())
                    .sql(", ")
                    .bind(json::opt_arg(tag.meta.as_ref()))
                    .sql(")");
            }
            d.one_off();
            tx.execute_dyn(d).await?;
        }
        tx.commit().await
    }

    async fn delete(&self, user_id: &str, name_or_id: &str) -> Result<()> {
        let id = tag_id(name_or_id);
        if !storable(&id) {
            return Err(Error::not_found("tag", name_or_id));
        }
        let mut tx = self.begin("tag", Mode::Write).await?;
        lock_user_tags(&mut tx, user_id).await?;
        if tx.execute(DELETE, args![user_id, id.as_str()]).await? == 0 {
            return Err(Error::not_found("tag", name_or_id));
        }
        for row in tx
            .fetch_all(CHATS_WITH_TAG, args![user_id, id.as_str()])
            .await?
        {
            let chat_id = row.text("id")?;
            tx.announce(ChangeEvent::chat_ids(
                ChangeKind::Updated,
                user_id,
                &chat_id,
                &[field::TAGS],
            ));
            let mut meta = json::parse_object("chat.meta", row.json_text("meta")?)?;
            if let Some(Value::Array(items)) = meta.get_mut("tags") {
                items.retain(|v| v.as_str() != Some(id.as_str()));
            }
            tx.execute(
                UPDATE_CHAT_META,
                args![
                    chat_id,
                    Arg::Json(Some(json::to_text(&Value::Object(meta))))
                ],
            )
            .await?;
        }
        tx.commit().await
    }

    async fn scan(&self, after: Option<&TagKey>, limit: u32) -> Result<Vec<Tag>> {
        let (user, id) = match after {
            Some(key) => (cursor(Some(&key.user_id)), cursor(Some(&key.id))),
            None => (String::new(), String::new()),
        };
        self.pool()
            .fetch_all("tag", SCAN, args![user, id, i64::from(limit)])
            .await?
            .iter()
            .map(tag_from_row)
            .collect()
    }
}
