//! Chats in the `owui_chats` collection, their tag set as the multi relation `tags` to
//! `owui_tags` records whose id is derived from `(user_id, tag_id)`.
//!
//! Every write that changes a chat row goes through the chatstore `tx` route with an
//! `expect_version` check on the chat's `version` field (optimistic concurrency): a writer
//! that lost the race reads the chat again and retries, so no update is lost.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use chatstore_core::chats::{PreparedChat, unique_tags};
use chatstore_core::rows::cascades::CHAT_CASCADES;
use chatstore_core::{
    Chat, ChatCursor, ChatOrder, ChatPatch, ChatQuery, ChatRepo, ChatSummary, Error, FolderFilter,
    NewChat, Page, Result, TagFilter, tag_id, validate,
};
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::PocketBase;
use crate::client::ListQuery;
use crate::error::{Subject, is_stale, malformed};
use crate::messages::{message_fields, message_record_id};
use crate::tx::{Cascaded, TxOp};
use crate::{filter, record};

/// How often a chat write is retried after losing a race with another writer.
const MAX_CAS_ATTEMPTS: u32 = 200;

/// The record id of tag `tag_id` of `user_id` (Open WebUI keys tags by both).
pub fn tag_record_id(user_id: &str, tag_id: &str) -> String {
    record::derived_id(&["tag", user_id, tag_id])
}

/// Runs `attempt` again while it fails because the chat changed under it.
pub(crate) async fn retry_stale<T, F, Fut>(mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut delay_ms = 1u64;
    for _ in 0..MAX_CAS_ATTEMPTS {
        match attempt().await {
            Err(e) if is_stale(&e) => {
                let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0] % 8);
                tokio::time::sleep(Duration::from_millis(delay_ms + jitter)).await;
                delay_ms = (delay_ms * 2).min(50);
            }
            other => return other,
        }
    }
    Err(Error::Unavailable {
        message: format!(
            "a chat kept changing under this write; gave up after {MAX_CAS_ATTEMPTS} attempts"
        ),
        source: None,
    })
}

/// The chat row's fields (not its id or tags).
fn fields(chat: &Chat, version: i64) -> Value {
    json!({
        "user_id": chat.user_id,
        "title": chat.title,
        "title_lower": chat.title.to_lowercase(),
        "chat": record::json_value(&chat.chat),
        "meta": record::json_value(&Value::Object(chat.meta.clone())),
        "archived": chat.archived,
        "pinned": chat.pinned,
        "internal": chat.is_internal(),
        "folder_id": chat.folder_id.clone().unwrap_or_default(),
        "share_id": chat.share_id.clone().unwrap_or_default(),
        "created_at": chat.created_at,
        "updated_at": chat.updated_at,
        "version": version,
    })
}

fn tag_ids_of(r: &Value) -> BTreeSet<String> {
    r.get("expand")
        .and_then(|e| e.get("tags"))
        .and_then(Value::as_array)
        .map(|tags| {
            tags.iter()
                .filter_map(|t| t.get("tag_id").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// A chat and its version from a record read with `expand=tags`.
fn from_record(r: &Value) -> Result<(Chat, i64)> {
    let meta = match record::json(r, "meta") {
        Some(Value::Object(map)) => map,
        None => Map::new(),
        Some(other) => return Err(malformed(format!("chat meta {other}"))),
    };
    let chat = Chat {
        id: record::text(r, "id")?,
        user_id: record::text(r, "user_id")?,
        title: record::text(r, "title")?,
        chat: record::json(r, "chat").unwrap_or_else(|| Value::Object(Map::new())),
        meta,
        tags: tag_ids_of(r),
        archived: record::boolean(r, "archived")?,
        pinned: record::boolean(r, "pinned")?,
        folder_id: record::opt_text(r, "folder_id")?,
        share_id: record::opt_text(r, "share_id")?,
        created_at: record::int(r, "created_at")?,
        updated_at: record::int(r, "updated_at")?,
    };
    Ok((chat, record::int(r, "version")?))
}

fn flag(value: &Value) -> bool {
    value
        .as_bool()
        .unwrap_or_else(|| value.as_i64().is_some_and(|n| n != 0))
}

/// A summary row of the chat-list route.
fn from_route_row(r: &Value) -> Result<ChatSummary> {
    let tags_text = record::text(r, "tag_ids")?;
    let tags: Vec<String> = serde_json::from_str(&tags_text)
        .map_err(|e| malformed(format!("tag_ids {tags_text:?}: {e}")))?;
    Ok(ChatSummary {
        id: record::text(r, "id")?,
        user_id: record::text(r, "user_id")?,
        title: record::text(r, "title")?,
        tags: tags.into_iter().collect(),
        archived: r.get("archived").is_some_and(flag),
        pinned: r.get("pinned").is_some_and(flag),
        folder_id: record::opt_text(r, "folder_id")?,
        created_at: record::int(r, "created_at")?,
        updated_at: record::int(r, "updated_at")?,
    })
}

impl PocketBase {
    /// The chat with its version; `NotFound` when missing.
    pub(crate) async fn read_chat(&self, id: &str) -> Result<(Chat, i64)> {
        self.read_chat_with(id, Some("tags")).await
    }

    /// The chat with its version but an empty tag set, for writes that only change the blob
    /// (saves PocketBase the expand query).
    pub(crate) async fn read_chat_untagged(&self, id: &str) -> Result<(Chat, i64)> {
        self.read_chat_with(id, None).await
    }

    async fn read_chat_with(&self, id: &str, expand: Option<&str>) -> Result<(Chat, i64)> {
        let r = self
            .client()
            .get_record(&self.cols().chats, id, expand, Subject::new("chat", id))
            .await?;
        from_record(&r)
    }

    /// The op that makes the tx fail with 412 when the chat's version is not `version`.
    pub(crate) fn expect_version_op(&self, id: &str, version: i64) -> TxOp {
        TxOp::ExpectVersion {
            collection: self.cols().chats.clone(),
            entity: "chat",
            id: id.to_owned(),
            version,
        }
    }

    /// The op that writes the chat row (not its tags) at `version`.
    pub(crate) fn update_chat_op(&self, chat: &Chat, version: i64) -> TxOp {
        TxOp::Update {
            collection: self.cols().chats.clone(),
            entity: "chat",
            id: chat.id.clone(),
            fields: fields(chat, version),
            return_record: false,
        }
    }

    /// The op that creates tag `id` of `user_id` unless it exists.
    pub fn ensure_tag_op(&self, user_id: &str, id: &str, name: &str) -> TxOp {
        TxOp::Ensure {
            collection: self.cols().tags.clone(),
            entity: "tag",
            id: tag_record_id(user_id, id),
            fields: json!({"user_id": user_id, "tag_id": id, "name": name, "meta": null}),
        }
    }

    /// The op that deletes those of the user's tags `tag_ids` no chat of the user carries.
    pub fn drop_orphans_op(
        &self,
        user_id: &str,
        tag_ids: impl IntoIterator<Item = String>,
    ) -> TxOp {
        TxOp::DropOrphanTags {
            collection: self.cols().tags.clone(),
            chats: self.cols().chats.clone(),
            ids: tag_ids
                .into_iter()
                .map(|t| tag_record_id(user_id, &t))
                .collect(),
        }
    }

    /// The op that sets a chat's tag relation (tag ids of its user) and its version.
    pub fn set_chat_tags_op(&self, chat: &Chat, version: i64) -> TxOp {
        let record_ids: Vec<String> = chat
            .tags
            .iter()
            .map(|t| tag_record_id(&chat.user_id, t))
            .collect();
        TxOp::Update {
            collection: self.cols().chats.clone(),
            entity: "chat",
            id: chat.id.clone(),
            fields: json!({"tags": record_ids, "version": version}),
            return_record: false,
        }
    }

    fn unique_share_op(&self, chat_id: &str, share: &str) -> TxOp {
        TxOp::Unique {
            collection: self.cols().chats.clone(),
            entity: "chat",
            field: "share_id",
            value: share.to_owned(),
            except: chat_id.to_owned(),
            message: format!("share id {share:?} is taken"),
        }
    }

    fn create_ops(&self, p: &PreparedChat) -> Vec<TxOp> {
        let chat = &p.chat;
        let mut ops = Vec::new();
        if let Some(share) = &chat.share_id {
            ops.push(self.unique_share_op(&chat.id, share));
        }
        for (id, name) in &p.tags {
            ops.push(self.ensure_tag_op(&chat.user_id, id, name));
        }
        let mut body = fields(chat, 0);
        body["tags"] = json!(
            chat.tags
                .iter()
                .map(|t| tag_record_id(&chat.user_id, t))
                .collect::<Vec<_>>()
        );
        ops.push(TxOp::Create {
            collection: self.cols().chats.clone(),
            entity: "chat",
            id: chat.id.clone(),
            fields: body,
        });
        for message in &p.messages {
            ops.push(self.upsert_message_op(message));
        }
        ops
    }

    /// Creates prepared chats through the batch API, PocketBase's own bulk path (the tx route
    /// runs every record through its JavaScript VM: about 1.3 times slower for an import),
    /// in one transaction: the tags they name that do not exist yet (looked up first), the
    /// chats, their messages, each a plain create. `false` when the batch API cannot do it
    /// exactly and nothing was written: a chat with a share id (kept unique by the tx route),
    /// more requests than a batch may hold, or a batch refused (a taken id, a message or tag
    /// record created since, ...): the caller then runs the tx route, which answers with the
    /// precise error or writes what the batch could not (an existing message record is
    /// replaced there, as by `create`).
    async fn create_by_batch(&self, prepared: &[PreparedChat]) -> Result<bool> {
        /// Tag record ids looked up per request: they go into the filter, which PocketBase
        /// caps at 3,500 characters (`id = "…" || ` is 43 with a 32-character id).
        const TAGS_PER_LOOKUP: usize = 50;
        if prepared.iter().any(|p| p.chat.share_id.is_some()) {
            return Ok(false);
        }
        let c = self.cols();
        // Each tag record once, named as the first chat naming it names it.
        let mut tags: Vec<(String, Value)> = Vec::new();
        let mut seen = BTreeSet::new();
        for p in prepared {
            for (id, name) in &p.tags {
                let record = tag_record_id(&p.chat.user_id, id);
                if seen.insert(record.clone()) {
                    let body = json!({"id": record, "user_id": p.chat.user_id, "tag_id": id,
                                      "name": name, "meta": null});
                    tags.push((record, body));
                }
            }
        }
        let messages: usize = prepared.iter().map(|p| p.messages.len()).sum();
        if (tags.len() + prepared.len() + messages) as u64 > crate::schema::CHAT_BATCH_MAX_REQUESTS
        {
            return Ok(false);
        }
        let mut existing = BTreeSet::new();
        for chunk in tags.chunks(TAGS_PER_LOOKUP) {
            let q = ListQuery {
                filter: chunk
                    .iter()
                    .map(|(id, _)| filter::eq("id", id))
                    .collect::<Vec<_>>()
                    .join(" || "),
                sort: "id".to_owned(),
                expand: None,
                fields: Some("id"),
                skip_total: true,
            };
            let found = match self
                .client()
                .list(
                    &c.tags,
                    &q,
                    0,
                    Some(chunk.len() as u64),
                    Subject::new("tag", ""),
                )
                .await
            {
                Ok((found, _)) => found,
                Err(e) if e.is_retryable() => return Err(e),
                Err(e) => {
                    tracing::debug!(error = %e, "tag lookup refused; writing through the tx route");
                    return Ok(false);
                }
            };
            existing.extend(
                found
                    .iter()
                    .filter_map(|r| r.get("id").and_then(Value::as_str))
                    .map(str::to_owned),
            );
        }
        let create = |collection: &str, body: Value| {
            json!({"method": "POST",
                   "url": format!("/api/collections/{collection}/records?fields=id"),
                   "body": body})
        };
        let mut requests: Vec<Value> = tags
            .into_iter()
            .filter(|(id, _)| !existing.contains(id))
            .map(|(_, body)| create(&c.tags, body))
            .collect();
        for p in prepared {
            let chat = &p.chat;
            let mut body = fields(chat, 0);
            body["id"] = json!(chat.id);
            body["tags"] = json!(
                chat.tags
                    .iter()
                    .map(|t| tag_record_id(&chat.user_id, t))
                    .collect::<Vec<_>>()
            );
            requests.push(create(&c.chats, body));
        }
        for m in prepared.iter().flat_map(|p| &p.messages) {
            let mut body = message_fields(m);
            body["id"] = json!(message_record_id(&m.chat_id, &m.id));
            requests.push(create(&c.messages, body));
        }
        match self
            .client()
            .batch(requests, Subject::new("chat", ""))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.is_retryable() => Err(e),
            Err(e) => {
                tracing::debug!(error = %e, "chat batch refused; writing through the tx route");
                Ok(false)
            }
        }
    }

    /// Replaces the chat's tags with `pairs` (`(id, name)`), creating missing tag rows and
    /// deleting those no chat of the user carries any more. `chat` is the chat as read at
    /// `version`, the read `pairs` was computed from: the write fails as stale (and the caller
    /// retries) when the chat changed since.
    async fn write_tags(
        &self,
        mut chat: Chat,
        version: i64,
        pairs: &[(String, String)],
    ) -> Result<Chat> {
        let old = std::mem::take(&mut chat.tags);
        let mut ops = vec![self.expect_version_op(&chat.id, version)];
        for (tag, name) in pairs {
            if !old.contains(tag) {
                ops.push(self.ensure_tag_op(&chat.user_id, tag, name));
            }
        }
        chat.tags = pairs.iter().map(|(t, _)| t.clone()).collect();
        ops.push(self.set_chat_tags_op(&chat, version + 1));
        let removed: Vec<String> = old.difference(&chat.tags).cloned().collect();
        if !removed.is_empty() {
            ops.push(self.drop_orphans_op(&chat.user_id, removed));
        }
        self.client()
            .tx(ops, Subject::new("chat", &chat.id))
            .await?;
        Ok(chat)
    }

    async fn update_once(&self, id: &str, patch: &ChatPatch) -> Result<Chat> {
        let (mut chat, version) = self.read_chat(id).await?;
        patch.apply(&mut chat, validate::now())?;
        let mut ops = vec![self.expect_version_op(id, version)];
        if let Some(Some(share)) = &patch.share_id {
            ops.push(self.unique_share_op(id, share));
        }
        ops.push(self.update_chat_op(&chat, version + 1));
        self.client().tx(ops, Subject::new("chat", id)).await?;
        Ok(chat)
    }

    async fn delete_once(&self, id: &str) -> Result<()> {
        let (chat, version) = self.read_chat(id).await?;
        let mut ops = vec![
            self.expect_version_op(id, version),
            TxOp::Delete {
                collection: self.cols().chats.clone(),
                entity: "chat",
                id: id.to_owned(),
                must_exist: true,
            },
            TxOp::DeleteWhere {
                collection: self.cols().messages.clone(),
                field: "chat_id",
                value: id.to_owned(),
                cascades: Vec::new(),
            },
            self.drop_orphans_op(&chat.user_id, chat.tags.iter().cloned()),
        ];
        // PocketBase has no foreign keys: the chat's shares and file links go in the same
        // transaction, as SQL's ON DELETE CASCADE takes them.
        ops.extend(Cascaded::delete_ops(self.cols(), CHAT_CASCADES, id));
        self.client().tx(ops, Subject::new("chat", id)).await?;
        Ok(())
    }

    /// One page of a list through the hooks route `chat-list` (one SQL query of the summary's
    /// columns on the server), with its total when `with_total` (the route then counts every
    /// match as well). The records API would read each record whole, blob included, and
    /// serialise it before picking the summary's fields: 13-16 ms for a page of 60 at 1k
    /// chats, against about 2 ms for the route's pages.
    async fn list_page(
        &self,
        query: &ChatQuery,
        with_total: bool,
    ) -> Result<(Vec<ChatSummary>, Option<u64>)> {
        let c = self.cols();
        let mut params: Vec<(&str, String)> = vec![
            ("chats", c.chats.clone()),
            ("tags_collection", c.tags.clone()),
            ("user", query.user_id.clone()),
        ];
        match &query.tags {
            TagFilter::Any => {}
            TagFilter::Untagged => params.push(("untagged", "1".to_owned())),
            TagFilter::AllOf(_) => {
                let ids: Vec<String> = query
                    .tag_ids()
                    .iter()
                    .map(|t| tag_record_id(&query.user_id, t))
                    .collect();
                // All of no tags is every chat.
                if !ids.is_empty() {
                    params.push(("tags", json!(ids).to_string()));
                }
            }
        }
        if let Some(a) = query.archived {
            params.push(("archived", if a { "1" } else { "0" }.to_owned()));
        }
        if let Some(p) = query.pinned {
            params.push(("pinned", if p { "1" } else { "0" }.to_owned()));
        }
        match &query.folder {
            FolderFilter::Any => {}
            FolderFilter::NoFolder => params.push(("nofolder", "1".to_owned())),
            FolderFilter::In(f) => params.push(("folder", f.clone())),
        }
        if let Some(t) = &query.title {
            params.push(("title", t.to_lowercase()));
        }
        if query.include_internal {
            params.push(("internal", "1".to_owned()));
        }
        let order = match query.order {
            ChatOrder::UpdatedDesc => "updated",
            ChatOrder::CreatedDesc => "created",
            ChatOrder::TitleAsc => "title",
        };
        params.push(("order", order.to_owned()));
        if let Some(cursor) = &query.after {
            let key = match cursor {
                ChatCursor::Updated { updated_at: at, .. }
                | ChatCursor::Created { created_at: at, .. } => at.to_string(),
                ChatCursor::Title { title, .. } => title.clone(),
            };
            params.push(("after_key", key));
            params.push(("after_id", cursor.id().to_owned()));
        }
        params.push((
            "limit",
            query.page.limit.map_or(-1, |l| l as i64).to_string(),
        ));
        params.push(("offset", query.page.offset.to_string()));
        if !with_total {
            params.push(("skip_total", "1".to_owned()));
        }
        let resp = self
            .client()
            .send(
                Method::GET,
                "/api/chatstore/chat-list",
                &params,
                None,
                Subject::new("chat list", &query.user_id),
                true,
            )
            .await?;
        let items = resp
            .get("items")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed("chat-list without items"))?
            .iter()
            .map(from_route_row)
            .collect::<Result<Vec<_>>>()?;
        if !with_total {
            return Ok((items, None));
        }
        let total = resp
            .get("total")
            .and_then(Value::as_u64)
            .ok_or_else(|| malformed("chat-list without total"))?;
        Ok((items, Some(total)))
    }
}

#[async_trait]
impl ChatRepo for PocketBase {
    async fn create(&self, chat: NewChat) -> Result<Chat> {
        let prepared = chat.prepare(validate::now())?;
        let ops = self.create_ops(&prepared);
        self.client()
            .tx(ops, Subject::new("chat", &prepared.chat.id))
            .await?;
        Ok(prepared.chat)
    }

    async fn create_many(&self, chats: Vec<NewChat>) -> Result<Vec<Chat>> {
        let now = validate::now();
        let prepared = chats
            .into_iter()
            .map(|c| c.prepare(now))
            .collect::<Result<Vec<_>>>()?;
        if self.create_by_batch(&prepared).await? {
            return Ok(prepared.into_iter().map(|p| p.chat).collect());
        }
        let ops = prepared.iter().flat_map(|p| self.create_ops(p)).collect();
        self.client().tx(ops, Subject::new("chat", "")).await?;
        Ok(prepared.into_iter().map(|p| p.chat).collect())
    }

    async fn get(&self, id: &str) -> Result<Chat> {
        Ok(self.read_chat(id).await?.0)
    }

    async fn update(&self, id: &str, patch: ChatPatch) -> Result<Chat> {
        retry_stale(|| self.update_once(id, &patch)).await
    }

    async fn delete(&self, id: &str) -> Result<()> {
        retry_stale(|| self.delete_once(id)).await
    }

    async fn delete_for_user(&self, user_id: &str) -> Result<u64> {
        let c = self.cols();
        let ops = vec![TxOp::DeleteUserChats {
            collection: c.chats.clone(),
            messages: c.messages.clone(),
            tags: c.tags.clone(),
            user_id: user_id.to_owned(),
            cascades: Cascaded::of(c, CHAT_CASCADES),
        }];
        let answer = self.client().tx(ops, Subject::new("chat", "")).await?;
        answer
            .get("results")
            .and_then(|r| r.get(0))
            .and_then(Value::as_u64)
            .ok_or_else(|| malformed("tx answer without a delete count"))
    }

    async fn list(&self, query: &ChatQuery) -> Result<Page<ChatSummary>> {
        let (items, total) = self.list_page(query, true).await?;
        let total = total.ok_or_else(|| malformed("a chat list without its total"))?;
        Ok(Page { items, total })
    }

    async fn list_items(&self, query: &ChatQuery) -> Result<Vec<ChatSummary>> {
        Ok(self.list_page(query, false).await?.0)
    }

    async fn set_tags(&self, id: &str, names: &[String]) -> Result<Chat> {
        let pairs = unique_tags(names);
        retry_stale(|| async {
            let (chat, version) = self.read_chat(id).await?;
            self.write_tags(chat, version, &pairs).await
        })
        .await
    }

    async fn add_tag(&self, id: &str, name: &str) -> Result<Chat> {
        let pairs = unique_tags(&[name.to_owned()]);
        retry_stale(|| async {
            let (chat, version) = self.read_chat(id).await?;
            let mut all: Vec<(String, String)> =
                chat.tags.iter().map(|t| (t.clone(), t.clone())).collect();
            all.extend(pairs.iter().cloned());
            let all = dedup_pairs(all);
            self.write_tags(chat, version, &all).await
        })
        .await
    }

    async fn remove_tag(&self, id: &str, name_or_id: &str) -> Result<Chat> {
        let target = tag_id(name_or_id);
        retry_stale(|| async {
            let (chat, version) = self.read_chat(id).await?;
            let kept: Vec<(String, String)> = chat
                .tags
                .iter()
                .filter(|t| **t != target)
                .map(|t| (t.clone(), t.clone()))
                .collect();
            self.write_tags(chat, version, &kept).await
        })
        .await
    }

    async fn scan(&self, after: Option<&str>, limit: u32) -> Result<Vec<Chat>> {
        let items = self
            .client()
            .scan_by_id(
                &self.cols().chats,
                after,
                limit,
                Some("tags"),
                Subject::new("chat", ""),
            )
            .await?;
        items
            .iter()
            .map(|r| from_record(r).map(|(c, _)| c))
            .collect()
    }

    async fn scan_ids(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>> {
        self.client()
            .scan_ids_by_id(&self.cols().chats, after, limit, Subject::new("chat", ""))
            .await
    }
}

fn dedup_pairs(pairs: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(pairs.len());
    for (id, name) in pairs {
        if !out.iter().any(|(seen, _)| *seen == id) {
            out.push((id, name));
        }
    }
    out
}
