//! Contracts of knowledge bases: search by access, files at most once, directories.

use chatstore_core::models::{
    Grant, KnowledgePatch, NewKnowledge, Permission, Search, SortBy, View, Viewer,
};
use chatstore_core::rows::Dir;
use chatstore_core::{PageRequest, Result, Store};
use serde_json::json;

use crate::assert_kind;
use crate::fixtures::{T0, file, obj};
use crate::folders::workspace;
use crate::groups::users;

/// A knowledge base of `user` named `name`, created at `T0 + ts`.
pub fn knowledge(user: &str, id: &str, name: &str, ts: i64) -> NewKnowledge {
    NewKnowledge {
        id: Some(id.to_owned()),
        user_id: user.to_owned(),
        name: name.to_owned(),
        description: Some(format!("About {name}")),
        meta: Some(json!({"source": "local"})),
        created_at: Some(T0 + ts),
        ..NewKnowledge::default()
    }
}

fn ids<T: chatstore_core::models::Record>(page: &chatstore_core::Page<T>) -> Vec<String> {
    page.items.iter().map(|k| k.id().to_owned()).collect()
}

/// A knowledge base reads back as given, and an update renames it, merges `meta` and moves
/// `updated_at`.
pub async fn knowledge_round_trips_and_updates(store: &Store) -> Result<()> {
    let bases = workspace(store)?.knowledge();
    let made = bases.create(knowledge("user-1", "k1", "Docs", 0)).await?;
    assert_eq!(bases.get("k1").await?, made);
    assert_eq!(made.updated_at, Some(T0));
    let got = bases
        .update(
            "k1",
            KnowledgePatch {
                name: Some("Manuals".into()),
                meta: Some(obj(json!({"color": "blue"}))),
                ..KnowledgePatch::default()
            },
        )
        .await?;
    assert_eq!(got.name, "Manuals");
    assert_eq!(got.meta, Some(json!({"source": "local", "color": "blue"})));
    assert!(got.updated_at >= Some(T0));
    assert_eq!(bases.get("k1").await?, got);
    assert_kind!(
        bases.create(knowledge("user-1", "k1", "Again", 1)).await,
        Conflict
    );
    assert_kind!(
        bases.create(knowledge("user-1", "k2", " ", 1)).await,
        InvalidInput
    );
    assert_kind!(bases.get("k2").await, NotFound);
    Ok(())
}

/// A user's search lists what the user owns and what is shared with the user (by name, group
/// or everyone), with own/shared views, text, sort, pages and a total.
pub async fn knowledge_search_follows_access(store: &Store) -> Result<()> {
    users(store, 3).await?;
    let ws = workspace(store)?;
    ws.groups()
        .create(chatstore_core::models::NewGroup {
            id: Some("g1".into()),
            name: "Team".into(),
            ..Default::default()
        })
        .await?;
    ws.groups().add_users("g1", &["user-2".into()]).await?;
    let bases = ws.knowledge();
    bases
        .create(knowledge("user-2", "mine", "Alpha", 3))
        .await?;
    let mut to_user = knowledge("user-1", "to-user", "beta", 2);
    to_user.access_grants = vec![Grant::user("user-2", Permission::Read)];
    bases.create(to_user).await?;
    let mut to_group = knowledge("user-1", "to-group", "Gamma", 1);
    to_group.access_grants = vec![
        Grant::group("g1", Permission::Read),
        Grant::group("g1", Permission::Write),
    ];
    bases.create(to_group).await?;
    let mut public = knowledge("user-3", "public", "Delta", 0);
    public.access_grants = vec![Grant::public_read()];
    bases.create(public).await?;
    bases
        .create(knowledge("user-1", "private", "Epsilon", 4))
        .await?;

    let all = bases.search(&Search::for_user("user-2")).await?;
    assert_eq!(all.total, 4);
    assert_eq!(ids(&all), vec!["mine", "to-user", "to-group", "public"]);
    let writable = bases
        .search(&Search::for_user("user-2").permission(Permission::Write))
        .await?;
    assert_eq!(ids(&writable), vec!["mine", "to-group"]);
    let created = bases
        .search(&Search::for_user("user-2").view(View::Created))
        .await?;
    assert_eq!(ids(&created), vec!["mine"]);
    let shared = bases
        .search(&Search::for_user("user-2").view(View::Shared))
        .await?;
    assert_eq!(shared.total, 3);
    let by_name = bases
        .search(&Search::for_user("user-2").sort(SortBy::Name, Dir::Asc))
        .await?;
    assert_eq!(ids(&by_name), vec!["mine", "public", "to-group", "to-user"]);
    let text = bases
        .search(&Search::for_user("user-2").text("ABOUT ga"))
        .await?;
    assert_eq!(ids(&text), vec!["to-group"]);
    let page = bases
        .search(
            &Search::for_user("user-2")
                .sort(SortBy::CreatedAt, Dir::Asc)
                .page(PageRequest::new(1, 2)),
        )
        .await?;
    assert_eq!(
        (page.total, ids(&page)),
        (4, vec!["to-group".into(), "to-user".into()])
    );
    let admin = bases.search(&Search::default()).await?;
    assert_eq!(admin.total, 5);
    assert_kind!(
        bases
            .search(&Search {
                viewer: Viewer::Admin,
                view: View::Created,
                ..Search::default()
            })
            .await,
        InvalidInput
    );
    Ok(())
}

/// A file is in a knowledge base at most once; removing it and listing by directory work, and
/// deleting the base removes its file links and directories but not the files.
pub async fn knowledge_files_are_a_set_with_directories(store: &Store) -> Result<()> {
    users(store, 1).await?;
    for f in ["f1", "f2", "f3"] {
        file(store, "user-1", f, b"text", T0).await?;
    }
    let bases = workspace(store)?.knowledge();
    bases.create(knowledge("user-1", "k1", "Docs", 0)).await?;
    let dir = bases
        .create_directory("k1", None, "Specs", "user-1")
        .await?;
    let sub = bases
        .create_directory("k1", Some(&dir.id), "Old", "user-1")
        .await?;
    assert_kind!(
        bases.create_directory("k1", None, "Specs", "user-1").await,
        Conflict
    );
    bases.add_file("k1", "f1", "user-1", None).await?;
    bases.add_file("k1", "f2", "user-1", Some(&dir.id)).await?;
    bases.add_file("k1", "f3", "user-1", Some(&sub.id)).await?;
    assert_kind!(bases.add_file("k1", "f1", "user-1", None).await, Conflict);
    assert_kind!(
        bases.add_file("ghost", "f1", "user-1", None).await,
        NotFound
    );
    assert!(bases.has_file("k1", "f2").await?);
    assert_eq!(
        bases.files("k1", None, PageRequest::default()).await?.total,
        3
    );
    let root = bases
        .files("k1", Some(None), PageRequest::default())
        .await?;
    assert_eq!(root.items.len(), 1);
    assert_eq!(root.items[0].file_id, "f1");
    assert_eq!(
        bases.directories("k1", None).await?.len(),
        1,
        "one root directory"
    );
    // Deleting the directory moves its files (and its sub-directory's) to the root.
    bases.delete_directory("k1", &dir.id).await?;
    assert!(bases.directories("k1", None).await?.is_empty());
    assert_eq!(
        bases
            .files("k1", Some(None), PageRequest::default())
            .await?
            .total,
        3
    );
    assert_eq!(bases.with_file("f2").await?.len(), 1);
    bases.remove_file("k1", "f2").await?;
    assert_kind!(bases.remove_file("k1", "f2").await, NotFound);
    bases.delete("k1").await?;
    assert_kind!(bases.get("k1").await, NotFound);
    assert_eq!(bases.file_records().count(vec![]).await?, 0);
    store.files.get("f1").await?;
    Ok(())
}
