//! From a change to the `events` envelopes Open WebUI's web client reacts to.

use chatstore_core::changes::field;
use chatstore_core::{ChangeEvent, ChangeKind, ErrorKind, ModelGroup, Store};
use serde_json::{Value, json};
use std::future::Future;
use std::time::{Duration, Instant};

use crate::metric;

/// How long the read of a changed record is tried again while the store answers that it is
/// unavailable (a full pool, a restarting server), before the client is sent `chat:list`.
const READ_PATIENCE: Duration = Duration::from_secs(30);
/// The first pause between two reads; it doubles up to [`MAX_READ_PAUSE`].
const FIRST_READ_PAUSE: Duration = Duration::from_millis(100);
const MAX_READ_PAUSE: Duration = Duration::from_secs(5);

/// One `events` emission: the room it goes to and the payload
/// `{chat_id, message_id, data: {type, data}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// `user:{id}` or `chat:{id}`.
    pub room: String,
    /// The payload of the `events` event.
    pub payload: Value,
}

impl Envelope {
    fn new(room: String, chat_id: &str, message_id: Option<&str>, kind: &str, data: Value) -> Self {
        Envelope {
            room,
            payload: json!({
                "chat_id": chat_id,
                "message_id": message_id,
                "data": {"type": kind, "data": data},
            }),
        }
    }
}

/// The envelopes of one change, reading the store for what the event does not carry (the
/// new title, the tag list, the message):
///
/// | change | envelope (room) |
/// |---|---|
/// | chat created or deleted; archived, pinned, moved, shared, meta changed | `chat:list` (`user:{owner}`) |
/// | title changed | `chat:title`, data = the title (`user:{owner}`) |
/// | tags changed | `chat:tags`, data = the tag ids (`user:{owner}`) |
/// | chat changed, fields unknown (read back after a reconnect, PocketBase) | all three |
/// | message created or updated | `chat:message`, data = the message (`chat:{id}`) |
/// | message deleted | `chat:message:delete`, data = `{id}` (`chat:{id}`) |
///
/// `{owner}` is the owner the store gives the chat when it is read, not the user the event
/// names (a notification can name anyone): a chat's title and tags never go to another user.
/// Users and files have no Open WebUI event. A chat or message already gone when it is read
/// gives `chat:list` (the client reloads) or nothing.
pub async fn envelopes(store: &Store, event: &ChangeEvent) -> Vec<Envelope> {
    if event.group != ModelGroup::Chats {
        return Vec::new();
    }
    let user_room = format!("user:{}", event.user_id);
    let Some(chat_id) = event.chat_id.as_deref() else {
        // Every chat of the user went at once.
        return vec![Envelope::new(user_room, "", None, "chat:list", json!({}))];
    };
    if let Some(message_id) = event.message_id.as_deref() {
        let room = format!("chat:{chat_id}");
        if event.kind == ChangeKind::Deleted {
            let data = json!({"id": message_id});
            return vec![Envelope::new(
                room,
                chat_id,
                Some(message_id),
                "chat:message:delete",
                data,
            )];
        }
        let read = read_again_while_unavailable(|| store.messages.get(chat_id, message_id));
        return match read.await {
            Ok(message) => match serde_json::to_value(&message) {
                Ok(data) => vec![Envelope::new(
                    room,
                    chat_id,
                    Some(message_id),
                    "chat:message",
                    data,
                )],
                Err(_) => Vec::new(),
            },
            // Gone since: its deletion comes as an event of its own.
            Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                // The feed has moved past the change and will not name it again: the client
                // is told to reload rather than told nothing.
                metrics::counter!(metric::UNREAD_CHANGES).increment(1);
                tracing::warn!(error = %e, chat_id, message_id, "bridge: cannot read a changed message; sending chat:list instead");
                vec![Envelope::new(
                    user_room,
                    chat_id,
                    None,
                    "chat:list",
                    json!({}),
                )]
            }
        };
    }
    let list = || Envelope::new(user_room.clone(), chat_id, None, "chat:list", json!({}));
    if event.kind != ChangeKind::Updated {
        return vec![list()];
    }
    let has = |f: &str| event.fields.iter().any(|x| x == f);
    let unknown = event.fields.is_empty();
    let wants_list = unknown
        || [
            field::ARCHIVED,
            field::PINNED,
            field::FOLDER,
            field::SHARE,
            field::META,
        ]
        .iter()
        .any(|f| has(f));
    let wants_title = unknown || has(field::TITLE);
    let wants_tags = unknown || has(field::TAGS);
    let mut out = Vec::new();
    if wants_list {
        out.push(list());
    }
    if wants_title || wants_tags {
        match read_again_while_unavailable(|| store.chats.get(chat_id)).await {
            Ok(chat) => {
                // The event's user is the writer's word (on PostgreSQL, anyone who may NOTIFY
                // can name any chat): what the chat says goes to the chat's own owner only.
                let owner_room = format!("user:{}", chat.user_id);
                if chat.user_id != event.user_id {
                    tracing::warn!(
                        chat_id,
                        named = %event.user_id,
                        "bridge: a change names a user the chat does not belong to; telling its owner only"
                    );
                    for envelope in &mut out {
                        envelope.room.clone_from(&owner_room);
                    }
                }
                if wants_title {
                    out.push(Envelope::new(
                        owner_room.clone(),
                        chat_id,
                        None,
                        "chat:title",
                        Value::String(chat.title.clone()),
                    ));
                }
                if wants_tags {
                    let tags: Vec<&String> = chat.tags.iter().collect();
                    out.push(Envelope::new(
                        owner_room.clone(),
                        chat_id,
                        None,
                        "chat:tags",
                        json!(tags),
                    ));
                }
            }
            Err(e) => {
                if e.kind() != ErrorKind::NotFound {
                    metrics::counter!(metric::UNREAD_CHANGES).increment(1);
                    tracing::warn!(error = %e, chat_id, "bridge: cannot read a changed chat; sending chat:list instead");
                }
                if !wants_list {
                    out.push(list());
                }
            }
        }
    }
    out
}

/// Runs `read` until it answers something other than a retryable error or [`READ_PATIENCE`]
/// has passed. The feed has already moved past the change being translated: a read given up at
/// the first pool time-out or server restart would leave the client without it for good.
async fn read_again_while_unavailable<T, F, Fut>(read: F) -> chatstore_core::Result<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = chatstore_core::Result<T>>,
{
    let started = Instant::now();
    let mut pause = FIRST_READ_PAUSE;
    loop {
        match read().await {
            Err(e) if e.is_retryable() && started.elapsed() + pause <= READ_PATIENCE => {
                tracing::debug!(error = %e, "bridge: reading a changed record again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_READ_PAUSE);
            }
            answer => return answer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use chatstore_core::messages::MessageRepo;
    use chatstore_core::{Error, Message, NewChat, NewMessage, NewUser, Result, StoreParts};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A message repository whose first `failures` reads fail with `error()`.
    struct FailingReads {
        inner: Arc<dyn MessageRepo>,
        failures: AtomicU32,
        error: fn() -> Error,
    }

    #[async_trait]
    impl MessageRepo for FailingReads {
        async fn upsert(&self, message: NewMessage) -> Result<Message> {
            self.inner.upsert(message).await
        }
        async fn upsert_many(
            &self,
            chat_id: &str,
            messages: Vec<NewMessage>,
        ) -> Result<Vec<Message>> {
            self.inner.upsert_many(chat_id, messages).await
        }
        async fn get(&self, chat_id: &str, id: &str) -> Result<Message> {
            let left = self.failures.load(Ordering::SeqCst);
            if left > 0 {
                self.failures.store(left - 1, Ordering::SeqCst);
                return Err((self.error)());
            }
            self.inner.get(chat_id, id).await
        }
        async fn list(&self, chat_id: &str) -> Result<Vec<Message>> {
            self.inner.list(chat_id).await
        }
        async fn delete(&self, chat_id: &str, id: &str) -> Result<()> {
            self.inner.delete(chat_id, id).await
        }
        async fn scan(&self, after: Option<&str>, limit: u32) -> Result<Vec<Message>> {
            self.inner.scan(after, limit).await
        }
    }

    /// A memory store holding one message, its reads failing `failures` times with `error()`;
    /// and the change event of that message.
    async fn store_with_failing_reads(failures: u32, error: fn() -> Error) -> (Store, ChangeEvent) {
        let store = chatstore_core::memory::store();
        let user = store
            .users
            .create(NewUser::new("ada@example.com", "Ada"))
            .await
            .expect("user");
        let chat = store
            .chats
            .create(NewChat::new(&user.id, "Notes"))
            .await
            .expect("chat");
        let message = store
            .messages
            .upsert(NewMessage::text(&chat.id, "m1", "user", "Hello"))
            .await
            .expect("message");
        let parts = store.parts();
        let messages = FailingReads {
            inner: parts.messages.clone(),
            failures: AtomicU32::new(failures),
            error,
        };
        let parts = StoreParts {
            messages: Arc::new(messages),
            ..parts
        };
        let flaky = Store::new("flaky", store.capabilities(), parts);
        (
            flaky,
            ChangeEvent::message(ChangeKind::Created, &user.id, &message),
        )
    }

    fn kinds(out: &[Envelope]) -> Vec<&str> {
        out.iter()
            .map(|e| e.payload["data"]["type"].as_str().unwrap_or("?"))
            .collect()
    }

    /// A change naming a user who does not own the chat (a NOTIFY anyone can send) tells that
    /// user nothing of the chat: its title and tags go to the chat's own owner only.
    #[tokio::test]
    async fn a_change_naming_another_user_reaches_only_the_chat_owner() {
        let store = chatstore_core::memory::store();
        let ada = store
            .users
            .create(NewUser::new("ada@example.com", "Ada"))
            .await
            .expect("user");
        let bob = store
            .users
            .create(NewUser::new("bob@example.com", "Bob"))
            .await
            .expect("user");
        let chat = store
            .chats
            .create(NewChat::new(&ada.id, "Ada's secret plans"))
            .await
            .expect("chat");
        let bob_room = format!("user:{}", bob.id);
        for fields in [&[field::TITLE, field::TAGS, field::ARCHIVED][..], &[]] {
            let spoofed = ChangeEvent::chat_ids(ChangeKind::Updated, &bob.id, &chat.id, fields);
            let out = envelopes(&store, &spoofed).await;
            assert!(
                out.iter().all(|e| e.room != bob_room),
                "an envelope went to the user the event named: {out:?}"
            );
            assert!(
                out.iter().any(|e| e.room == format!("user:{}", ada.id)
                    && e.payload["data"]["data"] == "Ada's secret plans"),
                "the owner is told the title: {out:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_message_read_while_the_store_is_unavailable_is_read_again() {
        let (store, event) =
            store_with_failing_reads(3, || Error::unavailable("pool timed out", "test")).await;
        let out = envelopes(&store, &event).await;
        assert_eq!(kinds(&out), ["chat:message"]);
        assert_eq!(out[0].payload["data"]["data"]["content"], "Hello");
    }

    #[tokio::test]
    async fn a_message_that_cannot_be_read_makes_the_client_reload() {
        let (store, event) = store_with_failing_reads(1, || Error::backend_msg("broken")).await;
        let out = envelopes(&store, &event).await;
        assert_eq!(kinds(&out), ["chat:list"]);
        assert!(out[0].room.starts_with("user:"), "{}", out[0].room);
    }
}
