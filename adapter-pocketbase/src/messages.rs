//! Messages in the `owui_messages` collection, one record per `(chat_id, id)` (record id
//! derived from both), the message itself kept whole in the json field `doc`.
//!
//! Every write also rewrites the chat blob's `history` with the core's `blob` functions and
//! commits both in one transaction of the `tx` route, guarded by the chat's version: two
//! writers on one chat never lose each other's message.

use std::collections::HashMap;

use async_trait::async_trait;
use chatstore_core::messages::message_key;
use chatstore_core::{Chat, Error, Message, MessageRepo, NewMessage, Result, blob, validate};
use serde_json::{Value, json};

use crate::PocketBase;
use crate::chats::retry_stale;
use crate::client::ListQuery;
use crate::error::{Subject, malformed};
use crate::tx::TxOp;
use crate::{filter, record};

/// The record id of message `id` of chat `chat_id`.
pub fn message_record_id(chat_id: &str, id: &str) -> String {
    record::derived_id(&["message", chat_id, id])
}

fn from_record(r: &Value) -> Result<Message> {
    let doc = record::json(r, "doc").ok_or_else(|| malformed("message without doc"))?;
    serde_json::from_value(doc).map_err(|e| malformed(format!("message doc: {e}")))
}

impl PocketBase {
    /// The op that inserts or replaces a message record.
    pub fn upsert_message_op(&self, m: &Message) -> TxOp {
        let doc = serde_json::to_value(m).unwrap_or(Value::Null);
        TxOp::Upsert {
            collection: self.cols().messages.clone(),
            entity: "message",
            id: message_record_id(&m.chat_id, &m.id),
            fields: json!({"chat_id": m.chat_id, "msg_id": m.id, "key": m.key(),
                           "created_at": m.created_at, "doc": record::json_value(&doc)}),
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

    async fn messages_of(&self, chat_id: &str) -> Result<Vec<Message>> {
        let q = ListQuery {
            filter: filter::eq("chat_id", chat_id),
            sort: "created_at,msg_id".to_owned(),
            ..ListQuery::default()
        };
        self.client()
            .list_all(&self.cols().messages, &q, Subject::new("message", chat_id))
            .await?
            .iter()
            .map(from_record)
            .collect()
    }

    async fn upsert_once(&self, chat_id: &str, messages: &[NewMessage]) -> Result<Vec<Message>> {
        // The chat and the stored messages are read concurrently; the chat's version guards
        // both (every message write bumps it).
        let stored_messages = async {
            if let [single] = messages {
                Ok(self
                    .find_message(chat_id, &single.id)
                    .await?
                    .into_iter()
                    .collect())
            } else {
                self.messages_of(chat_id).await
            }
        };
        let ((mut chat, version), current): ((Chat, i64), Vec<Message>) =
            tokio::try_join!(self.read_chat_untagged(chat_id), stored_messages)?;
        let mut existing: HashMap<String, Message> =
            current.into_iter().map(|m| (m.id.clone(), m)).collect();
        let now = validate::now();
        let mut stored = Vec::with_capacity(messages.len());
        for message in messages {
            let m = message
                .clone()
                .into_stored(&chat, existing.get(&message.id), now)?;
            blob::upsert_message(&mut chat.chat, &m);
            chat.updated_at = chat.updated_at.max(m.updated_at);
            existing.insert(m.id.clone(), m.clone());
            stored.push(m);
        }
        let mut ops = vec![
            self.expect_version_op(chat_id, version),
            self.update_chat_op(&chat, version + 1),
        ];
        ops.extend(stored.iter().map(|m| self.upsert_message_op(m)));
        self.client()
            .tx(ops, Subject::new("message", chat_id))
            .await?;
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
        let batch = [message];
        let mut stored = retry_stale(|| self.upsert_once(&chat_id, &batch)).await?;
        stored
            .pop()
            .ok_or_else(|| Error::backend_msg("message upsert stored nothing"))
    }

    async fn upsert_many(&self, chat_id: &str, messages: Vec<NewMessage>) -> Result<Vec<Message>> {
        if messages.is_empty() {
            self.read_chat(chat_id).await?;
            return Ok(Vec::new());
        }
        retry_stale(|| self.upsert_once(chat_id, &messages)).await
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

    async fn scan(&self, after: Option<&str>, limit: u32) -> Result<Vec<Message>> {
        let q = ListQuery {
            filter: after
                .map(|a| format!("key > {}", filter::literal(a)))
                .unwrap_or_default(),
            sort: "key".to_owned(),
            skip_total: true,
            ..ListQuery::default()
        };
        let (items, _) = self
            .client()
            .list(
                &self.cols().messages,
                &q,
                0,
                Some(u64::from(limit)),
                Subject::new("message", ""),
            )
            .await?;
        items.iter().map(from_record).collect()
    }
}
