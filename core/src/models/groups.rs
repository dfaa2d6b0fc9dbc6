//! Groups and their members (`group`, `group_member`). Groups nest by `parent_group_id`; a
//! member of a group is also an inherited member of every ancestor group, as Open WebUI
//! resolves it with its recursive queries.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::record::{self, Record, Records, stamps};
use crate::rows::tables::{ACCESS_GRANT, GROUP, GROUP_MEMBER};
use crate::rows::{Cond, Dir, RowOp, Table};
use crate::{Error, Result};

/// A group of users (`group` row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// Id (uuid4).
    pub id: String,
    /// Who created it.
    pub user_id: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Settings (`config.default_models`, `config.share`, ...).
    pub data: Option<Value>,
    /// Free metadata.
    pub meta: Option<Value>,
    /// Workspace permissions of the members.
    pub permissions: Option<Value>,
    /// Created (epoch seconds).
    pub created_at: Option<i64>,
    /// Updated (epoch seconds).
    pub updated_at: Option<i64>,
    /// The enclosing group, if nested.
    pub parent_group_id: Option<String>,
}

impl Record for Group {
    const TABLE: &'static Table = &GROUP;
    const ENTITY: &'static str = "group";
    fn id(&self) -> &str {
        &self.id
    }
}

/// One user's direct membership of one group (`group_member` row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMember {
    /// Id (uuid4).
    pub id: String,
    /// The group.
    pub group_id: String,
    /// The member.
    pub user_id: String,
    /// Created (epoch seconds).
    pub created_at: Option<i64>,
    /// Updated (epoch seconds).
    pub updated_at: Option<i64>,
}

impl Record for GroupMember {
    const TABLE: &'static Table = &GROUP_MEMBER;
    const ENTITY: &'static str = "group member";
    fn id(&self) -> &str {
        &self.id
    }
}

/// A group to create.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewGroup {
    /// Id to keep; a uuid4 when `None`.
    pub id: Option<String>,
    /// Who creates it.
    pub user_id: Option<String>,
    /// Name (required, not empty).
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Settings object.
    pub data: Option<Value>,
    /// Metadata object.
    pub meta: Option<Value>,
    /// Permissions object.
    pub permissions: Option<Value>,
    /// Enclosing group (must exist).
    pub parent_group_id: Option<String>,
    /// Created; now when `None`.
    pub created_at: Option<i64>,
    /// Updated; `created_at` when `None`.
    pub updated_at: Option<i64>,
}

/// Changes to a group; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupPatch {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New settings (replaces them).
    pub data: Option<Value>,
    /// New metadata (replaces it).
    pub meta: Option<Value>,
    /// New permissions (replaces them).
    pub permissions: Option<Value>,
    /// New parent (`Some(None)` makes it top-level); a parent inside the group's own subtree
    /// is refused.
    pub parent_group_id: Option<Option<String>>,
}

/// Groups and memberships. See the [module docs](self).
#[derive(Clone)]
pub struct Groups {
    groups: Records<Group>,
    members: Records<GroupMember>,
}

impl Groups {
    pub(crate) fn new(rows: std::sync::Arc<dyn crate::rows::RowStore>) -> Self {
        Groups {
            groups: Records::new(rows.clone()),
            members: Records::new(rows),
        }
    }

    /// The group records (generic reads: scan for export, custom filters).
    pub fn records(&self) -> &Records<Group> {
        &self.groups
    }

    /// The membership records.
    pub fn member_records(&self) -> &Records<GroupMember> {
        &self.members
    }

    /// Creates a group; `NotFound` when the parent does not exist, `Conflict` when the id is
    /// taken.
    pub async fn create(&self, new: NewGroup) -> Result<Group> {
        record::name("group name", &new.name)?;
        for (what, v) in [
            ("group data", &new.data),
            ("group meta", &new.meta),
            ("group permissions", &new.permissions),
        ] {
            record::object(what, v)?;
        }
        let id = record::new_id("group id", new.id)?;
        if let Some(parent) = &new.parent_group_id {
            self.groups.get(parent).await?;
        }
        let (created, updated) = stamps(&GROUP, new.created_at, new.updated_at)?;
        self.groups
            .insert(Group {
                id,
                user_id: new.user_id,
                name: Some(new.name),
                description: new.description,
                data: new.data,
                meta: new.meta,
                permissions: new.permissions,
                created_at: Some(created),
                updated_at: Some(updated),
                parent_group_id: new.parent_group_id,
            })
            .await
    }

    /// The group with this id.
    pub async fn get(&self, id: &str) -> Result<Group> {
        self.groups.get(id).await
    }

    /// Groups, newest update first, optionally those whose name contains `text` (ASCII case
    /// ignored) and those `member_id` belongs to (directly or inherited): Open WebUI's group
    /// list filters.
    pub async fn list(&self, text: Option<&str>, member_id: Option<&str>) -> Result<Vec<Group>> {
        let mut filter = Vec::new();
        if let Some(text) = text {
            filter.push(Cond::ContainsCi("name", text.to_owned()));
        }
        if let Some(member) = member_id {
            let ids = self.group_ids_of(member, true).await?;
            filter.push(Cond::In("id", ids.into_iter().map(Value::from).collect()));
        }
        self.groups.list(filter, &[("updated_at", Dir::Desc)]).await
    }

    /// Changes a group. Moving it under one of its own descendants (or itself) is refused.
    pub async fn update(&self, id: &str, patch: GroupPatch) -> Result<Group> {
        let mut group = self.groups.get(id).await?;
        if let Some(name) = patch.name {
            record::name("group name", &name)?;
            group.name = Some(name);
        }
        if let Some(description) = patch.description {
            group.description = Some(description);
        }
        for (what, value, slot) in [
            ("group data", patch.data, &mut group.data),
            ("group meta", patch.meta, &mut group.meta),
            (
                "group permissions",
                patch.permissions,
                &mut group.permissions,
            ),
        ] {
            if let Some(value) = value {
                record::object(what, &Some(value.clone()))?;
                *slot = Some(value);
            }
        }
        if let Some(parent) = patch.parent_group_id {
            if let Some(parent) = &parent {
                self.groups.get(parent).await?;
                if self.descendant_ids(id).await?.contains(parent) {
                    return Err(Error::invalid(format!(
                        "group {parent:?} is inside group {id:?} (or is it): a group cannot be \
                         nested under its own subtree"
                    )));
                }
            }
            group.parent_group_id = parent;
        }
        group.updated_at = Some(GROUP.time_unit.now());
        self.groups.replace(group).await
    }

    /// Deletes a group as Open WebUI does: its child groups move up to its parent, its
    /// memberships and the access grants given to it go with it.
    pub async fn delete(&self, id: &str) -> Result<()> {
        let group = self.groups.get(id).await?;
        let now = GROUP.time_unit.now();
        let ops = vec![
            Records::<Group>::update_op(
                vec![Cond::Eq("parent_group_id", id.into())],
                record::set([
                    ("parent_group_id", group.parent_group_id.clone().into()),
                    ("updated_at", now.into()),
                ]),
            ),
            Records::<GroupMember>::delete_op(vec![Cond::Eq("group_id", id.into())]),
            RowOp::Delete {
                table: &ACCESS_GRANT,
                filter: vec![
                    Cond::Eq("principal_type", "group".into()),
                    Cond::Eq("principal_id", id.into()),
                ],
            },
            Records::<Group>::delete_op(vec![Cond::Eq("id", id.into())]),
        ];
        self.groups.write(ops).await?;
        Ok(())
    }

    /// Adds users to a group (those already in it stay as they are); returns the group's
    /// direct member ids after.
    pub async fn add_users(&self, group_id: &str, user_ids: &[String]) -> Result<Vec<String>> {
        self.groups.get(group_id).await?;
        for user in user_ids {
            crate::validate::id("user id", user)?;
        }
        let present: BTreeSet<String> = self
            .member_ids(group_id, false)
            .await?
            .into_iter()
            .collect();
        let now = GROUP_MEMBER.time_unit.now();
        let mut ops = Vec::new();
        let mut added = BTreeSet::new();
        for user in user_ids {
            if present.contains(user) || !added.insert(user.clone()) {
                continue;
            }
            ops.push(Records::insert_op(&GroupMember {
                id: crate::validate::new_id(),
                group_id: group_id.to_owned(),
                user_id: user.clone(),
                created_at: Some(now),
                updated_at: Some(now),
            })?);
        }
        if !ops.is_empty() {
            ops.push(touch(group_id, now));
            self.groups.write(ops).await?;
        }
        self.member_ids(group_id, false).await
    }

    /// Removes users from a group; returns the group's direct member ids after.
    pub async fn remove_users(&self, group_id: &str, user_ids: &[String]) -> Result<Vec<String>> {
        self.groups.get(group_id).await?;
        if !user_ids.is_empty() {
            let now = GROUP_MEMBER.time_unit.now();
            self.groups
                .write(vec![
                    Records::<GroupMember>::delete_op(vec![
                        Cond::Eq("group_id", group_id.into()),
                        Cond::In(
                            "user_id",
                            user_ids.iter().map(|u| Value::from(u.as_str())).collect(),
                        ),
                    ]),
                    touch(group_id, now),
                ])
                .await?;
        }
        self.member_ids(group_id, false).await
    }

    /// The group's member ids, sorted: direct members, or with `inherited` also the members
    /// of every group nested inside it.
    pub async fn member_ids(&self, group_id: &str, inherited: bool) -> Result<Vec<String>> {
        let groups: Vec<String> = if inherited {
            self.descendant_ids(group_id).await?.into_iter().collect()
        } else {
            vec![group_id.to_owned()]
        };
        let members = self
            .members
            .list(
                vec![Cond::In(
                    "group_id",
                    groups.into_iter().map(Value::from).collect(),
                )],
                &[],
            )
            .await?;
        let ids: BTreeSet<String> = members.into_iter().map(|m| m.user_id).collect();
        Ok(ids.into_iter().collect())
    }

    /// The ids of the groups `user_id` is in, sorted: directly, or with `inherited` also every
    /// ancestor of those groups (what access checks use).
    pub async fn group_ids_of(&self, user_id: &str, inherited: bool) -> Result<Vec<String>> {
        let direct: BTreeSet<String> = self
            .members
            .list(vec![Cond::Eq("user_id", user_id.into())], &[])
            .await?
            .into_iter()
            .map(|m| m.group_id)
            .collect();
        if !inherited {
            return Ok(direct.into_iter().collect());
        }
        let mut seen = direct.clone();
        let mut frontier: Vec<String> = direct.into_iter().collect();
        while !frontier.is_empty() {
            let parents = self
                .groups
                .list(
                    vec![
                        Cond::In("id", frontier.drain(..).map(Value::from).collect()),
                        Cond::NotNull("parent_group_id"),
                    ],
                    &[],
                )
                .await?;
            for parent in parents.into_iter().filter_map(|g| g.parent_group_id) {
                if seen.insert(parent.clone()) {
                    frontier.push(parent);
                }
            }
        }
        Ok(seen.into_iter().collect())
    }

    /// The groups `user_id` is in (see [`Groups::group_ids_of`]), newest update first.
    pub async fn groups_of(&self, user_id: &str, inherited: bool) -> Result<Vec<Group>> {
        let ids = self.group_ids_of(user_id, inherited).await?;
        self.groups
            .list(
                vec![Cond::In("id", ids.into_iter().map(Value::from).collect())],
                &[("updated_at", Dir::Desc)],
            )
            .await
    }

    /// The group and every group nested inside it, at any depth (cycle-safe).
    pub async fn descendant_ids(&self, group_id: &str) -> Result<BTreeSet<String>> {
        let mut seen = BTreeSet::from([group_id.to_owned()]);
        let mut frontier = vec![group_id.to_owned()];
        while !frontier.is_empty() {
            let children = self
                .groups
                .list(
                    vec![Cond::In(
                        "parent_group_id",
                        frontier.drain(..).map(Value::from).collect(),
                    )],
                    &[],
                )
                .await?;
            for child in children {
                if seen.insert(child.id.clone()) {
                    frontier.push(child.id);
                }
            }
        }
        Ok(seen)
    }
}

fn touch(group_id: &str, now: i64) -> RowOp {
    Records::<Group>::update_op(
        vec![Cond::Eq("id", group_id.into())],
        record::set([("updated_at", now.into())]),
    )
}
