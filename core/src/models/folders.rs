//! Folders (`folder`): a user's folders, nested by `parent_id`; chats point at them with
//! `chat.folder_id`. Sibling names are unique per user ignoring ASCII case (Open WebUI's
//! router refuses a second "Work" next to "work"). Deleting a folder deletes its sub-folders
//! at any depth and, as Open WebUI's `DELETE /folders/{id}` does with its default
//! `delete_contents=true`, the chats in them, internal ones included ([`FolderChats::Delete`]);
//! with [`FolderChats::Detach`] the chats stay, out of any folder (`delete_contents=false`).

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::access::AccessGrants;
use super::record::{self, Record, Records, stamps};
use crate::rows::tables::FOLDER;
use crate::rows::{Cond, Dir, RowStore, Table};
use crate::{ChatPatch, ChatQuery, ChatRepo, Error, FolderFilter, PageRequest, Result};

/// A folder (`folder` row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Folder {
    /// Id (uuid4).
    pub id: String,
    /// The enclosing folder, if nested.
    pub parent_id: Option<String>,
    /// Owner.
    pub user_id: String,
    /// Name.
    pub name: String,
    /// Legacy item list.
    pub items: Option<Value>,
    /// Metadata (`{icon}`), merged on update.
    pub meta: Option<Value>,
    /// Data (`share_mode`, files, system prompt), merged on update.
    pub data: Option<Value>,
    /// Whether the sidebar shows it open.
    pub is_expanded: bool,
    /// Created (epoch seconds).
    pub created_at: i64,
    /// Updated (epoch seconds).
    pub updated_at: i64,
}

impl Record for Folder {
    const TABLE: &'static Table = &FOLDER;
    const ENTITY: &'static str = "folder";
    fn id(&self) -> &str {
        &self.id
    }
}

/// A folder to create.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewFolder {
    /// Id to keep; a uuid4 when `None`.
    pub id: Option<String>,
    /// Owner.
    pub user_id: String,
    /// Enclosing folder (the user's, must exist).
    pub parent_id: Option<String>,
    /// Name (not empty, unique among its siblings ignoring ASCII case).
    pub name: String,
    /// Legacy items.
    pub items: Option<Value>,
    /// Metadata object.
    pub meta: Option<Value>,
    /// Data object.
    pub data: Option<Value>,
    /// Open in the sidebar.
    pub is_expanded: bool,
    /// Created; now when `None`.
    pub created_at: Option<i64>,
    /// Updated; `created_at` when `None`.
    pub updated_at: Option<i64>,
}

impl NewFolder {
    /// A top-level folder of `user_id` called `name`.
    pub fn new(user_id: impl Into<String>, name: impl Into<String>) -> Self {
        NewFolder {
            user_id: user_id.into(),
            name: name.into(),
            ..NewFolder::default()
        }
    }

    /// The same folder inside `parent_id`.
    pub fn inside(mut self, parent_id: impl Into<String>) -> Self {
        self.parent_id = Some(parent_id.into());
        self
    }
}

/// Changes to a folder; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FolderPatch {
    /// New name (unique among its siblings ignoring ASCII case).
    pub name: Option<String>,
    /// Keys merged into `meta`.
    pub meta: Option<Map<String, Value>>,
    /// Keys merged into `data`.
    pub data: Option<Map<String, Value>>,
    /// Open in the sidebar.
    pub is_expanded: Option<bool>,
    /// New parent (`Some(None)`: top level). A parent inside the folder's own subtree is
    /// refused.
    pub parent_id: Option<Option<String>>,
}

/// What deleting a folder does with the chats in it and its sub-folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum FolderChats {
    /// Deletes them (Open WebUI's default).
    #[default]
    Delete,
    /// Keeps them, out of any folder.
    Detach,
}

/// Folders. See the [module docs](self).
#[derive(Clone)]
pub struct Folders {
    folders: Records<Folder>,
    chats: Arc<dyn ChatRepo>,
}

impl Folders {
    pub(crate) fn new(rows: Arc<dyn RowStore>, chats: Arc<dyn ChatRepo>) -> Self {
        Folders {
            folders: Records::new(rows),
            chats,
        }
    }

    /// The folder records (generic reads: scan for export, custom filters).
    pub fn records(&self) -> &Records<Folder> {
        &self.folders
    }

    /// Creates a folder. `NotFound` when the parent is not one of the user's folders,
    /// `Conflict` when a sibling has the same name (ASCII case ignored) or the id is taken.
    pub async fn create(&self, new: NewFolder) -> Result<Folder> {
        crate::validate::id("folder user id", &new.user_id)?;
        record::name("folder name", &new.name)?;
        record::object("folder meta", &new.meta)?;
        record::object("folder data", &new.data)?;
        let id = record::new_id("folder id", new.id)?;
        if let Some(parent) = &new.parent_id {
            self.get(&new.user_id, parent).await?;
        }
        self.check_name_free(&new.user_id, new.parent_id.as_deref(), &new.name, None)
            .await?;
        let (created, updated) = stamps(&FOLDER, new.created_at, new.updated_at)?;
        self.folders
            .insert(Folder {
                id,
                parent_id: new.parent_id,
                user_id: new.user_id,
                name: new.name,
                items: new.items,
                meta: new.meta,
                data: new.data,
                is_expanded: new.is_expanded,
                created_at: created,
                updated_at: updated,
            })
            .await
    }

    /// The user's folder with this id.
    pub async fn get(&self, user_id: &str, id: &str) -> Result<Folder> {
        self.folders
            .find(vec![
                Cond::Eq("id", id.into()),
                Cond::Eq("user_id", user_id.into()),
            ])
            .await?
            .ok_or_else(|| Error::not_found("folder", id))
    }

    /// Every folder of the user, newest update first.
    pub async fn list(&self, user_id: &str) -> Result<Vec<Folder>> {
        self.folders
            .list(
                vec![Cond::Eq("user_id", user_id.into())],
                &[("updated_at", Dir::Desc)],
            )
            .await
    }

    /// The user's folders directly inside `parent_id` (top-level ones for `None`), newest
    /// update first.
    pub async fn children(&self, user_id: &str, parent_id: Option<&str>) -> Result<Vec<Folder>> {
        self.folders
            .list(
                vec![
                    Cond::Eq("user_id", user_id.into()),
                    Cond::Eq("parent_id", parent_id.map_or(Value::Null, Value::from)),
                ],
                &[("updated_at", Dir::Desc)],
            )
            .await
    }

    /// The user's folder inside `parent_id` whose name equals `name` ignoring ASCII case.
    pub async fn by_name(
        &self,
        user_id: &str,
        parent_id: Option<&str>,
        name: &str,
    ) -> Result<Option<Folder>> {
        Ok(self
            .children(user_id, parent_id)
            .await?
            .into_iter()
            .find(|f| f.name.eq_ignore_ascii_case(name)))
    }

    /// The folder's id and those of every folder inside it at any depth (cycle-safe).
    pub async fn subtree_ids(&self, user_id: &str, id: &str) -> Result<Vec<String>> {
        self.get(user_id, id).await?;
        let mut seen = vec![id.to_owned()];
        let mut known: BTreeSet<String> = BTreeSet::from([id.to_owned()]);
        let mut frontier = vec![id.to_owned()];
        while !frontier.is_empty() {
            let children = self
                .folders
                .list(
                    vec![
                        Cond::Eq("user_id", user_id.into()),
                        Cond::In("parent_id", frontier.drain(..).map(Value::from).collect()),
                    ],
                    &[],
                )
                .await?;
            for child in children {
                if known.insert(child.id.clone()) {
                    seen.push(child.id.clone());
                    frontier.push(child.id);
                }
            }
        }
        Ok(seen)
    }

    /// Changes a folder: renames (refused on a sibling name clash), merges `meta`/`data`,
    /// moves (refused into its own subtree), sets `is_expanded`; `updated_at` becomes now.
    pub async fn update(&self, user_id: &str, id: &str, patch: FolderPatch) -> Result<Folder> {
        let mut folder = self.get(user_id, id).await?;
        if let Some(name) = &patch.name {
            record::name("folder name", name)?;
        }
        for (what, value) in [("folder meta", &patch.meta), ("folder data", &patch.data)] {
            if let Some(map) = value {
                crate::validate::json_map(what, map)?;
            }
        }
        if let Some(Some(parent)) = &patch.parent_id {
            self.get(user_id, parent).await?;
            if self.subtree_ids(user_id, id).await?.contains(parent) {
                return Err(Error::invalid(format!(
                    "folder {parent:?} is inside folder {id:?} (or is it): a folder cannot move \
                     into its own subtree"
                )));
            }
        }
        let parent = patch
            .parent_id
            .clone()
            .unwrap_or_else(|| folder.parent_id.clone());
        let name = patch.name.clone().unwrap_or_else(|| folder.name.clone());
        if patch.name.is_some() || patch.parent_id.is_some() {
            self.check_name_free(user_id, parent.as_deref(), &name, Some(id))
                .await?;
        }
        folder.name = name;
        folder.parent_id = parent;
        if let Some(meta) = patch.meta {
            folder.meta = Some(record::merge(folder.meta.take(), meta));
        }
        if let Some(data) = patch.data {
            folder.data = Some(record::merge(folder.data.take(), data));
        }
        if let Some(expanded) = patch.is_expanded {
            folder.is_expanded = expanded;
        }
        folder.updated_at = FOLDER.time_unit.now().max(folder.updated_at);
        self.folders.replace(folder).await
    }

    /// Deletes a folder and every folder inside it, with their access grants; the chats in
    /// them, internal ones included (Open WebUI deletes by `folder_id` alone), are deleted or
    /// detached as `chats` says. Returns the deleted folder ids (the folder first). Chats go
    /// first, so a failure part way leaves folders whose deletion can be retried.
    pub async fn delete(&self, user_id: &str, id: &str, chats: FolderChats) -> Result<Vec<String>> {
        let ids = self.subtree_ids(user_id, id).await?;
        for folder_id in &ids {
            loop {
                let page = self
                    .chats
                    .list(
                        &ChatQuery::for_user(user_id)
                            .archived(None)
                            .internal(true)
                            .folder(FolderFilter::In(folder_id.clone()))
                            .page(PageRequest::first(100)),
                    )
                    .await?;
                if page.items.is_empty() {
                    break;
                }
                for chat in page.items {
                    match chats {
                        FolderChats::Delete => self.chats.delete(&chat.id).await?,
                        FolderChats::Detach => {
                            self.chats
                                .update(
                                    &chat.id,
                                    ChatPatch {
                                        folder_id: Some(None),
                                        updated_at: Some(chat.updated_at),
                                        ..ChatPatch::default()
                                    },
                                )
                                .await?;
                        }
                    }
                }
            }
        }
        let id_values: Vec<Value> = ids.iter().map(|i| Value::from(i.as_str())).collect();
        self.folders
            .write(vec![
                AccessGrants::delete_ops("folder", &ids),
                Records::<Folder>::delete_op(vec![
                    Cond::Eq("user_id", user_id.into()),
                    Cond::In("id", id_values),
                ]),
            ])
            .await?;
        Ok(ids)
    }

    async fn check_name_free(
        &self,
        user_id: &str,
        parent_id: Option<&str>,
        name: &str,
        except: Option<&str>,
    ) -> Result<()> {
        if let Some(other) = self.by_name(user_id, parent_id, name).await?
            && Some(other.id.as_str()) != except
        {
            return Err(Error::conflict(
                "folder",
                format!(
                    "a folder named {:?} already exists there; pick another name",
                    other.name
                ),
            ));
        }
        Ok(())
    }
}
