//! Access grants (`access_grant`), the sharing machinery of knowledge, prompts, models, notes,
//! channels, folders and shared chats, written once: who may read or write a resource (a user,
//! a group, or everyone: user `*`), and the list-by-access every shared model's search uses —
//! the owner, or a grant to the user, to one of the user's groups (inherited membership
//! included), or to everyone.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::groups::Groups;
use super::record::{self, Record, Records};
use crate::rows::tables::ACCESS_GRANT;
use crate::rows::{Cond, Dir, RowOp, RowStore, Table};
use crate::{Error, Page, PageRequest, Result};

/// The principal id that means "every user" (with principal type `user`).
pub const EVERYONE: &str = "*";

/// One grant (`access_grant` row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessGrant {
    /// Id (uuid4).
    pub id: String,
    /// `knowledge`, `prompt`, `model`, `note`, `channel`, `folder`, `shared_chat`, `file`, `tool`.
    pub resource_type: String,
    /// The resource's id.
    pub resource_id: String,
    /// `user`, `group` or `anyone` (no-auth access, never counted by [`AccessGrants`] checks).
    pub principal_type: String,
    /// A user id, a group id, or `*`.
    pub principal_id: String,
    /// `read` or `write`.
    pub permission: String,
    /// Created (epoch seconds).
    pub created_at: i64,
}

impl Record for AccessGrant {
    const TABLE: &'static Table = &ACCESS_GRANT;
    const ENTITY: &'static str = "access grant";
    fn id(&self) -> &str {
        &self.id
    }
}

/// Read or write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// May read.
    #[default]
    Read,
    /// May change.
    Write,
}

impl Permission {
    /// Open WebUI's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Write => "write",
        }
    }
}

/// Who a grant is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Principal {
    /// One user.
    User(String),
    /// Every member of a group (and of the groups nested inside it).
    Group(String),
    /// Every user (`user` / `*`).
    Everyone,
}

/// A grant to give a resource: a principal and a permission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Who.
    pub principal: Principal,
    /// What they may do.
    pub permission: Permission,
}

impl Grant {
    /// Read access for everyone (a public resource).
    pub fn public_read() -> Self {
        Grant {
            principal: Principal::Everyone,
            permission: Permission::Read,
        }
    }

    /// `permission` for one user.
    pub fn user(id: impl Into<String>, permission: Permission) -> Self {
        Grant {
            principal: Principal::User(id.into()),
            permission,
        }
    }

    /// `permission` for a group.
    pub fn group(id: impl Into<String>, permission: Permission) -> Self {
        Grant {
            principal: Principal::Group(id.into()),
            permission,
        }
    }

    fn columns(&self) -> Result<(&'static str, String)> {
        Ok(match &self.principal {
            Principal::User(id) => {
                crate::validate::id("grant user id", id)?;
                ("user", id.clone())
            }
            Principal::Group(id) => {
                crate::validate::id("grant group id", id)?;
                ("group", id.clone())
            }
            Principal::Everyone => ("user", EVERYONE.to_owned()),
        })
    }
}

/// Who is asking, for lists and checks by access.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Viewer {
    /// No access filter: every record (an administrator's view).
    #[default]
    Admin,
    /// A user: what the user owns or was granted.
    User(String),
}

/// Which records of a search, relative to the viewer (Open WebUI's `view_option`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum View {
    /// Everything the viewer may see.
    #[default]
    All,
    /// Only what the viewer created.
    Created,
    /// Only what others created and shared with the viewer.
    Shared,
}

/// The sort keys of the shared searches (Open WebUI's `order_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SortBy {
    /// The name (a note's title).
    Name,
    /// Creation time.
    CreatedAt,
    /// Last update (the default, newest first).
    #[default]
    UpdatedAt,
}

/// A search of a shared model (knowledge, prompts, models, notes): Open WebUI's list
/// endpoints' filters, sort and offset pagination. Every order ends with the id ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    /// Who asks: the access filter.
    pub viewer: Viewer,
    /// The permission the viewer needs (read unless set).
    pub permission: Permission,
    /// Own, shared or both.
    pub view: View,
    /// Text the name (or the model's other text columns) must contain, ASCII case ignored.
    pub text: Option<String>,
    /// A tag the record must carry (case ignored): a prompt's `tags`, a model's `meta.tags`.
    /// Tags live in JSON, so a tagged search filters in process after the access filter.
    pub tag: Option<String>,
    /// Sort key.
    pub sort: SortBy,
    /// Sort direction (descending unless set).
    pub dir: Dir,
    /// Which page.
    pub page: PageRequest,
}

impl Default for Search {
    fn default() -> Self {
        Search {
            viewer: Viewer::Admin,
            permission: Permission::Read,
            view: View::All,
            text: None,
            tag: None,
            sort: SortBy::UpdatedAt,
            dir: Dir::Desc,
            page: PageRequest::default(),
        }
    }
}

impl Search {
    /// Everything `user_id` may read, newest update first.
    pub fn for_user(user_id: impl Into<String>) -> Self {
        Search {
            viewer: Viewer::User(user_id.into()),
            ..Search::default()
        }
    }

    /// The same search needing `permission`.
    pub fn permission(mut self, permission: Permission) -> Self {
        self.permission = permission;
        self
    }

    /// The same search limited to `view`.
    pub fn view(mut self, view: View) -> Self {
        self.view = view;
        self
    }

    /// The same search for records containing `text`.
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    /// The same search for records tagged `tag`.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    /// The same search sorted by `sort` in `dir`.
    pub fn sort(mut self, sort: SortBy, dir: Dir) -> Self {
        self.sort = sort;
        self.dir = dir;
        self
    }

    /// The same search, one page.
    pub fn page(mut self, page: PageRequest) -> Self {
        self.page = page;
        self
    }
}

/// A record that can be shared through access grants and searched with a [`Search`].
pub trait Shared: Record {
    /// Its `access_grant.resource_type`.
    const RESOURCE: &'static str;
    /// The column naming its owner.
    const OWNER: &'static str = "user_id";
    /// The column [`SortBy::Name`] sorts by.
    const NAME: &'static str = "name";
    /// The text columns a search's `text` looks in.
    const TEXT: &'static [&'static str];

    /// The record's tags (none unless the model has tags).
    fn tags(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Access grants, and the access filter of every shared model.
#[derive(Clone)]
pub struct AccessGrants {
    grants: Records<AccessGrant>,
    groups: Groups,
}

impl AccessGrants {
    pub(crate) fn new(rows: Arc<dyn RowStore>) -> Self {
        AccessGrants {
            grants: Records::new(rows.clone()),
            groups: Groups::new(rows),
        }
    }

    /// The grant records (generic reads: scan for export, custom filters).
    pub fn records(&self) -> &Records<AccessGrant> {
        &self.grants
    }

    /// The grants of one resource, oldest first.
    pub async fn of(&self, resource_type: &str, resource_id: &str) -> Result<Vec<AccessGrant>> {
        self.grants
            .list(
                resource_filter(resource_type, resource_id),
                &[("created_at", Dir::Asc)],
            )
            .await
    }

    /// The ops replacing every grant of a resource by `grants` (duplicates dropped): what a
    /// model's create or update puts in its atomic write.
    pub fn replace_ops(
        resource_type: &str,
        resource_id: &str,
        grants: &[Grant],
        now: i64,
    ) -> Result<Vec<RowOp>> {
        let mut ops = vec![Records::<AccessGrant>::delete_op(resource_filter(
            resource_type,
            resource_id,
        ))];
        let mut seen = BTreeSet::new();
        for grant in grants {
            let (principal_type, principal_id) = grant.columns()?;
            if !seen.insert((principal_type, principal_id.clone(), grant.permission)) {
                continue;
            }
            ops.push(Records::insert_op(&AccessGrant {
                id: crate::validate::new_id(),
                resource_type: resource_type.to_owned(),
                resource_id: resource_id.to_owned(),
                principal_type: principal_type.to_owned(),
                principal_id,
                permission: grant.permission.as_str().to_owned(),
                created_at: now,
            })?);
        }
        Ok(ops)
    }

    /// The op deleting every grant of a resource.
    pub fn delete_ops(resource_type: &str, resource_ids: &[String]) -> RowOp {
        Records::<AccessGrant>::delete_op(vec![
            Cond::Eq("resource_type", resource_type.into()),
            Cond::In(
                "resource_id",
                resource_ids
                    .iter()
                    .map(|i| Value::from(i.as_str()))
                    .collect(),
            ),
        ])
    }

    /// Replaces every grant of a resource by `grants`; returns them.
    pub async fn set(
        &self,
        resource_type: &str,
        resource_id: &str,
        grants: &[Grant],
    ) -> Result<Vec<AccessGrant>> {
        check_resource(resource_type, resource_id)?;
        let ops = Self::replace_ops(
            resource_type,
            resource_id,
            grants,
            ACCESS_GRANT.time_unit.now(),
        )?;
        self.grants.write(ops).await?;
        self.of(resource_type, resource_id).await
    }

    /// Adds one grant (idempotent: an existing equal grant is returned as it is).
    pub async fn grant(
        &self,
        resource_type: &str,
        resource_id: &str,
        grant: &Grant,
    ) -> Result<AccessGrant> {
        check_resource(resource_type, resource_id)?;
        let (principal_type, principal_id) = grant.columns()?;
        let mut filter = resource_filter(resource_type, resource_id);
        filter.push(Cond::Eq("principal_type", principal_type.into()));
        filter.push(Cond::Eq("principal_id", principal_id.clone().into()));
        filter.push(Cond::Eq("permission", grant.permission.as_str().into()));
        if let Some(existing) = self.grants.find(filter).await? {
            return Ok(existing);
        }
        self.grants
            .insert(AccessGrant {
                id: crate::validate::new_id(),
                resource_type: resource_type.to_owned(),
                resource_id: resource_id.to_owned(),
                principal_type: principal_type.to_owned(),
                principal_id,
                permission: grant.permission.as_str().to_owned(),
                created_at: ACCESS_GRANT.time_unit.now(),
            })
            .await
    }

    /// Removes one grant; whether there was one.
    pub async fn revoke(
        &self,
        resource_type: &str,
        resource_id: &str,
        grant: &Grant,
    ) -> Result<bool> {
        let (principal_type, principal_id) = grant.columns()?;
        let mut filter = resource_filter(resource_type, resource_id);
        filter.push(Cond::Eq("principal_type", principal_type.into()));
        filter.push(Cond::Eq("principal_id", principal_id.into()));
        filter.push(Cond::Eq("permission", grant.permission.as_str().into()));
        let counts = self
            .grants
            .write(vec![Records::<AccessGrant>::delete_op(filter)])
            .await?;
        Ok(counts.first().copied().unwrap_or(0) > 0)
    }

    /// The conditions on `access_grant` matching grants that reach `user_id`: to everyone, to
    /// the user, or to one of the user's groups (inherited membership included).
    async fn principal_filter(&self, user_id: &str) -> Result<Cond> {
        let groups = self.groups.group_ids_of(user_id, true).await?;
        let mut any = vec![vec![
            Cond::Eq("principal_type", "user".into()),
            Cond::In(
                "principal_id",
                vec![Value::from(EVERYONE), Value::from(user_id)],
            ),
        ]];
        if !groups.is_empty() {
            any.push(vec![
                Cond::Eq("principal_type", "group".into()),
                Cond::In(
                    "principal_id",
                    groups.into_iter().map(Value::from).collect(),
                ),
            ]);
        }
        Ok(Cond::Any(any))
    }

    /// Whether a grant gives `user_id` `permission` on the resource (ownership is the caller's
    /// to check: see [`AccessGrants::can`]).
    pub async fn has_access(
        &self,
        user_id: &str,
        resource_type: &str,
        resource_id: &str,
        permission: Permission,
    ) -> Result<bool> {
        let mut filter = resource_filter(resource_type, resource_id);
        filter.push(Cond::Eq("permission", permission.as_str().into()));
        filter.push(self.principal_filter(user_id).await?);
        Ok(self.grants.count(filter).await? > 0)
    }

    /// Whether `user_id` may do `permission` on `record`: the owner always may; others need a
    /// grant.
    pub async fn can<T: Shared>(
        &self,
        user_id: &str,
        record: &T,
        permission: Permission,
    ) -> Result<bool> {
        let row = record.to_row()?;
        if row.get(T::OWNER).and_then(Value::as_str) == Some(user_id) {
            return Ok(true);
        }
        self.has_access(user_id, T::RESOURCE, record.id(), permission)
            .await
    }

    /// The ids of resources of `resource_type` a grant gives `user_id` `permission` on.
    pub async fn granted_ids(
        &self,
        user_id: &str,
        resource_type: &str,
        permission: Permission,
    ) -> Result<Vec<String>> {
        let filter = vec![
            Cond::Eq("resource_type", resource_type.into()),
            Cond::Eq("permission", permission.as_str().into()),
            self.principal_filter(user_id).await?,
        ];
        let ids: BTreeSet<String> = self
            .grants
            .list(filter, &[])
            .await?
            .into_iter()
            .map(|g| g.resource_id)
            .collect();
        Ok(ids.into_iter().collect())
    }

    /// The condition selecting the records of `T` that `viewer` may `permission`: everything
    /// for an admin, else owned ones or granted ones.
    pub async fn access_filter<T: Shared>(
        &self,
        viewer: &Viewer,
        permission: Permission,
    ) -> Result<Option<Cond>> {
        let Viewer::User(user_id) = viewer else {
            return Ok(None);
        };
        let granted = self.granted_ids(user_id, T::RESOURCE, permission).await?;
        let owned = Cond::Eq(T::OWNER, user_id.as_str().into());
        if granted.is_empty() {
            // Owned records alone: a plain equality a store answers from its owner index
            // (an `OR` with an empty list is still an `OR` to some planners).
            return Ok(Some(owned));
        }
        Ok(Some(Cond::Any(vec![
            vec![owned],
            vec![Cond::In(
                "id",
                granted.into_iter().map(Value::from).collect(),
            )],
        ])))
    }

    /// Runs a [`Search`] over the records of `T`, with `extra` conditions of the model.
    pub async fn search<T: Shared>(
        &self,
        records: &Records<T>,
        search: &Search,
        mut extra: Vec<Cond>,
    ) -> Result<Page<T>> {
        search.page.validate()?;
        if let Some(text) = &search.text {
            crate::validate::text("search text", text)?;
            if !text.is_empty() {
                extra.push(Cond::Any(
                    T::TEXT
                        .iter()
                        .map(|c| vec![Cond::ContainsCi(c, text.clone())])
                        .collect(),
                ));
            }
        }
        match (&search.viewer, search.view) {
            (_, View::All) => {}
            (Viewer::User(user), View::Created) => {
                extra.push(Cond::Eq(T::OWNER, user.as_str().into()))
            }
            (Viewer::User(user), View::Shared) => {
                extra.push(Cond::Ne(T::OWNER, user.as_str().into()))
            }
            (Viewer::Admin, _) => {
                return Err(Error::invalid(
                    "a search of created or shared records needs a viewer: use Viewer::User",
                ));
            }
        }
        if let Some(access) = self
            .access_filter::<T>(&search.viewer, search.permission)
            .await?
        {
            extra.push(access);
        }
        let column = match search.sort {
            SortBy::Name => T::NAME,
            SortBy::CreatedAt => "created_at",
            SortBy::UpdatedAt => "updated_at",
        };
        let Some(tag) = &search.tag else {
            return records
                .page(extra, &[(column, search.dir)], search.page)
                .await;
        };
        crate::validate::text("search tag", tag)?;
        let tag = tag.to_lowercase();
        let tagged: Vec<T> = records
            .list(extra, &[(column, search.dir)])
            .await?
            .into_iter()
            .filter(|r| r.tags().iter().any(|t| t.to_lowercase() == tag))
            .collect();
        Ok(Page {
            total: tagged.len() as u64,
            items: search.page.slice(tagged),
        })
    }

    /// The distinct tags of the records of `T` that `viewer` may read, sorted (Open WebUI's
    /// tag lists of prompts and models).
    pub async fn tags<T: Shared>(
        &self,
        records: &Records<T>,
        viewer: &Viewer,
    ) -> Result<Vec<String>> {
        let filter = self
            .access_filter::<T>(viewer, Permission::Read)
            .await?
            .into_iter()
            .collect();
        let tags: BTreeSet<String> = records
            .list(filter, &[])
            .await?
            .iter()
            .flat_map(Shared::tags)
            .filter(|t| !t.is_empty())
            .collect();
        Ok(tags.into_iter().collect())
    }

    /// The ops deleting every grant given to `user_id` by name (what deleting the user does).
    pub(crate) fn user_principal_ops(user_id: &str) -> RowOp {
        Records::<AccessGrant>::delete_op(vec![
            Cond::Eq("principal_type", "user".into()),
            Cond::Eq("principal_id", user_id.into()),
        ])
    }
}

fn resource_filter(resource_type: &str, resource_id: &str) -> Vec<Cond> {
    vec![
        Cond::Eq("resource_type", resource_type.into()),
        Cond::Eq("resource_id", resource_id.into()),
    ]
}

fn check_resource(resource_type: &str, resource_id: &str) -> Result<()> {
    record::name("grant resource type", resource_type)?;
    record::key("grant resource id", resource_id)
}
