//! Contracts of groups, memberships (nested groups, inherited membership) and access grants.

use chatstore_core::models::{Grant, GroupPatch, NewGroup, Permission};
use chatstore_core::{Result, Store};
use serde_json::json;

use crate::assert_kind;
use crate::fixtures::{T0, user};
use crate::folders::workspace;

/// Creates users `user-1` .. `user-n` (memberships point at real users: a foreign key on SQL).
pub async fn users(store: &Store, n: u32) -> Result<()> {
    for i in 1..=n {
        user(store, i).await?;
    }
    Ok(())
}

fn group(id: &str, parent: Option<&str>, ts: i64) -> NewGroup {
    NewGroup {
        id: Some(id.to_owned()),
        user_id: Some("admin".into()),
        name: format!("Group {id}"),
        parent_group_id: parent.map(str::to_owned),
        data: Some(json!({"config": {"share": true}})),
        created_at: Some(T0 + ts),
        ..NewGroup::default()
    }
}

/// A created group reads back as given; a missing parent is `NotFound`.
pub async fn create_then_get_round_trips_a_group(store: &Store) -> Result<()> {
    let groups = workspace(store)?.groups();
    let made = groups.create(group("g1", None, 0)).await?;
    assert_eq!(groups.get("g1").await?, made);
    assert_eq!(made.updated_at, Some(T0));
    assert_kind!(groups.create(group("g2", Some("ghost"), 0)).await, NotFound);
    assert_kind!(groups.create(group("g1", None, 1)).await, Conflict);
    assert_kind!(groups.get("g2").await, NotFound);
    Ok(())
}

/// Adding members is idempotent; removing takes them out; member lists are sorted ids.
pub async fn members_are_added_once_and_removed(store: &Store) -> Result<()> {
    users(store, 3).await?;
    let groups = workspace(store)?.groups();
    groups.create(group("g1", None, 0)).await?;
    let ids = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        groups
            .add_users("g1", &ids(&["user-2", "user-1", "user-2"]))
            .await?,
        ids(&["user-1", "user-2"])
    );
    assert_eq!(
        groups.add_users("g1", &ids(&["user-1", "user-3"])).await?,
        ids(&["user-1", "user-2", "user-3"])
    );
    assert_eq!(
        groups
            .remove_users("g1", &ids(&["user-2", "nobody"]))
            .await?,
        ids(&["user-1", "user-3"])
    );
    assert_kind!(groups.add_users("ghost", &ids(&["user-1"])).await, NotFound);
    assert_eq!(groups.group_ids_of("user-1", false).await?, ids(&["g1"]));
    Ok(())
}

/// A member of a nested group is an inherited member of every ancestor, and an ancestor's
/// inherited members include its descendants' members.
pub async fn membership_is_inherited_upwards(store: &Store) -> Result<()> {
    users(store, 3).await?;
    let groups = workspace(store)?.groups();
    groups.create(group("top", None, 0)).await?;
    groups.create(group("mid", Some("top"), 1)).await?;
    groups.create(group("leaf", Some("mid"), 2)).await?;
    groups.create(group("aside", None, 3)).await?;
    groups.add_users("leaf", &["user-1".into()]).await?;
    groups.add_users("top", &["user-2".into()]).await?;
    assert_eq!(groups.group_ids_of("user-1", false).await?, vec!["leaf"]);
    assert_eq!(
        groups.group_ids_of("user-1", true).await?,
        vec!["leaf", "mid", "top"]
    );
    assert_eq!(groups.member_ids("top", false).await?, vec!["user-2"]);
    assert_eq!(
        groups.member_ids("top", true).await?,
        vec!["user-1", "user-2"]
    );
    assert_eq!(
        groups.member_ids("aside", true).await?,
        Vec::<String>::new()
    );
    let mut listed: Vec<String> = groups
        .list(None, Some("user-1"))
        .await?
        .into_iter()
        .map(|g| g.id)
        .collect();
    listed.sort();
    assert_eq!(listed, vec!["leaf", "mid", "top"]);
    Ok(())
}

/// A group cannot be nested under itself or its own descendants.
pub async fn group_nesting_refuses_cycles(store: &Store) -> Result<()> {
    let groups = workspace(store)?.groups();
    groups.create(group("a", None, 0)).await?;
    groups.create(group("b", Some("a"), 1)).await?;
    for target in ["a", "b"] {
        assert_kind!(
            groups
                .update(
                    "a",
                    GroupPatch {
                        parent_group_id: Some(Some(target.into())),
                        ..GroupPatch::default()
                    }
                )
                .await,
            InvalidInput
        );
    }
    assert_eq!(groups.get("a").await?.parent_group_id, None);
    Ok(())
}

/// Deleting a group moves its children up to its parent and drops its members and the grants
/// given to it.
pub async fn deleting_a_group_promotes_children_and_drops_members(store: &Store) -> Result<()> {
    users(store, 3).await?;
    let ws = workspace(store)?;
    let groups = ws.groups();
    groups.create(group("top", None, 0)).await?;
    groups.create(group("mid", Some("top"), 1)).await?;
    groups.create(group("leaf", Some("mid"), 2)).await?;
    groups.add_users("mid", &["user-1".into()]).await?;
    ws.grants()
        .grant("knowledge", "k1", &Grant::group("mid", Permission::Read))
        .await?;
    groups.delete("mid").await?;
    assert_kind!(groups.get("mid").await, NotFound);
    assert_eq!(
        groups.get("leaf").await?.parent_group_id.as_deref(),
        Some("top")
    );
    assert!(groups.group_ids_of("user-1", true).await?.is_empty());
    assert!(ws.grants().of("knowledge", "k1").await?.is_empty());
    Ok(())
}

/// Grants are idempotent, replaced as a set, and revoked one by one.
pub async fn grants_are_a_set_per_resource(store: &Store) -> Result<()> {
    let grants = workspace(store)?.grants();
    let first = grants
        .grant("note", "n1", &Grant::user("user-2", Permission::Write))
        .await?;
    let again = grants
        .grant("note", "n1", &Grant::user("user-2", Permission::Write))
        .await?;
    assert_eq!(first, again);
    let set = grants
        .set(
            "note",
            "n1",
            &[
                Grant::public_read(),
                Grant::group("g1", Permission::Read),
                Grant::public_read(),
            ],
        )
        .await?;
    assert_eq!(set.len(), 2);
    let principals: Vec<(String, String, String)> = set
        .iter()
        .map(|g| {
            (
                g.principal_type.clone(),
                g.principal_id.clone(),
                g.permission.clone(),
            )
        })
        .collect();
    assert!(principals.contains(&("user".into(), "*".into(), "read".into())));
    assert!(principals.contains(&("group".into(), "g1".into(), "read".into())));
    assert!(grants.revoke("note", "n1", &Grant::public_read()).await?);
    assert!(!grants.revoke("note", "n1", &Grant::public_read()).await?);
    assert_eq!(grants.of("note", "n1").await?.len(), 1);
    assert!(grants.of("note", "n2").await?.is_empty());
    Ok(())
}

/// Access is a grant to the user, to everyone, or to one of the user's groups (inherited
/// included), for the permission asked; read does not imply write.
pub async fn access_follows_user_group_and_public_grants(store: &Store) -> Result<()> {
    users(store, 3).await?;
    let ws = workspace(store)?;
    let grants = ws.grants();
    let groups = ws.groups();
    groups.create(group("top", None, 0)).await?;
    groups.create(group("leaf", Some("top"), 1)).await?;
    groups.add_users("leaf", &["user-3".into()]).await?;
    grants
        .set(
            "prompt",
            "p1",
            &[
                Grant::user("user-1", Permission::Read),
                Grant::group("top", Permission::Write),
            ],
        )
        .await?;
    grants.set("prompt", "p2", &[Grant::public_read()]).await?;
    let check = |u: &'static str, id: &'static str, p: Permission| {
        let grants = grants.clone();
        async move { grants.has_access(u, "prompt", id, p).await }
    };
    assert!(check("user-1", "p1", Permission::Read).await?);
    assert!(!check("user-1", "p1", Permission::Write).await?);
    assert!(check("user-3", "p1", Permission::Write).await?);
    assert!(!check("user-3", "p1", Permission::Read).await?);
    assert!(!check("user-2", "p1", Permission::Read).await?);
    assert!(check("user-2", "p2", Permission::Read).await?);
    assert!(!check("user-2", "p2", Permission::Write).await?);
    assert!(
        !grants
            .has_access("user-1", "model", "p1", Permission::Read)
            .await?
    );
    assert_eq!(
        grants
            .granted_ids("user-3", "prompt", Permission::Write)
            .await?,
        vec!["p1"]
    );
    assert_eq!(
        grants
            .granted_ids("user-1", "prompt", Permission::Read)
            .await?,
        vec!["p1", "p2"]
    );
    Ok(())
}

/// Bad grants are refused with `InvalidInput` and change nothing.
pub async fn invalid_grants_are_refused(store: &Store) -> Result<()> {
    let grants = workspace(store)?.grants();
    grants.set("note", "n1", &[Grant::public_read()]).await?;
    assert_kind!(
        grants
            .set("note", "n1", &[Grant::user("", Permission::Read)])
            .await,
        InvalidInput
    );
    assert_kind!(
        grants.grant("", "n1", &Grant::public_read()).await,
        InvalidInput
    );
    assert_eq!(grants.of("note", "n1").await?.len(), 1);
    Ok(())
}
