//! Routed messages (group `chats`): a message write is repaired by re-copying its chat.

use std::sync::Arc;

use async_trait::async_trait;
use chatstore_core::messages::{Message, MessageRepo, NewMessage};
use chatstore_core::validate::now;
use chatstore_core::{ModelGroup, Result};

use crate::repair::RepairKey;
use crate::router::{Shared, canon, on};

const G: ModelGroup = ModelGroup::Chats;

pub(crate) struct Messages(pub(crate) Arc<Shared>);

/// Fixes `updated_at`. `created_at`, when absent, is each store's stored value (kept on
/// replace), or for a new message that `updated_at` (core's rule), so both stores write the same
/// one; when the stores disagree the answers differ and the chat is logged for repair.
fn fixed(mut message: NewMessage, at: i64) -> NewMessage {
    message.updated_at.get_or_insert(at);
    message
}

#[async_trait]
impl MessageRepo for Messages {
    async fn upsert(&self, message: NewMessage) -> Result<Message> {
        let message = fixed(message, now());
        let keys = vec![RepairKey::Chat(message.chat_id.clone())];
        self.0
            .write(
                G,
                "messages.upsert",
                keys,
                on!(messages, [message], |r| r.upsert(message).await),
            )
            .await
    }

    async fn upsert_many(&self, chat_id: &str, messages: Vec<NewMessage>) -> Result<Vec<Message>> {
        let at = now();
        let messages: Vec<NewMessage> = messages.into_iter().map(|m| fixed(m, at)).collect();
        let chat = chat_id.to_owned();
        self.0
            .write(
                G,
                "messages.upsert_many",
                vec![RepairKey::Chat(chat.clone())],
                on!(messages, [chat, messages], |r| r
                    .upsert_many(&chat, messages)
                    .await),
            )
            .await
    }

    async fn get(&self, chat_id: &str, id: &str) -> Result<Message> {
        let chat = chat_id.to_owned();
        let id = id.to_owned();
        self.0
            .read(
                G,
                "messages.get",
                vec![chat.clone(), id.clone()],
                canon,
                on!(messages, [chat, id], |r| r.get(&chat, &id).await),
            )
            .await
    }

    async fn list(&self, chat_id: &str) -> Result<Vec<Message>> {
        let chat = chat_id.to_owned();
        self.0
            .read(
                G,
                "messages.list",
                vec![chat.clone()],
                canon,
                on!(messages, [chat], |r| r.list(&chat).await),
            )
            .await
    }

    async fn delete(&self, chat_id: &str, id: &str) -> Result<()> {
        let chat = chat_id.to_owned();
        let id = id.to_owned();
        self.0
            .write(
                G,
                "messages.delete",
                vec![RepairKey::Chat(chat.clone())],
                on!(messages, [chat, id], |r| r.delete(&chat, &id).await),
            )
            .await
    }

    async fn scan(&self, after: Option<&str>, limit: u32) -> Result<Vec<Message>> {
        let after = after.map(str::to_owned);
        self.0
            .read(
                G,
                "messages.scan",
                vec![format!("after={after:?} limit={limit}")],
                canon,
                on!(messages, [after, limit], |r| r
                    .scan(after.as_deref(), limit)
                    .await),
            )
            .await
    }
}
