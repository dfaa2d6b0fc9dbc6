//! Contracts of `MessageRepo`: rows and the chat blob's `history` kept in sync.

use chatstore_core::{ErrorKind, NewMessage, Result, Store};
use serde_json::json;

use crate::assert_kind;
use crate::fixtures::{T0, chat, ids, message, new_chat, new_message};

/// Upserted messages read back one by one and list by `created_at`, then id.
pub async fn upsert_then_get_and_list_in_created_order(store: &Store) -> Result<()> {
    chat(store, "user-1", "c1", "t", T0).await?;
    let m3 = message(store, "c1", "m3", None, T0 + 1).await?;
    message(store, "c1", "m2", Some("m3"), T0 + 2).await?;
    message(store, "c1", "m1", Some("m3"), T0 + 2).await?;
    assert_eq!(store.messages.get("c1", "m3").await?, m3);
    assert_eq!(m3.content, json!("text of m3"));
    assert_eq!(ids(&store.messages.list("c1").await?), ["m3", "m1", "m2"]);
    Ok(())
}

/// An upsert writes the message into `history.messages`, links it into its parent's
/// `childrenIds` and makes it `history.currentId`.
pub async fn upsert_mirrors_the_message_into_the_blob(store: &Store) -> Result<()> {
    chat(store, "user-1", "c1", "t", T0).await?;
    message(store, "c1", "q", None, T0 + 1).await?;
    message(store, "c1", "a1", Some("q"), T0 + 2).await?;
    message(store, "c1", "a2", Some("q"), T0 + 3).await?;
    let blob = store.chats.get("c1").await?.chat;
    let history = &blob["history"];
    assert_eq!(history["currentId"], "a2");
    assert_eq!(history["messages"]["q"]["childrenIds"], json!(["a1", "a2"]));
    assert_eq!(history["messages"]["a1"]["parentId"], "q");
    assert_eq!(history["messages"]["a1"]["role"], "assistant");
    assert_eq!(history["messages"]["a1"]["content"], "text of a1");
    assert_eq!(history["messages"]["a1"]["timestamp"], json!(T0 + 2));
    assert_eq!(blob["title"], "t", "the rest of the blob is kept");
    Ok(())
}

/// Upserting an existing id replaces the message but keeps its `created_at` when none is
/// given.
pub async fn upsert_replaces_and_keeps_created_at(store: &Store) -> Result<()> {
    chat(store, "user-1", "c1", "t", T0).await?;
    message(store, "c1", "m1", None, T0 + 1).await?;
    let mut edit = NewMessage::text("c1", "m1", "user", "edited");
    edit.updated_at = Some(T0 + 9);
    let m = store.messages.upsert(edit).await?;
    assert_eq!((m.created_at, m.updated_at), (T0 + 1, T0 + 9));
    assert_eq!(
        store.messages.get("c1", "m1").await?.content,
        json!("edited")
    );
    assert_eq!(store.messages.list("c1").await?.len(), 1);
    let blob = store.chats.get("c1").await?.chat;
    assert_eq!(blob["history"]["messages"]["m1"]["content"], "edited");
    Ok(())
}

/// A message entry's keys that chatstore does not model belong to the client (Open WebUI
/// keeps a user's rating in `annotation`, the model's display name in `modelName`): creating
/// the chat and replacing the message keep them as they were; the modelled keys follow the
/// message.
pub async fn a_replaced_message_keeps_the_clients_own_keys(store: &Store) -> Result<()> {
    let rating = json!({"rating": -1, "tags": ["wrong"], "comment": "é ✓", "weight": 1.5});
    let mut new = new_chat("user-1", "c1", "t", T0);
    new.chat = Some(json!({"history": {"currentId": "m1", "messages": {
        "m1": {"id": "m1", "parentId": null, "role": "assistant", "content": "hello",
               "timestamp": T0, "annotation": rating, "modelName": "Llama 3", "modelIdx": 0,
               "files": [{"id": "old"}]}
    }}}));
    let created = store.chats.create(new).await?;
    let entry = &created.chat["history"]["messages"]["m1"];
    assert_eq!(entry["annotation"], rating, "kept at creation");
    assert_eq!(entry["modelName"], "Llama 3");
    let mut edit = NewMessage::text("c1", "m1", "assistant", "edited");
    edit.updated_at = Some(T0 + 5);
    store.messages.upsert(edit).await?;
    let blob = store.chats.get("c1").await?.chat;
    let entry = &blob["history"]["messages"]["m1"];
    assert_eq!(entry["content"], "edited");
    assert_eq!(
        entry["annotation"], rating,
        "kept when the message is replaced"
    );
    assert_eq!(entry["modelName"], "Llama 3");
    assert_eq!(entry["modelIdx"], 0);
    assert!(
        entry.get("files").is_none(),
        "a modelled key follows the message: {entry}"
    );
    Ok(())
}

/// A new message given `updated_at` but no `created_at` was created at that `updated_at`, not
/// at the moment the store wrote it: two stores given the same message (the rollout router's
/// dual writes) store the same timestamps.
pub async fn a_new_message_without_created_at_takes_its_updated_at(store: &Store) -> Result<()> {
    chat(store, "user-1", "c1", "t", T0).await?;
    let mut new = NewMessage::text("c1", "m1", "user", "hello");
    new.updated_at = Some(T0 + 5);
    let m = store.messages.upsert(new).await?;
    assert_eq!((m.created_at, m.updated_at), (T0 + 5, T0 + 5));
    let stored = store.messages.get("c1", "m1").await?;
    assert_eq!((stored.created_at, stored.updated_at), (T0 + 5, T0 + 5));
    Ok(())
}

/// Deleting a message removes its row and its blob entry, unlinks it from its parent and
/// moves `currentId` to the parent.
pub async fn deleting_a_message_removes_row_and_blob_entry(store: &Store) -> Result<()> {
    chat(store, "user-1", "c1", "t", T0).await?;
    message(store, "c1", "q", None, T0 + 1).await?;
    message(store, "c1", "a", Some("q"), T0 + 2).await?;
    store.messages.delete("c1", "a").await?;
    assert_kind!(store.messages.get("c1", "a").await, NotFound);
    assert_eq!(ids(&store.messages.list("c1").await?), ["q"]);
    let blob = store.chats.get("c1").await?.chat;
    assert!(blob["history"]["messages"].get("a").is_none());
    assert_eq!(blob["history"]["messages"]["q"]["childrenIds"], json!([]));
    assert_eq!(blob["history"]["currentId"], "q");
    assert_kind!(store.messages.delete("c1", "a").await, NotFound);
    Ok(())
}

/// A message for a missing chat is `NotFound` and creates nothing.
pub async fn message_for_a_missing_chat_is_not_found(store: &Store) -> Result<()> {
    assert_kind!(message(store, "ghost", "m1", None, T0).await, NotFound);
    assert_kind!(store.messages.list("ghost").await, NotFound);
    assert!(store.messages.scan(None, 10).await?.is_empty());
    Ok(())
}

/// Reading or deleting a missing message of an existing chat is `NotFound`.
pub async fn missing_message_is_not_found(store: &Store) -> Result<()> {
    chat(store, "user-1", "c1", "t", T0).await?;
    assert_kind!(store.messages.get("c1", "nope").await, NotFound);
    assert_kind!(store.messages.delete("c1", "nope").await, NotFound);
    assert!(store.messages.list("c1").await?.is_empty());
    Ok(())
}

/// Message ids are scoped to their chat: the same id in two chats is two messages.
pub async fn message_ids_are_scoped_to_their_chat(store: &Store) -> Result<()> {
    chat(store, "user-1", "c1", "t", T0).await?;
    chat(store, "user-1", "c2", "t", T0).await?;
    message(store, "c1", "m", None, T0).await?;
    store
        .messages
        .upsert(new_message("c2", "m", None, "user", "other", T0))
        .await?;
    assert_eq!(
        store.messages.get("c1", "m").await?.content,
        json!("text of m")
    );
    assert_eq!(store.messages.get("c2", "m").await?.content, json!("other"));
    store.messages.delete("c1", "m").await?;
    assert_eq!(store.messages.get("c2", "m").await?.content, json!("other"));
    Ok(())
}

/// An upsert raises the chat's `updated_at` to the message's when that is newer, never lowers
/// it.
pub async fn upsert_raises_the_chat_updated_at(store: &Store) -> Result<()> {
    chat(store, "user-1", "c1", "t", T0 + 10).await?;
    message(store, "c1", "old", None, T0 + 5).await?;
    assert_eq!(store.chats.get("c1").await?.updated_at, T0 + 10);
    message(store, "c1", "new", Some("old"), T0 + 20).await?;
    assert_eq!(store.chats.get("c1").await?.updated_at, T0 + 20);
    Ok(())
}

/// Bad roles, empty ids, self-parenting and non-JSON-text content are `InvalidInput` and
/// change nothing.
pub async fn invalid_message_is_refused_and_changes_nothing(store: &Store) -> Result<()> {
    let before = chat(store, "user-1", "c1", "t", T0).await?;
    let bads = [
        new_message("c1", "m1", None, "robot", "x", T0),
        new_message("c1", "", None, "user", "x", T0),
        new_message("c1", "m1", Some("m1"), "user", "x", T0),
        NewMessage {
            content: json!({"not": "a string or list"}),
            ..new_message("c1", "m1", None, "user", "x", T0)
        },
        new_message("c1", "m1", None, "user", "nul\0", T0),
        new_message("", "m1", None, "user", "x", T0),
    ];
    for bad in bads {
        assert_kind!(store.messages.upsert(bad).await, InvalidInput);
    }
    assert!(store.messages.list("c1").await?.is_empty());
    assert_eq!(store.chats.get("c1").await?, before);
    Ok(())
}

/// A bulk upsert with one bad message stores none of them.
pub async fn upsert_many_is_all_or_nothing(store: &Store) -> Result<()> {
    chat(store, "user-1", "c1", "t", T0).await?;
    let good = new_message("c1", "m1", None, "user", "a", T0);
    let bad = new_message("c1", "m2", None, "alien", "b", T0);
    assert_kind!(
        store
            .messages
            .upsert_many("c1", vec![good.clone(), bad])
            .await,
        InvalidInput
    );
    assert!(store.messages.list("c1").await?.is_empty());
    let other_chat = new_message("c2", "m3", None, "user", "c", T0);
    assert_kind!(
        store.messages.upsert_many("c1", vec![other_chat]).await,
        InvalidInput
    );
    let second = new_message("c1", "m2", Some("m1"), "assistant", "b", T0 + 1);
    let stored = store.messages.upsert_many("c1", vec![good, second]).await?;
    assert_eq!(ids(&stored), ["m1", "m2"]);
    let blob = store.chats.get("c1").await?.chat;
    assert_eq!(
        blob["history"]["messages"]["m1"]["childrenIds"],
        json!(["m2"])
    );
    assert_kind!(store.messages.upsert_many("ghost", vec![]).await, NotFound);
    Ok(())
}

/// A keyset scan walks every message by its key `"{chat_id}-{id}"`.
pub async fn message_scan_walks_by_key(store: &Store) -> Result<()> {
    chat(store, "user-1", "b", "t", T0).await?;
    chat(store, "user-1", "a", "t", T0).await?;
    message(store, "b", "1", None, T0).await?;
    message(store, "a", "2", None, T0).await?;
    message(store, "a", "1", None, T0 + 5).await?;
    let keys: Vec<String> = store
        .messages
        .scan(None, 10)
        .await?
        .iter()
        .map(|m| m.key())
        .collect();
    assert_eq!(keys, ["a-1", "a-2", "b-1"]);
    let rest: Vec<String> = store
        .messages
        .scan(Some("a-2"), 10)
        .await?
        .iter()
        .map(|m| m.key())
        .collect();
    assert_eq!(rest, ["b-1"]);
    Ok(())
}

/// Open WebUI's row id `"{chat_id}-{id}"` collides when ids hold `-` (chat `a` message
/// `b-c`, chat `a-b` message `c`): every backend refuses the second message as a `Conflict`,
/// as SQL's primary key does, whether it comes alone, in a new chat's blob or in a batch of
/// chats, and the first keeps its key (a keyset scan would skip one of two equal keys).
pub async fn a_message_key_taken_by_another_chat_is_a_conflict(store: &Store) -> Result<()> {
    chat(store, "user-1", "a", "t", T0).await?;
    chat(store, "user-1", "a-b", "t", T0).await?;
    message(store, "a", "b-c", None, T0).await?;
    assert_kind!(message(store, "a-b", "c", None, T0 + 1).await, Conflict);
    assert!(store.messages.list("a-b").await?.is_empty());
    let batch = vec![new_message("a-b", "c", None, "user", "x", T0 + 1)];
    assert_kind!(store.messages.upsert_many("a-b", batch).await, Conflict);
    assert!(store.messages.list("a-b").await?.is_empty());

    chat(store, "user-1", "a-b-c", "t", T0).await?;
    message(store, "a-b-c", "d-e", None, T0).await?;
    // Chat "a-b-c-d" whose blob holds message "e": key "a-b-c-d-e", taken above.
    let mut with_blob = new_chat("user-1", "a-b-c-d", "t", T0);
    with_blob.chat = Some(json!({"history": {"currentId": "e", "messages": {
        "e": {"id": "e", "parentId": null, "role": "user", "content": "hi", "timestamp": T0}
    }}}));
    assert_kind!(store.chats.create(with_blob.clone()).await, Conflict);
    assert_kind!(store.chats.get("a-b-c-d").await, NotFound);
    assert_kind!(
        store
            .chats
            .create_many(vec![new_chat("user-1", "free", "t", T0), with_blob])
            .await,
        Conflict
    );
    assert_kind!(store.chats.get("free").await, NotFound);

    let keys: Vec<(String, String)> = store
        .messages
        .scan(None, 10)
        .await?
        .into_iter()
        .map(|m| (m.chat_id, m.id))
        .collect();
    let expected = [("a", "b-c"), ("a-b-c", "d-e")];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(c, i)| (c.to_string(), i.to_string()))
        .collect();
    assert_eq!(keys, expected);
    Ok(())
}

/// Listing several chats' messages at once answers what listing each answers, in the order
/// asked; a missing chat among them is `NotFound`.
pub async fn list_many_answers_each_chats_list(store: &Store) -> Result<()> {
    chat(store, "user-1", "a", "t", T0).await?;
    chat(store, "user-1", "b", "t", T0).await?;
    chat(store, "user-1", "c", "t", T0).await?;
    message(store, "a", "2", None, T0).await?;
    message(store, "a", "1", None, T0 + 5).await?;
    message(store, "b", "1", None, T0).await?;
    let asked: Vec<String> = ["b", "a", "c"].map(str::to_owned).to_vec();
    let mut each = Vec::new();
    for id in &asked {
        each.push(store.messages.list(id).await?);
    }
    assert_eq!(store.messages.list_many(&asked).await?, each);
    assert_eq!(ids(&each[1]), ["2", "1"]);
    assert!(store.messages.list_many(&[]).await?.is_empty());
    let twice: Vec<String> = ["a", "b", "a"].map(str::to_owned).to_vec();
    assert_eq!(
        store.messages.list_many(&twice).await?,
        [each[1].clone(), each[0].clone(), each[1].clone()],
        "an id given twice gets its list twice"
    );
    let with_ghost: Vec<String> = ["a", "ghost"].map(str::to_owned).to_vec();
    assert_kind!(store.messages.list_many(&with_ghost).await, NotFound);
    Ok(())
}

/// The orphan scan finds no message while every message's chat exists (a store that cannot
/// answer it says `Unsupported`), also after a chat is deleted with its messages.
pub async fn orphan_scan_finds_nothing_while_chats_hold_their_messages(
    store: &Store,
) -> Result<()> {
    chat(store, "user-1", "a", "t", T0).await?;
    chat(store, "user-1", "b", "t", T0).await?;
    message(store, "a", "1", None, T0).await?;
    message(store, "b", "1", None, T0).await?;
    match store.messages.scan_orphans(None, 10).await {
        Err(e) if e.kind() == ErrorKind::Unsupported => return Ok(()),
        other => assert!(other?.is_empty()),
    }
    store.chats.delete("a").await?;
    assert!(store.messages.scan_orphans(None, 10).await?.is_empty());
    assert!(
        store
            .messages
            .scan_orphans(Some("a-1"), 10)
            .await?
            .is_empty()
    );
    Ok(())
}

/// Content given as a list of blocks round-trips unchanged.
pub async fn block_content_round_trips(store: &Store) -> Result<()> {
    chat(store, "user-1", "c1", "t", T0).await?;
    let blocks = json!([{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "data:x"}}]);
    let mut m = new_message("c1", "m1", None, "user", "", T0);
    m.content = blocks.clone();
    store.messages.upsert(m).await?;
    assert_eq!(store.messages.get("c1", "m1").await?.content, blocks);
    assert_eq!(
        store.chats.get("c1").await?.chat["history"]["messages"]["m1"]["content"],
        blocks
    );
    Ok(())
}

/// A message without an author is attributed to the chat's owner.
pub async fn author_defaults_to_the_chat_owner(store: &Store) -> Result<()> {
    chat(store, "user-1", "c1", "t", T0).await?;
    let m = message(store, "c1", "m1", None, T0).await?;
    assert_eq!(m.user_id.as_deref(), Some("user-1"));
    let mut by_other = new_message("c1", "m2", None, "user", "x", T0);
    by_other.user_id = Some("user-9".into());
    assert_eq!(
        store.messages.upsert(by_other).await?.user_id.as_deref(),
        Some("user-9")
    );
    Ok(())
}

/// Model, done, usage, error, files, sources and meta round-trip.
pub async fn optional_message_fields_round_trip(store: &Store) -> Result<()> {
    chat(store, "user-1", "c1", "t", T0).await?;
    let m = NewMessage {
        model_id: Some("llama3:8b".into()),
        done: Some(false),
        usage: Some(json!({"input_tokens": 12, "output_tokens": 30})),
        error: Some(json!({"content": "timeout"})),
        files: Some(json!([{"id": "f1"}])),
        sources: Some(json!([{"source": {"name": "doc"}}])),
        status_history: Some(json!([{"done": true}])),
        meta: Some(json!({"voice": false})),
        output: Some(json!([{"type": "message"}])),
        embeds: Some(json!(["e"])),
        context_summary: Some("summary".into()),
        ..new_message("c1", "m1", None, "assistant", "partial", T0)
    };
    let stored = store.messages.upsert(m).await?;
    let got = store.messages.get("c1", "m1").await?;
    assert_eq!(got, stored);
    assert!(!got.done);
    assert_eq!(
        got.usage,
        Some(json!({"input_tokens": 12, "output_tokens": 30}))
    );
    let entry = &store.chats.get("c1").await?.chat["history"]["messages"]["m1"];
    assert_eq!(entry["model"], "llama3:8b");
    assert_eq!(entry["statusHistory"], json!([{"done": true}]));
    assert_eq!(entry["done"], json!(false));
    Ok(())
}

/// A JSON field holding a bare number or a bare string (an error code, a usage count) reads
/// back as it was written, and so does the chat's list of messages (SQLite stores the text of a
/// bare number in a `JSON` column as a number).
pub async fn bare_json_values_round_trip(store: &Store) -> Result<()> {
    chat(store, "user-1", "c1", "t", T0).await?;
    let m = NewMessage {
        usage: Some(json!(42)),
        error: Some(json!(1.5)),
        meta: Some(json!(-7)),
        files: Some(json!("f1")),
        ..new_message("c1", "m1", None, "assistant", "x", T0)
    };
    let stored = store.messages.upsert(m).await?;
    let got = store.messages.get("c1", "m1").await?;
    assert_eq!(got, stored);
    assert_eq!(got.usage, Some(json!(42)));
    assert_eq!(got.error, Some(json!(1.5)));
    assert_eq!(got.meta, Some(json!(-7)));
    assert_eq!(got.files, Some(json!("f1")));
    assert_eq!(store.messages.list("c1").await?, vec![got]);
    let mut again = NewMessage::text("c1", "m1", "assistant", "y");
    again.usage = Some(json!(43));
    store.messages.upsert(again).await?;
    assert_eq!(store.messages.get("c1", "m1").await?.usage, Some(json!(43)));
    Ok(())
}
