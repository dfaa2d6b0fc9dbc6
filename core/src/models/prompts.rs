//! Prompts (`prompt`), addressed by their unique `command`, with every saved version in
//! `prompt_history`. Creating a prompt records its first version; every save that changes it
//! (name, command, content, data, meta, tags or grants) records a new version whose parent is
//! the current one, and makes it current (`version_id`). Restoring a version copies its
//! snapshot back (the command and grants stay, as in Open WebUI). Prompts are shared through
//! access grants (resource type `prompt`) and listed with a [`Search`] (text in the name,
//! command or content).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::access::{AccessGrants, Grant, Search, Shared};
use super::history::{History, PromptVersion, PromptVersions};
use super::record::{self, Record, Records, stamps};
use crate::rows::tables::PROMPT;
use crate::rows::{Cond, RowOp, RowStore, Table};
use crate::{Error, Page, PageRequest, Result};

/// A prompt (`prompt` row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prompt {
    /// Id (uuid4).
    pub id: String,
    /// The slash command that inserts it (unique).
    pub command: Option<String>,
    /// Owner.
    pub user_id: String,
    /// Name.
    pub name: String,
    /// The prompt text.
    pub content: String,
    /// Data.
    pub data: Option<Value>,
    /// Metadata.
    pub meta: Option<Value>,
    /// Offered in the prompt menu.
    pub is_active: bool,
    /// The current version (`prompt_history.id`).
    pub version_id: Option<String>,
    /// Tags (a JSON list of strings).
    pub tags: Option<Value>,
    /// Created (epoch seconds).
    pub created_at: i64,
    /// Updated (epoch seconds).
    pub updated_at: i64,
}

impl Record for Prompt {
    const TABLE: &'static Table = &PROMPT;
    const ENTITY: &'static str = "prompt";
    fn id(&self) -> &str {
        &self.id
    }
}

impl Shared for Prompt {
    const RESOURCE: &'static str = "prompt";
    const TEXT: &'static [&'static str] = &["name", "command", "content"];

    fn tags(&self) -> Vec<String> {
        self.tags
            .as_ref()
            .and_then(Value::as_array)
            .map(|tags| {
                tags.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A prompt to create.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewPrompt {
    /// Id to keep; a uuid4 when `None`.
    pub id: Option<String>,
    /// Owner (and author of the first version).
    pub user_id: String,
    /// Command (unique, not empty, no whitespace).
    pub command: String,
    /// Name (not empty).
    pub name: String,
    /// Text.
    pub content: String,
    /// Data object.
    pub data: Option<Value>,
    /// Metadata object.
    pub meta: Option<Value>,
    /// Tags.
    pub tags: Vec<String>,
    /// Who else may read or write it.
    pub access_grants: Vec<Grant>,
    /// The first version's note (`Initial version` when `None`).
    pub commit_message: Option<String>,
    /// Created; now when `None`.
    pub created_at: Option<i64>,
    /// Updated; `created_at` when `None`.
    pub updated_at: Option<i64>,
}

impl NewPrompt {
    /// A private prompt of `user_id`.
    pub fn new(
        user_id: impl Into<String>,
        command: impl Into<String>,
        name: impl Into<String>,
        content: impl Into<String>,
    ) -> Self {
        NewPrompt {
            user_id: user_id.into(),
            command: command.into(),
            name: name.into(),
            content: content.into(),
            ..NewPrompt::default()
        }
    }
}

/// Changes to a prompt; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptPatch {
    /// New command (unique).
    pub command: Option<String>,
    /// New name.
    pub name: Option<String>,
    /// New text.
    pub content: Option<String>,
    /// New data (replaces it).
    pub data: Option<Value>,
    /// New metadata (replaces it).
    pub meta: Option<Value>,
    /// New tags.
    pub tags: Option<Vec<String>>,
    /// New grants (replace them all).
    pub access_grants: Option<Vec<Grant>>,
    /// The new version's note.
    pub commit_message: Option<String>,
}

/// Prompts and their versions. See the [module docs](self).
#[derive(Clone)]
pub struct Prompts {
    prompts: Records<Prompt>,
    history: History<PromptVersions>,
    grants: AccessGrants,
}

fn check_command(command: &str) -> Result<()> {
    record::key("prompt command", command)?;
    if command.chars().any(char::is_whitespace) {
        return Err(Error::invalid(format!(
            "prompt command {command:?} contains whitespace; use a single word such as /summarize"
        )));
    }
    Ok(())
}

fn snapshot(prompt: &Prompt, grants: &[Grant]) -> Value {
    json!({
        "name": prompt.name,
        "content": prompt.content,
        "command": prompt.command,
        "data": prompt.data.clone().unwrap_or_else(|| json!({})),
        "meta": prompt.meta.clone().unwrap_or_else(|| json!({})),
        "tags": prompt.tags.clone().unwrap_or_else(|| json!([])),
        "access_grants": grants_json(grants),
    })
}

/// Grants as Open WebUI's snapshots hold them.
pub(crate) fn grants_json(grants: &[Grant]) -> Value {
    Value::Array(
        grants
            .iter()
            .map(|g| {
                let (principal_type, principal_id) = match &g.principal {
                    super::access::Principal::User(id) => ("user", id.as_str()),
                    super::access::Principal::Group(id) => ("group", id.as_str()),
                    super::access::Principal::Everyone => ("user", super::access::EVERYONE),
                };
                json!({
                    "principal_type": principal_type,
                    "principal_id": principal_id,
                    "permission": g.permission.as_str(),
                })
            })
            .collect(),
    )
}

/// The grants a stored grant list means.
pub(crate) fn grants_of(stored: &[super::access::AccessGrant]) -> Vec<Grant> {
    stored
        .iter()
        .filter_map(|g| {
            let permission = match g.permission.as_str() {
                "read" => super::access::Permission::Read,
                "write" => super::access::Permission::Write,
                _ => return None,
            };
            let principal = match (g.principal_type.as_str(), g.principal_id.as_str()) {
                ("user", super::access::EVERYONE) => super::access::Principal::Everyone,
                ("user", id) => super::access::Principal::User(id.to_owned()),
                ("group", id) => super::access::Principal::Group(id.to_owned()),
                _ => return None,
            };
            Some(Grant {
                principal,
                permission,
            })
        })
        .collect()
}

impl Prompts {
    pub(crate) fn new(rows: Arc<dyn RowStore>) -> Self {
        Prompts {
            prompts: Records::new(rows.clone()),
            history: History::new(rows.clone()),
            grants: AccessGrants::new(rows),
        }
    }

    /// The prompt records (generic reads: scan for export, custom filters).
    pub fn records(&self) -> &Records<Prompt> {
        &self.prompts
    }

    /// The version history.
    pub fn history(&self) -> &History<PromptVersions> {
        &self.history
    }

    /// Creates a prompt with its grants and first version, atomically; `Conflict` when the
    /// command (or id) is taken.
    pub async fn create(&self, new: NewPrompt) -> Result<Prompt> {
        crate::validate::id("prompt user id", &new.user_id)?;
        check_command(&new.command)?;
        record::name("prompt name", &new.name)?;
        crate::validate::text("prompt content", &new.content)?;
        record::object("prompt data", &new.data)?;
        record::object("prompt meta", &new.meta)?;
        for tag in &new.tags {
            crate::validate::text("prompt tag", tag)?;
        }
        let id = record::new_id("prompt id", new.id)?;
        let (created, updated) = stamps(&PROMPT, new.created_at, new.updated_at)?;
        let mut prompt = Prompt {
            id,
            command: Some(new.command),
            user_id: new.user_id,
            name: new.name,
            content: new.content,
            data: Some(new.data.unwrap_or_else(|| json!({}))),
            meta: Some(new.meta.unwrap_or_else(|| json!({}))),
            is_active: true,
            version_id: None,
            tags: Some(json!(new.tags)),
            created_at: created,
            updated_at: updated,
        };
        let (entry, entry_op) = History::<PromptVersions>::entry_op(
            &prompt.id,
            None,
            snapshot(&prompt, &new.access_grants),
            &prompt.user_id,
            Some(
                new.commit_message
                    .unwrap_or_else(|| "Initial version".to_owned()),
            ),
            created,
        )?;
        prompt.version_id = Some(entry.id);
        let mut ops = vec![Records::insert_op(&prompt)?, entry_op];
        ops.extend(AccessGrants::replace_ops(
            Prompt::RESOURCE,
            &prompt.id,
            &new.access_grants,
            created,
        )?);
        self.prompts.write(ops).await?;
        Ok(prompt)
    }

    /// The prompt with this id.
    pub async fn get(&self, id: &str) -> Result<Prompt> {
        self.prompts.get(id).await
    }

    /// The prompt with this command.
    pub async fn by_command(&self, command: &str) -> Result<Prompt> {
        self.prompts
            .find(vec![Cond::Eq("command", command.into())])
            .await?
            .ok_or_else(|| Error::not_found("prompt", command))
    }

    /// Prompts by a [`Search`].
    pub async fn search(&self, search: &Search) -> Result<Page<Prompt>> {
        self.grants.search(&self.prompts, search, Vec::new()).await
    }

    /// The distinct tags of the prompts `viewer` may read, sorted.
    pub async fn tags(&self, viewer: &super::access::Viewer) -> Result<Vec<String>> {
        self.grants.tags(&self.prompts, viewer).await
    }

    /// Saves changes to a prompt by `author`: when anything changed, a new version is
    /// recorded and made current, atomically with the change. `Conflict` when the new command
    /// is taken.
    pub async fn update(&self, id: &str, author: &str, patch: PromptPatch) -> Result<Prompt> {
        crate::validate::id("author id", author)?;
        let mut prompt = self.prompts.get(id).await?;
        let before = prompt.clone();
        let stored = self.grants.of(Prompt::RESOURCE, id).await?;
        let old_grants = grants_of(&stored);
        if let Some(command) = patch.command {
            check_command(&command)?;
            prompt.command = Some(command);
        }
        if let Some(name) = patch.name {
            record::name("prompt name", &name)?;
            prompt.name = name;
        }
        if let Some(content) = patch.content {
            crate::validate::text("prompt content", &content)?;
            prompt.content = content;
        }
        if let Some(data) = patch.data {
            record::object("prompt data", &Some(data.clone()))?;
            prompt.data = Some(data);
        }
        if let Some(meta) = patch.meta {
            record::object("prompt meta", &Some(meta.clone()))?;
            prompt.meta = Some(meta);
        }
        if let Some(tags) = patch.tags {
            for tag in &tags {
                crate::validate::text("prompt tag", tag)?;
            }
            prompt.tags = Some(json!(tags));
        }
        let grants = patch.access_grants.clone().unwrap_or(old_grants.clone());
        if prompt == before && grants == old_grants {
            return Ok(prompt);
        }
        let now = PROMPT.time_unit.now();
        prompt.updated_at = now.max(prompt.updated_at);
        let (entry, entry_op) = History::<PromptVersions>::entry_op(
            id,
            prompt.version_id.clone(),
            snapshot(&prompt, &grants),
            author,
            patch.commit_message,
            now,
        )?;
        prompt.version_id = Some(entry.id);
        let mut ops = vec![Records::upsert_op(&prompt)?, entry_op];
        if let Some(grants) = &patch.access_grants {
            ops.extend(AccessGrants::replace_ops(
                Prompt::RESOURCE,
                id,
                grants,
                now,
            )?);
        }
        self.prompts.write(ops).await?;
        Ok(prompt)
    }

    /// Turns the prompt on or off in the prompt menu.
    pub async fn set_active(&self, id: &str, active: bool) -> Result<Prompt> {
        let mut prompt = self.prompts.get(id).await?;
        prompt.is_active = active;
        prompt.updated_at = PROMPT.time_unit.now().max(prompt.updated_at);
        self.prompts.replace(prompt).await
    }

    /// The prompt's versions, newest first.
    pub async fn versions(&self, id: &str, page: PageRequest) -> Result<Page<PromptVersion>> {
        self.history.list(id, page).await
    }

    /// Makes an earlier version current, copying its name, content, data, meta and tags back.
    pub async fn restore(&self, id: &str, version_id: &str) -> Result<Prompt> {
        let mut prompt = self.prompts.get(id).await?;
        let entry = self.history.get(id, version_id).await?;
        let snap = &entry.snapshot;
        if let Some(name) = snap.get("name").and_then(Value::as_str) {
            prompt.name = name.to_owned();
        }
        if let Some(content) = snap.get("content").and_then(Value::as_str) {
            prompt.content = content.to_owned();
        }
        for (key, slot) in [
            ("data", &mut prompt.data),
            ("meta", &mut prompt.meta),
            ("tags", &mut prompt.tags),
        ] {
            if let Some(value) = snap.get(key) {
                *slot = Some(value.clone());
            }
        }
        prompt.version_id = Some(entry.id);
        prompt.updated_at = PROMPT.time_unit.now().max(prompt.updated_at);
        self.prompts.replace(prompt).await
    }

    /// Deletes a version that is not the current one.
    pub async fn delete_version(&self, id: &str, version_id: &str) -> Result<()> {
        let prompt = self.prompts.get(id).await?;
        self.history
            .delete_entry(id, version_id, prompt.version_id.as_deref())
            .await
    }

    /// Deletes a prompt with its versions and grants.
    pub async fn delete(&self, id: &str) -> Result<()> {
        self.prompts.get(id).await?;
        let ids = [id.to_owned()];
        self.prompts
            .write(vec![
                History::<PromptVersions>::delete_all_op(&ids),
                AccessGrants::delete_ops(Prompt::RESOURCE, &ids),
                RowOp::Delete {
                    table: &PROMPT,
                    filter: vec![Cond::Eq("id", id.into())],
                },
            ])
            .await?;
        Ok(())
    }

    /// Deletes the prompt with this command (see [`Prompts::delete`]).
    pub async fn delete_by_command(&self, command: &str) -> Result<()> {
        let prompt = self.by_command(command).await?;
        self.delete(&prompt.id).await
    }
}
