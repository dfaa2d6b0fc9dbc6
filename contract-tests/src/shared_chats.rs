//! Contracts of shared chats: snapshots by link, refresh, unshare.

use chatstore_core::models::SharedChatOrder;
use chatstore_core::{ChatPatch, PageRequest, Result, Store};
use serde_json::json;

use crate::assert_kind;
use crate::fixtures::{T0, chat};
use crate::folders::workspace;

/// Sharing snapshots the chat's title and blob with its share mode and sets the chat's
/// `share_id`; refreshing re-reads the chat; unsharing deletes the snapshot and clears it.
pub async fn sharing_snapshots_refreshes_and_unshares(store: &Store) -> Result<()> {
    let shared = workspace(store)?.shared_chats();
    chat(store, "u1", "c1", "Engines", T0).await?;
    assert_kind!(shared.share("c1", "u2", None).await, NotFound);
    let made = shared.share("c1", "u1", Some("continue")).await?;
    assert_eq!(made.title.as_deref(), Some("Engines"));
    let blob = made.chat.clone().unwrap_or_default();
    assert_eq!(blob["share_mode"], json!("continue"));
    assert_eq!(blob["models"], json!(["llama3"]));
    let c1 = store.chats.get("c1").await?;
    assert_eq!(c1.share_id.as_deref(), Some(made.id.as_str()));
    assert_eq!(c1.updated_at, T0);
    assert_eq!(shared.get(&made.id).await?, made);
    store
        .chats
        .update(
            "c1",
            ChatPatch {
                title: Some("Turbines".into()),
                ..ChatPatch::default()
            },
        )
        .await?;
    let refreshed = shared.refresh(&made.id).await?;
    assert_eq!(refreshed.title.as_deref(), Some("Turbines"));
    assert_eq!(
        refreshed.chat.unwrap_or_default()["share_mode"],
        json!("continue")
    );
    assert_eq!(
        shared.of_chat("c1").await?.map(|s| s.id),
        Some(made.id.clone())
    );
    shared.unshare("c1").await?;
    assert_kind!(shared.get(&made.id).await, NotFound);
    assert_eq!(store.chats.get("c1").await?.share_id, None);
    Ok(())
}

/// A user's shared chats list by title text, sort and page, with a total.
pub async fn shared_chats_list_per_user(store: &Store) -> Result<()> {
    let shared = workspace(store)?.shared_chats();
    for (id, title) in [("c1", "Alpha"), ("c2", "beta"), ("c3", "Gamma")] {
        chat(store, "u1", id, title, T0).await?;
        shared.share(id, "u1", None).await?;
    }
    chat(store, "u2", "c4", "Alpha too", T0).await?;
    shared.share("c4", "u2", None).await?;
    let page = shared
        .for_user(
            "u1",
            None,
            SharedChatOrder::TitleAsc,
            PageRequest::default(),
        )
        .await?;
    let titles: Vec<_> = page.items.iter().filter_map(|s| s.title.clone()).collect();
    assert_eq!(
        (page.total, titles),
        (3, vec!["Alpha".into(), "Gamma".into(), "beta".into()])
    );
    let found = shared
        .for_user(
            "u1",
            Some("ALP"),
            SharedChatOrder::UpdatedDesc,
            PageRequest::default(),
        )
        .await?;
    assert_eq!(found.total, 1);
    Ok(())
}
