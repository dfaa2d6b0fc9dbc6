//! Messages in the `owui_messages` collection, one record per `(chat_id, id)` (record id
//! derived from both), the message itself kept whole in the json field `doc`.
//!
//! An upsert is one request: the `upsert_messages` op of the `tx` route reads the chat and the
//! stored messages, writes the messages into the blob's `history` by core's `blob` rules
//! (ported to the route; `tests/message_blob.rs` checks the two give the same blob) and
//! commits everything in one transaction, bumping the chat's version. A deletion reads the
//! chat, rewrites the blob with core's `blob` functions and commits both in one transaction
//! guarded by the chat's version. Either way two writers on one chat never lose each other's
//! message.

use std::collections::BTreeSet;

use async_trait::async_trait;
use chatstore_core::messages::message_key;
use chatstore_core::{Chat, Error, Message, MessageRepo, NewMessage, Result, blob, validate};
use serde_json::{Map, Value, json};

use crate::PocketBase;
use crate::chats::retry_stale;
use crate::client::{ListQuery, MAX_PER_PAGE, pages_after, text_of};
use crate::error::{Subject, malformed};
use crate::tx::{MessageWrite, TxOp};
use crate::{filter, record};

/// The record id of message `id` of chat `chat_id`.
pub fn message_record_id(chat_id: &str, id: &str) -> String {
    record::derived_id(&["message", chat_id, id])
}

/// The fields of a message's record (not its id).
pub(crate) fn message_fields(m: &Message) -> Value {
    let doc = serde_json::to_value(m).unwrap_or(Value::Null);
    json!({"chat_id": m.chat_id, "msg_id": m.id, "key": m.key(),
           "created_at": m.created_at, "doc": record::json_value(&doc)})
}

fn from_record(r: &Value) -> Result<Message> {
    let doc = record::json(r, "doc").ok_or_else(|| malformed("message without doc"))?;
    serde_json::from_value(doc).map_err(|e| malformed(format!("message doc: {e}")))
}

/// The `upsert_messages` item of one message, and the message as stored up to the two
/// defaults only the route can fill from what it reads (the author when none is given:
/// the chat's owner; `created_at` when none is given: the stored message's, if any).
pub fn message_write(chat_id: &str, new: &NewMessage, now: i64) -> Result<(MessageWrite, Message)> {
    // Core's rules with an owner to be filled in by the route.
    let unread = Chat {
        id: chat_id.to_owned(),
        user_id: String::new(),
        title: String::new(),
        chat: Value::Null,
        meta: Map::new(),
        tags: BTreeSet::new(),
        archived: false,
        pinned: false,
        folder_id: None,
        share_id: None,
        created_at: now,
        updated_at: now,
    };
    let m = new.clone().into_stored(&unread, None, now)?;
    let doc = serde_json::to_string(&m)
        .map_err(|e| Error::invalid(format!("message {:?} does not serialise: {e}", m.id)))?;
    let write = MessageWrite {
        id: m.id.clone(),
        record: message_record_id(chat_id, &m.id),
        parent_id: m.parent_id.clone(),
        doc,
        entry: blob::message_json(&m, Vec::new()).to_string(),
        created_at: m.created_at,
        updated_at: m.updated_at,
        keep_created_at: new.created_at.is_none(),
        owner_is_author: new.user_id.is_none(),
    };
    Ok((write, m))
}

impl PocketBase {
    /// The op that inserts or replaces a message record.
    pub fn upsert_message_op(&self, m: &Message) -> TxOp {
        TxOp::Upsert {
            collection: self.cols().messages.clone(),
            entity: "message",
            id: message_record_id(&m.chat_id, &m.id),
            fields: message_fields(m),
        }
    }

    async fn find_message(&self, chat_id: &str, id: &str) -> Result<Option<Message>> {
        let key = message_key(chat_id, id);
        self.client()
            .find_record(
                &self.cols().messages,
                &message_record_id(chat_id, id),
                None,
                Subject::new("message", &key),
            )
            .await?
            .map(|r| from_record(&r))
            .transpose()
    }

    /// A chat's messages by `created_at, msg_id`, in pages after the last one read (by page
    /// number, a message deleted meanwhile hid the first one of the next page).
    async fn messages_of(&self, chat_id: &str) -> Result<Vec<Message>> {
        let of_chat = filter::eq("chat_id", chat_id);
        let cursor = |r: &Value| {
            let at = r.get("created_at").and_then(Value::as_i64);
            let id = r.get("msg_id").and_then(Value::as_str);
            at.zip(id)
                .map(|(at, id)| (at, id.to_owned()))
                .ok_or_else(|| malformed("a listed message without created_at and msg_id"))
        };
        let records = pages_after(None, u64::MAX, MAX_PER_PAGE, cursor, |after, n| {
            let filter = match after {
                None => of_chat.clone(),
                Some((at, id)) => format!(
                    "{of_chat} && (created_at > {at} || (created_at = {at} && msg_id > {}))",
                    filter::literal(&id)
                ),
            };
            let q = ListQuery {
                filter,
                sort: "created_at,msg_id".to_owned(),
                skip_total: true,
                ..ListQuery::default()
            };
            async move {
                let subject = Subject::new("message", chat_id);
                self.client()
                    .first(&self.cols().messages, &q, n, subject)
                    .await
            }
        })
        .await?;
        records.iter().map(from_record).collect()
    }

    /// Upserts `messages` into chat `chat_id` in one request: the `upsert_messages` op of the
    /// `tx` route reads the chat and the stored messages, applies core's blob rules and writes
    /// everything in one transaction.
    async fn upsert_in_route(
        &self,
        chat_id: &str,
        messages: &[NewMessage],
    ) -> Result<Vec<Message>> {
        let now = validate::now();
        let planned = messages
            .iter()
            .map(|m| message_write(chat_id, m, now))
            .collect::<Result<Vec<_>>>();
        let (items, mut stored): (Vec<MessageWrite>, Vec<Message>) = match planned {
            Ok(planned) => planned.into_iter().unzip(),
            Err(e) => {
                // A missing chat is reported before a bad message, as everywhere else.
                self.read_chat_untagged(chat_id).await?;
                return Err(e);
            }
        };
        let op = TxOp::UpsertMessages {
            collection: self.cols().chats.clone(),
            entity: "chat",
            messages: self.cols().messages.clone(),
            chat_id: chat_id.to_owned(),
            items,
            modelled: &blob::MESSAGE_KEYS,
        };
        let answer = self
            .client()
            .tx(vec![op], Subject::new("chat", chat_id))
            .await?;
        let filled = answer
            .get("results")
            .and_then(|r| r.get(0))
            .and_then(Value::as_array)
            .filter(|f| f.len() == stored.len())
            .ok_or_else(|| malformed("upsert_messages answer without one result per message"))?;
        for (m, f) in stored.iter_mut().zip(filled) {
            m.created_at = f
                .get("created_at")
                .and_then(Value::as_i64)
                .ok_or_else(|| malformed("upsert_messages answer without created_at"))?;
            if let Some(author) = f.get("user_id").and_then(Value::as_str) {
                m.user_id = Some(author.to_owned());
            }
        }
        Ok(stored)
    }

    async fn delete_message_once(&self, chat_id: &str, id: &str) -> Result<()> {
        let ((mut chat, version), found) = tokio::try_join!(
            self.read_chat_untagged(chat_id),
            self.find_message(chat_id, id)
        )?;
        if found.is_none() {
            return Err(Error::not_found("message", message_key(chat_id, id)));
        }
        blob::remove_message(&mut chat.chat, id);
        let ops = vec![
            self.expect_version_op(chat_id, version),
            self.update_chat_op(&chat, version + 1),
            TxOp::Delete {
                collection: self.cols().messages.clone(),
                entity: "message",
                id: message_record_id(chat_id, id),
                must_exist: true,
            },
        ];
        self.client()
            .tx(ops, Subject::new("message", &message_key(chat_id, id)))
            .await?;
        Ok(())
    }
}

#[async_trait]
impl MessageRepo for PocketBase {
    async fn upsert(&self, message: NewMessage) -> Result<Message> {
        let chat_id = message.chat_id.clone();
        let mut stored = self.upsert_in_route(&chat_id, &[message]).await?;
        stored
            .pop()
            .ok_or_else(|| Error::backend_msg("message upsert stored nothing"))
    }

    async fn upsert_many(&self, chat_id: &str, messages: Vec<NewMessage>) -> Result<Vec<Message>> {
        if messages.is_empty() {
            self.read_chat(chat_id).await?;
            return Ok(Vec::new());
        }
        self.upsert_in_route(chat_id, &messages).await
    }

    async fn get(&self, chat_id: &str, id: &str) -> Result<Message> {
        self.read_chat(chat_id).await?;
        self.find_message(chat_id, id)
            .await?
            .ok_or_else(|| Error::not_found("message", message_key(chat_id, id)))
    }

    async fn list(&self, chat_id: &str) -> Result<Vec<Message>> {
        self.read_chat(chat_id).await?;
        let mut out = self.messages_of(chat_id).await?;
        blob::sort_messages(&mut out);
        Ok(out)
    }

    async fn delete(&self, chat_id: &str, id: &str) -> Result<()> {
        retry_stale(|| self.delete_message_once(chat_id, id)).await
    }

    /// Messages by `key`, in pages after the last key read (a scan of more than one page read
    /// pages by number, and a message deleted meanwhile hid the first one of the next page).
    async fn scan(&self, after: Option<&str>, limit: u32) -> Result<Vec<Message>> {
        chatstore_core::query::validate_scan_limit(limit)?;
        let after = after.map(str::to_owned);
        let items = pages_after(
            after,
            u64::from(limit),
            MAX_PER_PAGE,
            text_of("key"),
            |after, n| {
                let q = ListQuery {
                    filter: after
                        .map(|a| format!("key > {}", filter::literal(&a)))
                        .unwrap_or_default(),
                    sort: "key".to_owned(),
                    skip_total: true,
                    ..ListQuery::default()
                };
                async move {
                    let subject = Subject::new("message", "");
                    self.client()
                        .first(&self.cols().messages, &q, n, subject)
                        .await
                }
            },
        )
        .await?;
        items.iter().map(from_record).collect()
    }
}
