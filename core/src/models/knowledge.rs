//! Knowledge bases (`knowledge`), the files they hold (`knowledge_file`) and their directories
//! (`knowledge_directory`). Knowledge bases are shared through access grants (resource type
//! `knowledge`) and listed with a [`Search`]; a file is in a knowledge base at most once.
//! Deleting a knowledge base deletes its file links, directories and grants (not the files).

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::access::{AccessGrants, Grant, Search, Shared};
use super::record::{self, Record, Records, stamps};
use crate::rows::tables::{KNOWLEDGE, KNOWLEDGE_DIRECTORY, KNOWLEDGE_FILE};
use crate::rows::{Cond, Dir, RowStore, Table};
use crate::{Error, Page, PageRequest, Result};

/// A knowledge base (`knowledge` row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Knowledge {
    /// Id (uuid4).
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Metadata (`source`, ...).
    pub meta: Option<Value>,
    /// Data.
    pub data: Option<Value>,
    /// Created (epoch seconds).
    pub created_at: i64,
    /// Updated (epoch seconds).
    pub updated_at: Option<i64>,
}

impl Record for Knowledge {
    const TABLE: &'static Table = &KNOWLEDGE;
    const ENTITY: &'static str = "knowledge base";
    fn id(&self) -> &str {
        &self.id
    }
}

impl Shared for Knowledge {
    const RESOURCE: &'static str = "knowledge";
    const TEXT: &'static [&'static str] = &["name", "description"];
}

/// A file in a knowledge base (`knowledge_file` row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnowledgeFile {
    /// Id (uuid4).
    pub id: String,
    /// Who added it.
    pub user_id: String,
    /// The knowledge base.
    pub knowledge_id: String,
    /// The file (`file` row).
    pub file_id: String,
    /// Added (epoch seconds).
    pub created_at: i64,
    /// Updated (epoch seconds).
    pub updated_at: i64,
    /// The directory it sits in (`None`: the root).
    pub directory_id: Option<String>,
}

impl Record for KnowledgeFile {
    const TABLE: &'static Table = &KNOWLEDGE_FILE;
    const ENTITY: &'static str = "knowledge file";
    fn id(&self) -> &str {
        &self.id
    }
}

/// A directory of a knowledge base (`knowledge_directory` row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnowledgeDirectory {
    /// Id (uuid4).
    pub id: String,
    /// The knowledge base.
    pub knowledge_id: String,
    /// The enclosing directory (`None`: the root).
    pub parent_id: Option<String>,
    /// Name (unique among its siblings).
    pub name: String,
    /// Who made it.
    pub user_id: String,
    /// Created (epoch seconds).
    pub created_at: i64,
    /// Updated (epoch seconds).
    pub updated_at: i64,
}

impl Record for KnowledgeDirectory {
    const TABLE: &'static Table = &KNOWLEDGE_DIRECTORY;
    const ENTITY: &'static str = "knowledge directory";
    fn id(&self) -> &str {
        &self.id
    }
}

/// A knowledge base to create.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewKnowledge {
    /// Id to keep; a uuid4 when `None`.
    pub id: Option<String>,
    /// Owner.
    pub user_id: String,
    /// Name (not empty).
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Metadata object.
    pub meta: Option<Value>,
    /// Data object.
    pub data: Option<Value>,
    /// Who else may read or write it.
    pub access_grants: Vec<Grant>,
    /// Created; now when `None`.
    pub created_at: Option<i64>,
    /// Updated; `created_at` when `None`.
    pub updated_at: Option<i64>,
}

impl NewKnowledge {
    /// A private knowledge base of `user_id` called `name`.
    pub fn new(user_id: impl Into<String>, name: impl Into<String>) -> Self {
        NewKnowledge {
            user_id: user_id.into(),
            name: name.into(),
            ..NewKnowledge::default()
        }
    }
}

/// Changes to a knowledge base; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KnowledgePatch {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// Keys merged into `meta`.
    pub meta: Option<Map<String, Value>>,
    /// New data (replaces it).
    pub data: Option<Value>,
    /// New grants (replace them all).
    pub access_grants: Option<Vec<Grant>>,
}

/// Knowledge bases, their files and directories. See the [module docs](self).
#[derive(Clone)]
pub struct KnowledgeBases {
    bases: Records<Knowledge>,
    files: Records<KnowledgeFile>,
    directories: Records<KnowledgeDirectory>,
    grants: AccessGrants,
}

impl KnowledgeBases {
    pub(crate) fn new(rows: Arc<dyn RowStore>) -> Self {
        KnowledgeBases {
            bases: Records::new(rows.clone()),
            files: Records::new(rows.clone()),
            directories: Records::new(rows.clone()),
            grants: AccessGrants::new(rows),
        }
    }

    /// The knowledge base records (generic reads: scan for export, custom filters).
    pub fn records(&self) -> &Records<Knowledge> {
        &self.bases
    }

    /// The file link records.
    pub fn file_records(&self) -> &Records<KnowledgeFile> {
        &self.files
    }

    /// The directory records.
    pub fn directory_records(&self) -> &Records<KnowledgeDirectory> {
        &self.directories
    }

    /// Creates a knowledge base with its grants, atomically.
    pub async fn create(&self, new: NewKnowledge) -> Result<Knowledge> {
        crate::validate::id("knowledge user id", &new.user_id)?;
        record::name("knowledge name", &new.name)?;
        record::object("knowledge meta", &new.meta)?;
        record::object("knowledge data", &new.data)?;
        let id = record::new_id("knowledge id", new.id)?;
        let (created, updated) = stamps(&KNOWLEDGE, new.created_at, new.updated_at)?;
        let knowledge = Knowledge {
            id,
            user_id: new.user_id,
            name: new.name,
            description: new.description,
            meta: new.meta,
            data: new.data,
            created_at: created,
            updated_at: Some(updated),
        };
        let mut ops = vec![Records::insert_op(&knowledge)?];
        ops.extend(AccessGrants::replace_ops(
            Knowledge::RESOURCE,
            &knowledge.id,
            &new.access_grants,
            created,
        )?);
        self.bases.write(ops).await?;
        Ok(knowledge)
    }

    /// The knowledge base with this id.
    pub async fn get(&self, id: &str) -> Result<Knowledge> {
        self.bases.get(id).await
    }

    /// Knowledge bases by a [`Search`] (text in the name or description).
    pub async fn search(&self, search: &Search) -> Result<Page<Knowledge>> {
        self.grants.search(&self.bases, search, Vec::new()).await
    }

    /// The knowledge bases holding `file_id`, newest update first.
    pub async fn with_file(&self, file_id: &str) -> Result<Vec<Knowledge>> {
        let ids: Vec<Value> = self
            .files
            .list(vec![Cond::Eq("file_id", file_id.into())], &[])
            .await?
            .into_iter()
            .map(|f| Value::from(f.knowledge_id))
            .collect();
        self.bases
            .list(vec![Cond::In("id", ids)], &[("updated_at", Dir::Desc)])
            .await
    }

    /// Changes a knowledge base (and replaces its grants when given), atomically.
    pub async fn update(&self, id: &str, patch: KnowledgePatch) -> Result<Knowledge> {
        let mut knowledge = self.bases.get(id).await?;
        if let Some(name) = patch.name {
            record::name("knowledge name", &name)?;
            knowledge.name = name;
        }
        if let Some(description) = patch.description {
            crate::validate::text("knowledge description", &description)?;
            knowledge.description = Some(description);
        }
        if let Some(meta) = patch.meta {
            crate::validate::json_map("knowledge meta", &meta)?;
            knowledge.meta = Some(record::merge(knowledge.meta.take(), meta));
        }
        if let Some(data) = patch.data {
            record::object("knowledge data", &Some(data.clone()))?;
            knowledge.data = Some(data);
        }
        let now = KNOWLEDGE.time_unit.now();
        knowledge.updated_at = Some(now);
        let mut ops = vec![Records::upsert_op(&knowledge)?];
        if let Some(grants) = &patch.access_grants {
            ops.extend(AccessGrants::replace_ops(
                Knowledge::RESOURCE,
                id,
                grants,
                now,
            )?);
        }
        self.bases.write(ops).await?;
        Ok(knowledge)
    }

    /// Deletes a knowledge base with its file links, directories and grants (the files stay).
    pub async fn delete(&self, id: &str) -> Result<()> {
        self.bases.get(id).await?;
        let ids = [id.to_owned()];
        self.bases
            .write(vec![
                Records::<KnowledgeFile>::delete_op(vec![Cond::Eq("knowledge_id", id.into())]),
                Records::<KnowledgeDirectory>::delete_op(vec![Cond::Eq("knowledge_id", id.into())]),
                AccessGrants::delete_ops(Knowledge::RESOURCE, &ids),
                Records::<Knowledge>::delete_op(vec![Cond::Eq("id", id.into())]),
            ])
            .await?;
        Ok(())
    }

    /// Adds a file to a knowledge base (into `directory_id`, or the root); `Conflict` when it is
    /// already there, `NotFound` when the base or directory is missing. The file itself must
    /// exist (a foreign key on SQL).
    pub async fn add_file(
        &self,
        knowledge_id: &str,
        file_id: &str,
        user_id: &str,
        directory_id: Option<&str>,
    ) -> Result<KnowledgeFile> {
        crate::validate::id("file id", file_id)?;
        crate::validate::id("user id", user_id)?;
        self.bases.get(knowledge_id).await?;
        if let Some(dir) = directory_id {
            self.directory(knowledge_id, dir).await?;
        }
        let now = KNOWLEDGE_FILE.time_unit.now();
        let link = KnowledgeFile {
            id: crate::validate::new_id(),
            user_id: user_id.to_owned(),
            knowledge_id: knowledge_id.to_owned(),
            file_id: file_id.to_owned(),
            created_at: now,
            updated_at: now,
            directory_id: directory_id.map(str::to_owned),
        };
        self.files
            .write(vec![Records::insert_op(&link)?, touch(knowledge_id, now)])
            .await?;
        Ok(link)
    }

    /// Whether the file is in the knowledge base.
    pub async fn has_file(&self, knowledge_id: &str, file_id: &str) -> Result<bool> {
        Ok(self
            .files
            .count(vec![
                Cond::Eq("knowledge_id", knowledge_id.into()),
                Cond::Eq("file_id", file_id.into()),
            ])
            .await?
            > 0)
    }

    /// Takes a file out of a knowledge base; `NotFound` when it was not there.
    pub async fn remove_file(&self, knowledge_id: &str, file_id: &str) -> Result<()> {
        let now = KNOWLEDGE_FILE.time_unit.now();
        let counts = self
            .files
            .write(vec![
                Records::<KnowledgeFile>::delete_op(vec![
                    Cond::Eq("knowledge_id", knowledge_id.into()),
                    Cond::Eq("file_id", file_id.into()),
                ]),
                touch(knowledge_id, now),
            ])
            .await?;
        if counts.first().copied().unwrap_or(0) == 0 {
            return Err(Error::not_found("knowledge file", file_id));
        }
        Ok(())
    }

    /// The files of a knowledge base, newest first, one page: all of them (`directory` `None`),
    /// or those directly in one directory (`Some(None)`: the root).
    pub async fn files(
        &self,
        knowledge_id: &str,
        directory: Option<Option<&str>>,
        page: PageRequest,
    ) -> Result<Page<KnowledgeFile>> {
        let mut filter = vec![Cond::Eq("knowledge_id", knowledge_id.into())];
        if let Some(dir) = directory {
            filter.push(Cond::Eq(
                "directory_id",
                dir.map_or(Value::Null, Value::from),
            ));
        }
        self.files
            .page(filter, &[("created_at", Dir::Desc)], page)
            .await
    }

    /// Moves a file to another directory of its knowledge base (`None`: the root).
    pub async fn move_file(
        &self,
        knowledge_id: &str,
        file_id: &str,
        directory_id: Option<&str>,
    ) -> Result<()> {
        if let Some(dir) = directory_id {
            self.directory(knowledge_id, dir).await?;
        }
        let counts = self
            .files
            .write(vec![Records::<KnowledgeFile>::update_op(
                vec![
                    Cond::Eq("knowledge_id", knowledge_id.into()),
                    Cond::Eq("file_id", file_id.into()),
                ],
                record::set([
                    (
                        "directory_id",
                        directory_id.map_or(Value::Null, Value::from),
                    ),
                    ("updated_at", KNOWLEDGE_FILE.time_unit.now().into()),
                ]),
            )])
            .await?;
        if counts.first().copied().unwrap_or(0) == 0 {
            return Err(Error::not_found("knowledge file", file_id));
        }
        Ok(())
    }

    /// Creates a directory; `Conflict` when a sibling has the same name, `NotFound` when the
    /// base or the parent is missing.
    pub async fn create_directory(
        &self,
        knowledge_id: &str,
        parent_id: Option<&str>,
        name: &str,
        user_id: &str,
    ) -> Result<KnowledgeDirectory> {
        record::name("directory name", name)?;
        crate::validate::id("user id", user_id)?;
        self.bases.get(knowledge_id).await?;
        if let Some(parent) = parent_id {
            self.directory(knowledge_id, parent).await?;
        }
        if self
            .directories(knowledge_id, parent_id)
            .await?
            .iter()
            .any(|d| d.name == name)
        {
            return Err(Error::conflict(
                "knowledge directory",
                format!("{name:?} already exists there; pick another name"),
            ));
        }
        let now = KNOWLEDGE_DIRECTORY.time_unit.now();
        self.directories
            .insert(KnowledgeDirectory {
                id: crate::validate::new_id(),
                knowledge_id: knowledge_id.to_owned(),
                parent_id: parent_id.map(str::to_owned),
                name: name.to_owned(),
                user_id: user_id.to_owned(),
                created_at: now,
                updated_at: now,
            })
            .await
    }

    /// One directory of a knowledge base.
    pub async fn directory(&self, knowledge_id: &str, id: &str) -> Result<KnowledgeDirectory> {
        self.directories
            .find(vec![
                Cond::Eq("id", id.into()),
                Cond::Eq("knowledge_id", knowledge_id.into()),
            ])
            .await?
            .ok_or_else(|| Error::not_found("knowledge directory", id))
    }

    /// The directories directly inside `parent_id` (the root for `None`), by name.
    pub async fn directories(
        &self,
        knowledge_id: &str,
        parent_id: Option<&str>,
    ) -> Result<Vec<KnowledgeDirectory>> {
        self.directories
            .list(
                vec![
                    Cond::Eq("knowledge_id", knowledge_id.into()),
                    Cond::Eq("parent_id", parent_id.map_or(Value::Null, Value::from)),
                ],
                &[("name", Dir::Asc)],
            )
            .await
    }

    /// Deletes a directory and every directory inside it; their files move to the deleted
    /// directory's parent (Open WebUI's default `move_files_to_parent`).
    pub async fn delete_directory(&self, knowledge_id: &str, id: &str) -> Result<()> {
        let dir = self.directory(knowledge_id, id).await?;
        let mut subtree = BTreeSet::from([id.to_owned()]);
        let mut frontier = vec![id.to_owned()];
        while !frontier.is_empty() {
            let children = self
                .directories
                .list(
                    vec![
                        Cond::Eq("knowledge_id", knowledge_id.into()),
                        Cond::In("parent_id", frontier.drain(..).map(Value::from).collect()),
                    ],
                    &[],
                )
                .await?;
            for child in children {
                if subtree.insert(child.id.clone()) {
                    frontier.push(child.id);
                }
            }
        }
        let ids: Vec<Value> = subtree.into_iter().map(Value::from).collect();
        self.directories
            .write(vec![
                Records::<KnowledgeFile>::update_op(
                    vec![
                        Cond::Eq("knowledge_id", knowledge_id.into()),
                        Cond::In("directory_id", ids.clone()),
                    ],
                    record::set([(
                        "directory_id",
                        dir.parent_id.clone().map_or(Value::Null, Value::from),
                    )]),
                ),
                Records::<KnowledgeDirectory>::delete_op(vec![Cond::In("id", ids)]),
            ])
            .await?;
        Ok(())
    }
}

fn touch(knowledge_id: &str, now: i64) -> crate::rows::RowOp {
    Records::<Knowledge>::update_op(
        vec![Cond::Eq("id", knowledge_id.into())],
        record::set([("updated_at", now.into())]),
    )
}
