//! Contracts of memories: per-user lists, type normalisation, merges, ownership.

use chatstore_core::models::{MemoryPatch, NewMemory};
use chatstore_core::{PageRequest, Result, Store};
use serde_json::json;

use crate::assert_kind;
use crate::fixtures::{T0, obj};
use crate::folders::workspace;

fn memory(user: &str, id: &str, content: &str, ts: i64) -> NewMemory {
    NewMemory {
        id: Some(id.to_owned()),
        user_id: user.to_owned(),
        content: content.to_owned(),
        created_at: Some(T0 + ts),
        ..NewMemory::default()
    }
}

/// A memory reads back as given, content trimmed, type `user` kept and anything else stored as
/// `context`.
pub async fn memories_round_trip_with_normalised_types(store: &Store) -> Result<()> {
    let memories = workspace(store)?.memories();
    let mut a = memory("u1", "m1", "  Likes tea \n", 0);
    a.kind = Some("user".into());
    a.meta = Some(json!({"source": "chat"}));
    let made = memories.create(a).await?;
    assert_eq!(made.content.as_deref(), Some("Likes tea"));
    assert_eq!(made.kind, "user");
    assert_eq!(memories.get("m1").await?, made);
    let mut b = memory("u1", "m2", "Works nights", 1);
    b.kind = Some("fact".into());
    assert_eq!(memories.create(b).await?.kind, "context");
    assert_eq!(
        memories.create(memory("u1", "m3", "x", 2)).await?.kind,
        "context"
    );
    assert_kind!(
        memories.create(memory("u1", "m1", "again", 3)).await,
        Conflict
    );
    Ok(())
}

/// A user's memories list oldest first with a total, and never show another user's.
pub async fn memories_list_per_user_oldest_first(store: &Store) -> Result<()> {
    let memories = workspace(store)?.memories();
    memories.create(memory("u1", "m1", "b", 2)).await?;
    memories.create(memory("u1", "m2", "a", 1)).await?;
    memories.create(memory("u2", "m3", "c", 0)).await?;
    memories.create(memory("u1", "m4", "d", 1)).await?;
    let page = memories.list("u1", PageRequest::new(0, 2)).await?;
    assert_eq!(page.total, 3);
    let ids: Vec<_> = page.items.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, vec!["m2", "m4"]);
    let rest = memories.list("u1", PageRequest::new(2, 2)).await?;
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0].id, "m1");
    assert_eq!(memories.list("u3", PageRequest::default()).await?.total, 0);
    Ok(())
}

/// An update changes the content, type and path and merges `meta`; only the owner may update
/// or delete (others get `NotFound`).
pub async fn memory_updates_merge_and_respect_the_owner(store: &Store) -> Result<()> {
    let memories = workspace(store)?.memories();
    let mut new = memory("u1", "m1", "Old", 0);
    new.meta = Some(json!({"a": 1}));
    memories.create(new).await?;
    let got = memories
        .update(
            "u1",
            "m1",
            MemoryPatch {
                content: Some("New".into()),
                kind: Some("user".into()),
                path: Some(Some("prefs/drinks".into())),
                meta: Some(obj(json!({"b": 2}))),
            },
        )
        .await?;
    assert_eq!(got.content.as_deref(), Some("New"));
    assert_eq!(got.kind, "user");
    assert_eq!(got.path.as_deref(), Some("prefs/drinks"));
    assert_eq!(got.meta, Some(json!({"a": 1, "b": 2})));
    assert_kind!(
        memories.update("u2", "m1", MemoryPatch::default()).await,
        NotFound
    );
    assert_kind!(memories.delete("u2", "m1").await, NotFound);
    memories.delete("u1", "m1").await?;
    assert_kind!(memories.get("m1").await, NotFound);
    Ok(())
}

/// Deleting a user's memories deletes only theirs.
pub async fn delete_for_user_removes_only_their_memories(store: &Store) -> Result<()> {
    let memories = workspace(store)?.memories();
    memories.create(memory("u1", "m1", "a", 0)).await?;
    memories.create(memory("u1", "m2", "b", 0)).await?;
    memories.create(memory("u2", "m3", "c", 0)).await?;
    assert_eq!(memories.delete_for_user("u1").await?, 2);
    assert_eq!(memories.list("u2", PageRequest::default()).await?.total, 1);
    Ok(())
}

/// Empty content and bad ids are refused with `InvalidInput` and store nothing.
pub async fn invalid_memories_are_refused(store: &Store) -> Result<()> {
    let memories = workspace(store)?.memories();
    assert_kind!(
        memories.create(memory("u1", "m1", "   ", 0)).await,
        InvalidInput
    );
    assert_kind!(
        memories.create(memory("u1", "m 1", "x", 0)).await,
        InvalidInput
    );
    let mut negative = memory("u1", "m1", "x", 0);
    negative.created_at = Some(-5);
    assert_kind!(memories.create(negative).await, InvalidInput);
    memories.create(memory("u1", "m1", "x", 0)).await?;
    assert_kind!(
        memories
            .update(
                "u1",
                "m1",
                MemoryPatch {
                    content: Some(String::new()),
                    ..MemoryPatch::default()
                }
            )
            .await,
        InvalidInput
    );
    assert_eq!(memories.get("m1").await?.content.as_deref(), Some("x"));
    Ok(())
}
