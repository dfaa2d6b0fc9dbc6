//! From a change to the `events` envelopes Open WebUI's web client reacts to.

use chatstore_core::changes::field;
use chatstore_core::{ChangeEvent, ChangeKind, ErrorKind, ModelGroup, Store};
use serde_json::{Value, json};

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
        return match store.messages.get(chat_id, message_id).await {
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
            Err(e) => {
                if e.kind() != ErrorKind::NotFound {
                    tracing::warn!(error = %e, "bridge: cannot read a changed message");
                }
                Vec::new()
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
        match store.chats.get(chat_id).await {
            Ok(chat) => {
                if wants_title {
                    out.push(Envelope::new(
                        user_room.clone(),
                        chat_id,
                        None,
                        "chat:title",
                        Value::String(chat.title.clone()),
                    ));
                }
                if wants_tags {
                    let tags: Vec<&String> = chat.tags.iter().collect();
                    out.push(Envelope::new(
                        user_room.clone(),
                        chat_id,
                        None,
                        "chat:tags",
                        json!(tags),
                    ));
                }
            }
            Err(e) => {
                if e.kind() != ErrorKind::NotFound {
                    tracing::warn!(error = %e, "bridge: cannot read a changed chat");
                }
                if !wants_list {
                    out.push(list());
                }
            }
        }
    }
    out
}
