//! The chat blob (`chat.chat`) and its message mirror, kept the way Open WebUI keeps it:
//! `history.messages[id]` holds each message in its JSON form, `childrenIds` follows
//! `parentId`, and `history.currentId` names the message last written.
//!
//! Every backend changes blobs only through these functions, so the same operations give the
//! same blob everywhere.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::chats::Chat;
use crate::messages::{Message, NewMessage};
use crate::{Error, Result, validate};

/// Sets `title` in the blob (a no-op unless the blob is an object).
pub fn set_title(blob: &mut Value, title: &str) {
    if let Value::Object(map) = blob {
        map.insert("title".to_owned(), Value::String(title.to_owned()));
    }
}

/// The keys of a `history.messages` entry that [`Message`] models, every one written by
/// [`message_json`]. An entry's other keys (Open WebUI's `annotation` with a user's rating,
/// `modelName`, `modelIdx`, `models`, `user`, `info`, ...) belong to the client: rewriting an
/// entry keeps them as they are ([`upsert_message`], [`rebuild_history`]).
pub const MESSAGE_KEYS: [&str; 18] = [
    "id",
    "parentId",
    "childrenIds",
    "role",
    "content",
    "done",
    "timestamp",
    "user_id",
    "model",
    "output",
    "files",
    "sources",
    "embeds",
    "statusHistory",
    "error",
    "usage",
    "meta",
    "contextSummary",
];

/// `entry` (a [`message_json`]) with the keys of `previous` that [`Message`] does not model.
fn keep_client_keys(mut entry: Value, previous: Option<&Value>) -> Value {
    if let (Value::Object(map), Some(Value::Object(previous))) = (&mut entry, previous) {
        for (key, value) in previous {
            if !MESSAGE_KEYS.contains(&key.as_str()) {
                map.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
    }
    entry
}

/// The JSON form of a message inside `history.messages`.
pub fn message_json(message: &Message, children: Vec<String>) -> Value {
    let mut map = Map::new();
    map.insert("id".into(), json!(message.id));
    map.insert("parentId".into(), json!(message.parent_id));
    map.insert("childrenIds".into(), json!(children));
    map.insert("role".into(), json!(message.role));
    map.insert("content".into(), message.content.clone());
    map.insert("done".into(), json!(message.done));
    map.insert("timestamp".into(), json!(message.created_at));
    if let Some(user) = &message.user_id {
        map.insert("user_id".into(), json!(user));
    }
    if let Some(model) = &message.model_id {
        map.insert("model".into(), json!(model));
    }
    let optional = [
        ("output", &message.output),
        ("files", &message.files),
        ("sources", &message.sources),
        ("embeds", &message.embeds),
        ("statusHistory", &message.status_history),
        ("error", &message.error),
        ("usage", &message.usage),
        ("meta", &message.meta),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            map.insert(key.into(), value.clone());
        }
    }
    if let Some(summary) = &message.context_summary {
        map.insert("contextSummary".into(), json!(summary));
    }
    Value::Object(map)
}

/// Reads the messages of a blob given at chat creation: `history.messages` or, in legacy
/// blobs, a flat `messages` list.
pub fn messages_in_blob(blob: &Value, owner: &str, default_ts: i64) -> Result<Vec<NewMessage>> {
    let entries: Vec<(Option<&str>, &Value)> =
        match blob.get("history").and_then(|h| h.get("messages")) {
            Some(Value::Object(map)) => map.iter().map(|(k, v)| (Some(k.as_str()), v)).collect(),
            Some(Value::Null) | None => match blob.get("messages") {
                Some(Value::Array(items)) => items.iter().map(|v| (None, v)).collect(),
                _ => Vec::new(),
            },
            Some(other) => {
                return Err(Error::invalid(format!(
                    "chat blob history.messages must be an object, got {}",
                    validate::json_type(other)
                )));
            }
        };
    let mut out = Vec::with_capacity(entries.len());
    for (key, entry) in entries {
        out.push(parse_message(key, entry, owner, default_ts)?);
    }
    Ok(out)
}

fn parse_message(
    key: Option<&str>,
    entry: &Value,
    owner: &str,
    default_ts: i64,
) -> Result<NewMessage> {
    let Value::Object(map) = entry else {
        return Err(Error::invalid(format!(
            "a message in the chat blob must be an object, got {}",
            validate::json_type(entry)
        )));
    };
    let str_of = |k: &str| map.get(k).and_then(Value::as_str).map(str::to_owned);
    let id = str_of("id")
        .or_else(|| key.map(str::to_owned))
        .ok_or_else(|| Error::invalid("a message in the chat blob has no id"))?;
    if let Some(key) = key
        && key != id
    {
        return Err(Error::invalid(format!(
            "chat blob history.messages key {key:?} differs from the message's id {id:?}"
        )));
    }
    let role = str_of("role")
        .ok_or_else(|| Error::invalid(format!("message {id:?} in the chat blob has no role")))?;
    let some = |k: &str| map.get(k).filter(|v| !v.is_null()).cloned();
    let timestamp = map
        .get("timestamp")
        .and_then(Value::as_i64)
        .map(normalize_timestamp)
        .unwrap_or(default_ts);
    let user_id = str_of("user_id")
        .or_else(|| {
            map.get("user")
                .and_then(|u| u.get("id"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .or_else(|| Some(owner.to_owned()));
    Ok(NewMessage {
        id,
        chat_id: String::new(),
        user_id,
        role,
        parent_id: str_of("parentId"),
        content: map.get("content").cloned().unwrap_or(Value::Null),
        model_id: str_of("model"),
        done: map.get("done").and_then(Value::as_bool),
        output: some("output"),
        files: some("files"),
        sources: some("sources"),
        embeds: some("embeds"),
        status_history: some("statusHistory"),
        error: some("error"),
        usage: some("usage"),
        meta: some("meta"),
        context_summary: str_of("contextSummary"),
        created_at: Some(timestamp),
        updated_at: Some(timestamp),
    })
}

/// The messages a chat blob holds (`history.messages`, or a legacy flat `messages` list),
/// skipping entries that are not readable messages ([`split_blob`] names those).
pub fn readable_messages(chat: &Chat) -> Vec<Message> {
    read_entries(chat).0
}

/// A chat's messages as Open WebUI reads them: the `listed` ones (its `chat_message` rows),
/// and the readable entries of its blob that have no row (Open WebUI writes the blob first and
/// only logs a failed row write, then merges such entries back when it reads the chat), in
/// list order.
pub fn with_blob_only(chat: &Chat, listed: &[Message]) -> Vec<Message> {
    merged(listed, readable_messages(chat))
}

/// [`with_blob_only`], and the entries of the blob that do not read as messages (no `role`,
/// not an object, a key that differs from the entry's id, ...) and have no row among
/// `listed` (the row is the message), each with its key (its id in a legacy list, else its
/// place there) and why: one walk of the blob. What rebuilds the history from messages leaves
/// these entries out; a copy sets them aside rather than losing them unseen.
pub fn split_blob(chat: &Chat, listed: &[Message]) -> (Vec<Message>, Vec<(String, Value, Error)>) {
    let (readable, unreadable) = read_entries(chat);
    let unreadable = unreadable
        .into_iter()
        .filter(|(key, _, _)| !listed.iter().any(|m| m.id == *key))
        .collect();
    (merged(listed, readable), unreadable)
}

/// `listed` and the messages of `blob` without a row among them, in list order.
fn merged(listed: &[Message], blob: Vec<Message>) -> Vec<Message> {
    let mut all = listed.to_vec();
    for message in blob {
        if !listed.iter().any(|m| m.id == message.id) {
            all.push(message);
        }
    }
    sort_messages(&mut all);
    all
}

/// The blob's entries read once: the messages (the first entry of each id) and the entries
/// that do not read as messages (key, entry, why).
fn read_entries(chat: &Chat) -> (Vec<Message>, Vec<(String, Value, Error)>) {
    let mut readable: Vec<Message> = Vec::new();
    let mut unreadable = Vec::new();
    for (key, entry, read) in blob_entries(chat) {
        match read {
            Ok(message) => {
                if !readable.iter().any(|m| m.id == message.id) {
                    readable.push(message);
                }
            }
            Err(e) => unreadable.push((key, entry.clone(), e)),
        }
    }
    (readable, unreadable)
}

/// Every entry of the blob's messages with its key and how it reads as a message.
fn blob_entries(chat: &Chat) -> Vec<(String, &Value, Result<Message>)> {
    let entries: Vec<(String, &Value, Value)> =
        match chat.chat.get("history").and_then(|h| h.get("messages")) {
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| {
                    let mut one = Map::new();
                    one.insert(k.clone(), v.clone());
                    (k.clone(), v, json!({ "history": { "messages": one } }))
                })
                .collect(),
            _ => match chat.chat.get("messages") {
                Some(Value::Array(items)) => items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        let key = v
                            .get("id")
                            .and_then(Value::as_str)
                            .map_or_else(|| format!("messages[{i}]"), str::to_owned);
                        (key, v, json!({ "messages": [v] }))
                    })
                    .collect(),
                _ => Vec::new(),
            },
        };
    entries
        .into_iter()
        .map(|(key, entry, one)| {
            let read = messages_in_blob(&one, &chat.user_id, chat.created_at).and_then(|parsed| {
                let mut new = parsed.into_iter().next().ok_or_else(|| {
                    Error::invalid(format!("message {key:?} in the chat blob is empty"))
                })?;
                new.chat_id = chat.id.clone();
                new.into_message(chat, chat.updated_at)
            });
            (key, entry, read)
        })
        .collect()
}

/// Per message id, the keys of its blob entry that [`Message`] does not model (the client's
/// own, see [`MESSAGE_KEYS`]); entries without any are left out.
pub fn client_keys(blob: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(Value::Object(entries)) = blob.get("history").and_then(|h| h.get("messages")) {
        for (id, entry) in entries {
            if let Value::Object(entry) = entry {
                let own: Map<String, Value> = entry
                    .iter()
                    .filter(|(k, _)| !MESSAGE_KEYS.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if !own.is_empty() {
                    out.insert(id.clone(), Value::Object(own));
                }
            }
        }
    }
    out
}

/// Open WebUI's reading of a message timestamp: values above 10^10 are milliseconds.
pub fn normalize_timestamp(ts: i64) -> i64 {
    if ts > 10_000_000_000 { ts / 1000 } else { ts }
}

/// Orders messages the way lists return them: `created_at, id`.
pub fn sort_messages(messages: &mut [Message]) {
    messages.sort_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then_with(|| a.id.cmp(&b.id))
    });
}

/// Rewrites `history` from a full set of messages (at chat creation). `currentId` is kept when
/// it names one of them, else it is the last message in list order.
///
/// A message's entry keeps the keys [`Message`] does not model from the entry the blob held
/// for it, in `history.messages` or in a legacy flat `messages` list.
pub fn rebuild_history(blob: &mut Value, messages: &[Message]) {
    let Value::Object(map) = blob else { return };
    let legacy = map.remove("messages");
    if messages.is_empty() && !map.contains_key("history") {
        return;
    }
    let previous: HashMap<&str, &Value> = match map.get("history").and_then(|h| h.get("messages")) {
        Some(Value::Object(entries)) => entries.iter().map(|(k, v)| (k.as_str(), v)).collect(),
        _ => match &legacy {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| Some((v.get("id")?.as_str()?, v)))
                .collect(),
            _ => HashMap::new(),
        },
    };
    let mut sorted = messages.to_vec();
    sort_messages(&mut sorted);
    let current = map
        .get("history")
        .and_then(|h| h.get("currentId"))
        .and_then(Value::as_str)
        .filter(|id| sorted.iter().any(|m| m.id == *id))
        .map(str::to_owned)
        .or_else(|| sorted.last().map(|m| m.id.clone()));
    let mut entries = Map::new();
    for message in &sorted {
        let children = sorted
            .iter()
            .filter(|m| m.parent_id.as_deref() == Some(message.id.as_str()))
            .map(|m| m.id.clone())
            .collect();
        let entry = message_json(message, children);
        entries.insert(
            message.id.clone(),
            keep_client_keys(entry, previous.get(message.id.as_str()).copied()),
        );
    }
    map.insert(
        "history".to_owned(),
        json!({ "messages": entries, "currentId": current }),
    );
}

fn history_messages(blob: &mut Value) -> Option<&mut Map<String, Value>> {
    let Value::Object(map) = blob else {
        return None;
    };
    let history = map
        .entry("history")
        .or_insert_with(|| json!({"messages": {}, "currentId": null}));
    if !history.is_object() {
        *history = json!({"messages": {}, "currentId": null});
    }
    let Value::Object(history) = history else {
        return None;
    };
    let messages = history
        .entry("messages")
        .or_insert_with(|| Value::Object(Map::new()));
    if !messages.is_object() {
        *messages = Value::Object(Map::new());
    }
    messages.as_object_mut()
}

fn set_current(blob: &mut Value, current: Value) {
    if let Some(history) = blob.get_mut("history").and_then(Value::as_object_mut) {
        history.insert("currentId".to_owned(), current);
    }
}

fn children_of(entry: &Value) -> Vec<String> {
    entry
        .get("childrenIds")
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn set_children(entry: &mut Value, children: Vec<String>) {
    if let Value::Object(map) = entry {
        map.insert("childrenIds".to_owned(), json!(children));
    }
}

/// Writes a message into the blob: its entry (keeping the keys of the entry it replaces that
/// [`Message`] does not model), its parent's `childrenIds`, and `currentId`.
pub fn upsert_message(blob: &mut Value, message: &Message) {
    let Some(entries) = history_messages(blob) else {
        return;
    };
    let previous = entries.get(&message.id).cloned();
    let children = match &previous {
        Some(entry) => children_of(entry),
        None => {
            let mut kids: Vec<(i64, String)> = entries
                .values()
                .filter(|e| e.get("parentId").and_then(Value::as_str) == Some(message.id.as_str()))
                .filter_map(|e| {
                    let id = e.get("id").and_then(Value::as_str)?.to_owned();
                    let ts = e.get("timestamp").and_then(Value::as_i64).unwrap_or(0);
                    Some((ts, id))
                })
                .collect();
            kids.sort();
            kids.into_iter().map(|(_, id)| id).collect()
        }
    };
    let old_parent = previous
        .as_ref()
        .and_then(|e| e.get("parentId"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    if old_parent != message.parent_id
        && let Some(old) = old_parent.and_then(|p| entries.get_mut(&p))
    {
        let kept = children_of(old)
            .into_iter()
            .filter(|c| *c != message.id)
            .collect();
        set_children(old, kept);
    }
    if let Some(parent) = message.parent_id.as_ref().and_then(|p| entries.get_mut(p)) {
        let mut kids = children_of(parent);
        if !kids.contains(&message.id) {
            kids.push(message.id.clone());
            set_children(parent, kids);
        }
    }
    let entry = keep_client_keys(message_json(message, children), previous.as_ref());
    entries.insert(message.id.clone(), entry);
    set_current(blob, Value::String(message.id.clone()));
}

/// Removes a message from the blob: its entry, its id in the parent's `childrenIds`, and
/// `currentId` moves to the parent when it named the message.
pub fn remove_message(blob: &mut Value, message_id: &str) {
    let Some(entries) = history_messages(blob) else {
        return;
    };
    let Some(removed) = entries.remove(message_id) else {
        return;
    };
    let parent = removed
        .get("parentId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let Some(entry) = parent.as_ref().and_then(|p| entries.get_mut(p)) {
        let kept = children_of(entry)
            .into_iter()
            .filter(|c| c != message_id)
            .collect();
        set_children(entry, kept);
    }
    let current = blob
        .get("history")
        .and_then(|h| h.get("currentId"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    if current.as_deref() == Some(message_id) {
        set_current(blob, parent.map(Value::String).unwrap_or(Value::Null));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str, parent: Option<&str>, ts: i64) -> Message {
        Message {
            id: id.into(),
            chat_id: "c".into(),
            user_id: Some("u".into()),
            role: "user".into(),
            parent_id: parent.map(Into::into),
            content: json!("hi"),
            model_id: None,
            done: true,
            output: None,
            files: None,
            sources: None,
            embeds: None,
            status_history: None,
            error: None,
            usage: None,
            meta: None,
            context_summary: None,
            created_at: ts,
            updated_at: ts,
        }
    }

    #[test]
    fn upsert_links_children_and_moves_current() {
        let mut blob = json!({});
        upsert_message(&mut blob, &msg("a", None, 1));
        upsert_message(&mut blob, &msg("b", Some("a"), 2));
        assert_eq!(blob["history"]["currentId"], "b");
        assert_eq!(
            blob["history"]["messages"]["a"]["childrenIds"],
            json!(["b"])
        );
        remove_message(&mut blob, "b");
        assert_eq!(blob["history"]["currentId"], "a");
        assert_eq!(blob["history"]["messages"]["a"]["childrenIds"], json!([]));
    }

    #[test]
    fn every_key_a_message_writes_is_a_modelled_key() {
        let mut full = msg("a", Some("p"), 1);
        full.model_id = Some("m".into());
        full.output = Some(json!([]));
        full.files = Some(json!([]));
        full.sources = Some(json!([]));
        full.embeds = Some(json!([]));
        full.status_history = Some(json!([]));
        full.error = Some(json!("e"));
        full.usage = Some(json!({}));
        full.meta = Some(json!({}));
        full.context_summary = Some("s".into());
        let entry = message_json(&full, vec![]);
        let mut keys: Vec<&str> = entry
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        let mut modelled = MESSAGE_KEYS.to_vec();
        modelled.sort_unstable();
        assert_eq!(keys, modelled);
    }

    #[test]
    fn rewriting_an_entry_keeps_the_clients_own_keys() {
        let rating = json!({"rating": 1, "tags": ["good"], "score": 1.0});
        let mut blob = json!({"history": {"messages": {"a": {
            "id": "a", "role": "user", "content": "old", "files": [{"id": "f"}],
            "annotation": rating, "modelName": "Ada", "childrenIds": []
        }}, "currentId": "a"}});
        rebuild_history(&mut blob, &[msg("a", None, 1)]);
        let entry = &blob["history"]["messages"]["a"];
        assert_eq!(entry["annotation"], rating);
        assert_eq!(entry["modelName"], "Ada");
        assert!(
            entry.get("files").is_none(),
            "a modelled key follows the message"
        );

        let mut edited = msg("a", None, 1);
        edited.content = json!("new");
        upsert_message(&mut blob, &edited);
        let entry = &blob["history"]["messages"]["a"];
        assert_eq!(entry["content"], "new");
        assert_eq!(entry["annotation"], rating);
        assert_eq!(entry["modelName"], "Ada");
    }

    #[test]
    fn a_legacy_message_list_keeps_the_clients_own_keys() {
        let mut blob = json!({"messages": [
            {"id": "a", "role": "user", "content": "hi", "modelIdx": 2}
        ]});
        rebuild_history(&mut blob, &[msg("a", None, 1)]);
        assert_eq!(blob["history"]["messages"]["a"]["modelIdx"], 2);
        assert!(blob.get("messages").is_none());
    }

    #[test]
    fn millisecond_timestamps_are_normalised() {
        assert_eq!(normalize_timestamp(1_700_000_000_000), 1_700_000_000);
        assert_eq!(normalize_timestamp(1_700_000_000), 1_700_000_000);
    }
}
