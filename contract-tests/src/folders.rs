//! Contracts of folders: nesting per user, sibling names, merges, moves, and deletion of a
//! subtree with the chats in it.

use chatstore_core::models::{FolderChats, FolderPatch, NewFolder, Workspace};
use chatstore_core::{ChatQuery, FolderFilter, Result, Store};
use serde_json::json;

use crate::assert_kind;
use crate::fixtures::{T0, chat, new_chat, obj};

/// The store's workspace; `Unsupported` (a failure) when it has no rows.
pub fn workspace(store: &Store) -> Result<Workspace> {
    store.workspace()
}

fn folder(user: &str, id: &str, name: &str, parent: Option<&str>) -> NewFolder {
    NewFolder {
        id: Some(id.to_owned()),
        user_id: user.to_owned(),
        parent_id: parent.map(str::to_owned),
        name: name.to_owned(),
        meta: Some(json!({"icon": "📁"})),
        created_at: Some(T0),
        ..NewFolder::default()
    }
}

/// A created folder reads back as given, with `updated_at` defaulting to `created_at`.
pub async fn create_then_get_round_trips_a_folder(store: &Store) -> Result<()> {
    let folders = workspace(store)?.folders();
    let made = folders.create(folder("u1", "f1", "Work", None)).await?;
    let got = folders.get("u1", "f1").await?;
    assert_eq!(made, got);
    assert_eq!(got.name, "Work");
    assert_eq!(got.meta, Some(json!({"icon": "📁"})));
    assert_eq!((got.created_at, got.updated_at), (T0, T0));
    assert!(!got.is_expanded);
    assert_kind!(folders.get("u2", "f1").await, NotFound);
    assert_kind!(folders.get("u1", "nope").await, NotFound);
    Ok(())
}

/// Sibling folder names are unique per user ignoring ASCII case; other parents and users may
/// reuse them.
pub async fn sibling_names_are_unique_ignoring_case(store: &Store) -> Result<()> {
    let folders = workspace(store)?.folders();
    folders.create(folder("u1", "f1", "Work", None)).await?;
    assert_kind!(
        folders.create(folder("u1", "f2", "WORK", None)).await,
        Conflict
    );
    folders
        .create(folder("u1", "f3", "work", Some("f1")))
        .await?;
    folders.create(folder("u2", "f4", "work", None)).await?;
    assert_eq!(folders.list("u1").await?.len(), 2);
    let found = folders.by_name("u1", None, "wOrK").await?;
    assert_eq!(found.map(|f| f.id), Some("f1".to_owned()));
    Ok(())
}

/// A folder's parent must be one of the same user's folders.
pub async fn a_parent_must_be_the_users_folder(store: &Store) -> Result<()> {
    let folders = workspace(store)?.folders();
    folders.create(folder("u1", "f1", "Work", None)).await?;
    assert_kind!(
        folders.create(folder("u2", "f2", "Mine", Some("f1"))).await,
        NotFound
    );
    assert_kind!(
        folders
            .create(folder("u1", "f3", "Lost", Some("ghost")))
            .await,
        NotFound
    );
    assert_eq!(folders.list("u2").await?.len(), 0);
    Ok(())
}

/// Children list one level, newest update first; the subtree holds every depth.
pub async fn children_and_subtrees_follow_nesting(store: &Store) -> Result<()> {
    let folders = workspace(store)?.folders();
    folders.create(folder("u1", "a", "A", None)).await?;
    let mut b = folder("u1", "b", "B", Some("a"));
    b.updated_at = Some(T0 + 5);
    folders.create(b).await?;
    folders.create(folder("u1", "c", "C", Some("a"))).await?;
    folders.create(folder("u1", "d", "D", Some("b"))).await?;
    let ids = |list: Vec<chatstore_core::models::Folder>| -> Vec<String> {
        list.into_iter().map(|f| f.id).collect()
    };
    assert_eq!(
        ids(folders.children("u1", Some("a")).await?),
        vec!["b", "c"]
    );
    assert_eq!(ids(folders.children("u1", None).await?), vec!["a"]);
    let mut subtree = folders.subtree_ids("u1", "a").await?;
    subtree.sort();
    assert_eq!(subtree, vec!["a", "b", "c", "d"]);
    Ok(())
}

/// An update renames, merges `meta` and `data` keys, sets `is_expanded` and moves; a clash with
/// a sibling's name is a `Conflict` and changes nothing.
pub async fn update_merges_renames_and_refuses_clashes(store: &Store) -> Result<()> {
    let folders = workspace(store)?.folders();
    folders.create(folder("u1", "f1", "Work", None)).await?;
    folders.create(folder("u1", "f2", "Home", None)).await?;
    let got = folders
        .update(
            "u1",
            "f1",
            FolderPatch {
                name: Some("Job".into()),
                meta: Some(obj(json!({"color": "red"}))),
                data: Some(obj(json!({"share_mode": "continue"}))),
                is_expanded: Some(true),
                ..FolderPatch::default()
            },
        )
        .await?;
    assert_eq!(got.name, "Job");
    assert_eq!(got.meta, Some(json!({"icon": "📁", "color": "red"})));
    assert_eq!(got.data, Some(json!({"share_mode": "continue"})));
    assert!(got.is_expanded);
    assert!(got.updated_at >= T0);
    assert_kind!(
        folders
            .update(
                "u1",
                "f2",
                FolderPatch {
                    name: Some("JOB".into()),
                    ..FolderPatch::default()
                }
            )
            .await,
        Conflict
    );
    assert_eq!(folders.get("u1", "f2").await?.name, "Home");
    assert_eq!(folders.get("u1", "f1").await?, got);
    Ok(())
}

/// Moving a folder into its own subtree is refused with `InvalidInput`; elsewhere it works.
pub async fn a_folder_cannot_move_into_its_subtree(store: &Store) -> Result<()> {
    let folders = workspace(store)?.folders();
    folders.create(folder("u1", "a", "A", None)).await?;
    folders.create(folder("u1", "b", "B", Some("a"))).await?;
    folders.create(folder("u1", "c", "C", None)).await?;
    for target in ["a", "b"] {
        assert_kind!(
            folders
                .update(
                    "u1",
                    "a",
                    FolderPatch {
                        parent_id: Some(Some(target.into())),
                        ..FolderPatch::default()
                    }
                )
                .await,
            InvalidInput
        );
    }
    let moved = folders
        .update(
            "u1",
            "a",
            FolderPatch {
                parent_id: Some(Some("c".into())),
                ..FolderPatch::default()
            },
        )
        .await?;
    assert_eq!(moved.parent_id.as_deref(), Some("c"));
    let back = folders
        .update(
            "u1",
            "a",
            FolderPatch {
                parent_id: Some(None),
                ..FolderPatch::default()
            },
        )
        .await?;
    assert_eq!(back.parent_id, None);
    Ok(())
}

/// Deleting a folder deletes its sub-folders at any depth and the chats in all of them; other
/// folders and chats stay.
pub async fn deleting_a_folder_deletes_its_subtree_and_chats(store: &Store) -> Result<()> {
    let folders = workspace(store)?.folders();
    folders.create(folder("u1", "a", "A", None)).await?;
    folders.create(folder("u1", "b", "B", Some("a"))).await?;
    folders.create(folder("u1", "c", "C", Some("b"))).await?;
    folders.create(folder("u1", "other", "Other", None)).await?;
    for (id, f) in [("c1", "a"), ("c2", "c"), ("c3", "other")] {
        let mut new = new_chat("u1", id, id, T0);
        new.folder_id = Some(f.into());
        store.chats.create(new).await?;
    }
    chat(store, "u1", "loose", "Loose", T0).await?;
    let mut deleted = folders.delete("u1", "a", FolderChats::Delete).await?;
    deleted.sort();
    assert_eq!(deleted, vec!["a", "b", "c"]);
    for gone in ["a", "b", "c"] {
        assert_kind!(folders.get("u1", gone).await, NotFound);
    }
    assert_kind!(store.chats.get("c1").await, NotFound);
    assert_kind!(store.chats.get("c2").await, NotFound);
    store.chats.get("c3").await?;
    store.chats.get("loose").await?;
    folders.get("u1", "other").await?;
    Ok(())
}

/// Deleting a folder with `Detach` keeps its chats, out of any folder.
pub async fn deleting_a_folder_can_detach_its_chats(store: &Store) -> Result<()> {
    let folders = workspace(store)?.folders();
    folders.create(folder("u1", "a", "A", None)).await?;
    folders.create(folder("u1", "b", "B", Some("a"))).await?;
    let mut new = new_chat("u1", "c1", "In B", T0);
    new.folder_id = Some("b".into());
    store.chats.create(new).await?;
    folders.delete("u1", "a", FolderChats::Detach).await?;
    let got = store.chats.get("c1").await?;
    assert_eq!(got.folder_id, None);
    assert_eq!(got.updated_at, T0);
    let in_none = store
        .chats
        .list(&ChatQuery::for_user("u1").folder(FolderFilter::NoFolder))
        .await?;
    assert_eq!(in_none.total, 1);
    assert_eq!(folders.list("u1").await?.len(), 0);
    Ok(())
}

/// An internal chat in a folder being deleted goes with it (Open WebUI deletes every chat
/// with the folder's id), and with `Detach` it is taken out of the folder like the others.
pub async fn deleting_a_folder_covers_its_internal_chats(store: &Store) -> Result<()> {
    let folders = workspace(store)?.folders();
    for (id, name) in [("a", "A"), ("b", "B")] {
        folders.create(folder("u1", id, name, None)).await?;
    }
    for (id, f) in [("gone", "a"), ("kept", "b")] {
        let mut new = new_chat("u1", id, id, T0);
        new.folder_id = Some(f.into());
        new.meta = Some(obj(json!({"internal": true})));
        store.chats.create(new).await?;
    }
    folders.delete("u1", "a", FolderChats::Delete).await?;
    assert_kind!(store.chats.get("gone").await, NotFound);
    folders.delete("u1", "b", FolderChats::Detach).await?;
    let kept = store.chats.get("kept").await?;
    assert_eq!(kept.folder_id, None);
    assert!(kept.is_internal());
    Ok(())
}

/// Bad folder input is refused with `InvalidInput` and creates nothing.
pub async fn invalid_folder_input_is_refused(store: &Store) -> Result<()> {
    let folders = workspace(store)?.folders();
    let mut bad = vec![
        folder("u1", "f1", "  ", None),
        folder("u1", "bad/id", "X", None),
        folder("", "f1", "X", None),
    ];
    let mut not_object = folder("u1", "f1", "X", None);
    not_object.meta = Some(json!([1]));
    bad.push(not_object);
    for new in bad {
        let shown = format!("{new:?}");
        match folders.create(new).await {
            Err(e) if e.kind() == chatstore_core::ErrorKind::InvalidInput => {}
            other => panic!("{shown} should be InvalidInput, got {other:?}"),
        }
    }
    assert!(folders.records().scan(None, 10).await?.is_empty());
    Ok(())
}
