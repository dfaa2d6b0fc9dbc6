//! Contracts of the `Store`: cascades across aggregates and capabilities.

use chatstore_core::{ChatQuery, ErrorKind, FileQuery, Result, Store, VectorFilter};

use crate::assert_kind;
use crate::fixtures::{T0, file, message, tagged_chat, user};

/// Deleting a user deletes the user's chats, messages, tags and files, and nobody else's.
pub async fn deleting_a_user_deletes_everything_the_user_owns(store: &Store) -> Result<()> {
    user(store, 1).await?;
    user(store, 2).await?;
    tagged_chat(store, "user-1", "c1", T0, &["a"]).await?;
    message(store, "c1", "m1", None, T0).await?;
    file(store, "user-1", "f1", b"mine", T0).await?;
    tagged_chat(store, "user-2", "c2", T0, &["a"]).await?;
    message(store, "c2", "m1", None, T0).await?;
    file(store, "user-2", "f2", b"theirs", T0).await?;
    store.delete_user("user-1").await?;
    assert_kind!(store.users.get("user-1").await, NotFound);
    assert_kind!(store.chats.get("c1").await, NotFound);
    assert_kind!(store.files.get("f1").await, NotFound);
    assert!(store.tags.list("user-1").await?.is_empty());
    assert_eq!(
        store
            .chats
            .list(&ChatQuery::for_user("user-1"))
            .await?
            .total,
        0
    );
    assert_eq!(store.messages.scan(None, 10).await?.len(), 1);
    assert_eq!(
        store
            .chats
            .list(&ChatQuery::for_user("user-2"))
            .await?
            .total,
        1
    );
    assert_eq!(store.files.list(&FileQuery::default()).await?.total, 1);
    assert_eq!(store.tags.list("user-2").await?.len(), 1);
    Ok(())
}

/// Deleting a missing user is `NotFound`.
pub async fn deleting_a_missing_user_is_not_found(store: &Store) -> Result<()> {
    assert_kind!(store.delete_user("ghost").await, NotFound);
    Ok(())
}

/// What a backend lacks answers `Unsupported` for every call, never a silent `Ok`; what it has
/// answers something else.
pub async fn missing_capabilities_answer_unsupported(store: &Store) -> Result<()> {
    let caps = store.capabilities();
    let outcomes: Vec<Option<ErrorKind>> = vec![
        store
            .vectors
            .has_collection("c")
            .await
            .err()
            .map(|e| e.kind()),
        store.vectors.get("c").await.err().map(|e| e.kind()),
        store
            .vectors
            .search("c", &[vec![1.0, 0.0]], None, 1)
            .await
            .err()
            .map(|e| e.kind()),
        store
            .vectors
            .query("c", &VectorFilter::eq("k", "v"), None)
            .await
            .err()
            .map(|e| e.kind()),
        store.vectors.collections().await.err().map(|e| e.kind()),
    ];
    for outcome in outcomes {
        if caps.vectors {
            assert_ne!(outcome, Some(ErrorKind::Unsupported));
        } else {
            assert_eq!(outcome, Some(ErrorKind::Unsupported));
        }
    }
    assert!(
        caps.users && caps.chats && caps.files,
        "every backend stores app data"
    );
    Ok(())
}

/// A store names its backend.
pub async fn backend_reports_a_name(store: &Store) -> Result<()> {
    assert!(!store.backend_name().is_empty());
    Ok(())
}
