//! Models (`model`): presets over a base model (system prompt, parameters, knowledge, tools),
//! or base models themselves (`base_model_id` null), with every saved version in
//! `model_history`. Ids are the model ids users pick (`llama3.1:8b`, `my-helper`), not uuids.
//! Creating a model records its first version; a save that changes its name, base model,
//! params or meta (but `meta.hidden`, which is the live model's) records a new version and
//! makes it current. Models are shared through access grants (resource type `model`) and listed
//! with a [`Search`] (text in the name or id).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::access::{AccessGrants, Grant, Search, Shared};
use super::history::{History, ModelVersion, ModelVersions};
use super::record::{self, Record, Records, stamps};
use crate::rows::tables::MODEL;
use crate::rows::{Cond, Dir, RowOp, RowStore, Table};
use crate::{Page, PageRequest, Result};

/// A model (`model` row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// The model id (`llama3.1:8b`).
    pub id: String,
    /// Owner.
    pub user_id: Option<String>,
    /// The model it presets (`None`: a base model).
    pub base_model_id: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Parameters (`system`, `temperature`, ...).
    pub params: Option<Value>,
    /// Metadata (`profile_image_url`, `description`, `tags`, `hidden`, ...).
    pub meta: Option<Value>,
    /// Updated (epoch seconds).
    pub updated_at: Option<i64>,
    /// Created (epoch seconds).
    pub created_at: Option<i64>,
    /// Offered to users.
    pub is_active: bool,
    /// The current version (`model_history.id`).
    pub version_id: Option<String>,
}

impl Record for Model {
    const TABLE: &'static Table = &MODEL;
    const ENTITY: &'static str = "model";
    fn id(&self) -> &str {
        &self.id
    }
}

impl Shared for Model {
    const RESOURCE: &'static str = "model";
    const TEXT: &'static [&'static str] = &["name", "id"];

    /// `meta.tags`: a list of `{"name": ...}` objects (or plain strings).
    fn tags(&self) -> Vec<String> {
        self.meta
            .as_ref()
            .and_then(|m| m.get("tags"))
            .and_then(Value::as_array)
            .map(|tags| {
                tags.iter()
                    .filter_map(|t| match t {
                        Value::String(s) => Some(s.clone()),
                        other => other.get("name").and_then(Value::as_str).map(str::to_owned),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A model to create.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewModel {
    /// The model id (required: not empty, no control characters).
    pub id: String,
    /// Owner (and author of the first version).
    pub user_id: String,
    /// The model it presets.
    pub base_model_id: Option<String>,
    /// Display name (not empty).
    pub name: String,
    /// Parameters object.
    pub params: Option<Value>,
    /// Metadata object.
    pub meta: Option<Value>,
    /// Who else may read or write it.
    pub access_grants: Vec<Grant>,
    /// The first version's note.
    pub commit_message: Option<String>,
    /// Created; now when `None`.
    pub created_at: Option<i64>,
    /// Updated; `created_at` when `None`.
    pub updated_at: Option<i64>,
}

/// Changes to a model; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelPatch {
    /// New display name.
    pub name: Option<String>,
    /// New base model (`Some(None)`: a base model).
    pub base_model_id: Option<Option<String>>,
    /// New parameters (replace them).
    pub params: Option<Value>,
    /// New metadata (replaces it).
    pub meta: Option<Value>,
    /// Offered to users.
    pub is_active: Option<bool>,
    /// New grants (replace them all).
    pub access_grants: Option<Vec<Grant>>,
    /// The new version's note.
    pub commit_message: Option<String>,
}

fn snapshot(model: &Model) -> Value {
    let mut meta = model.meta.clone().unwrap_or_else(|| json!({}));
    if let Some(map) = meta.as_object_mut() {
        map.remove("hidden");
    }
    json!({
        "name": model.name,
        "base_model_id": model.base_model_id,
        "params": model.params.clone().unwrap_or_else(|| json!({})),
        "meta": meta,
    })
}

/// Models and their versions. See the [module docs](self).
#[derive(Clone)]
pub struct Models {
    models: Records<Model>,
    history: History<ModelVersions>,
    grants: AccessGrants,
}

impl Models {
    pub(crate) fn new(rows: Arc<dyn RowStore>) -> Self {
        Models {
            models: Records::new(rows.clone()),
            history: History::new(rows.clone()),
            grants: AccessGrants::new(rows),
        }
    }

    /// The model records (generic reads: scan for export, custom filters).
    pub fn records(&self) -> &Records<Model> {
        &self.models
    }

    /// The version history.
    pub fn history(&self) -> &History<ModelVersions> {
        &self.history
    }

    /// Creates a model with its grants and first version, atomically; `Conflict` when the id
    /// is taken.
    pub async fn create(&self, new: NewModel) -> Result<Model> {
        record::key("model id", &new.id)?;
        crate::validate::id("model user id", &new.user_id)?;
        record::name("model name", &new.name)?;
        if let Some(base) = &new.base_model_id {
            record::key("base model id", base)?;
        }
        record::object("model params", &new.params)?;
        record::object("model meta", &new.meta)?;
        let (created, updated) = stamps(&MODEL, new.created_at, new.updated_at)?;
        let mut model = Model {
            id: new.id,
            user_id: Some(new.user_id.clone()),
            base_model_id: new.base_model_id,
            name: Some(new.name),
            params: Some(new.params.unwrap_or_else(|| json!({}))),
            meta: Some(new.meta.unwrap_or_else(|| json!({}))),
            updated_at: Some(updated),
            created_at: Some(created),
            is_active: true,
            version_id: None,
        };
        let (entry, entry_op) = History::<ModelVersions>::entry_op(
            &model.id,
            None,
            snapshot(&model),
            &new.user_id,
            new.commit_message,
            created,
        )?;
        model.version_id = Some(entry.id);
        let mut ops = vec![Records::insert_op(&model)?, entry_op];
        ops.extend(AccessGrants::replace_ops(
            Model::RESOURCE,
            &model.id,
            &new.access_grants,
            created,
        )?);
        self.models.write(ops).await?;
        Ok(model)
    }

    /// The model with this id.
    pub async fn get(&self, id: &str) -> Result<Model> {
        self.models.get(id).await
    }

    /// Models by a [`Search`] (presets only: base models are listed by [`Models::base_models`]).
    pub async fn search(&self, search: &Search) -> Result<Page<Model>> {
        self.grants
            .search(&self.models, search, vec![Cond::NotNull("base_model_id")])
            .await
    }

    /// The distinct tags of the models `viewer` may read, sorted.
    pub async fn tags(&self, viewer: &super::access::Viewer) -> Result<Vec<String>> {
        self.grants.tags(&self.models, viewer).await
    }

    /// The base models (no `base_model_id`), by id.
    pub async fn base_models(&self) -> Result<Vec<Model>> {
        self.models
            .list(vec![Cond::IsNull("base_model_id")], &[("id", Dir::Asc)])
            .await
    }

    /// The presets over `base_model_id`, newest update first.
    pub async fn presets_of(&self, base_model_id: &str) -> Result<Vec<Model>> {
        self.models
            .list(
                vec![Cond::Eq("base_model_id", base_model_id.into())],
                &[("updated_at", Dir::Desc)],
            )
            .await
    }

    /// Saves changes to a model by `author`; a change to its snapshot (name, base model,
    /// params, meta but `hidden`) records a new current version, atomically with the change.
    pub async fn update(&self, id: &str, author: &str, patch: ModelPatch) -> Result<Model> {
        crate::validate::id("author id", author)?;
        let mut model = self.models.get(id).await?;
        let before = snapshot(&model);
        if let Some(name) = patch.name {
            record::name("model name", &name)?;
            model.name = Some(name);
        }
        if let Some(base) = patch.base_model_id {
            if let Some(base) = &base {
                record::key("base model id", base)?;
            }
            model.base_model_id = base;
        }
        if let Some(params) = patch.params {
            record::object("model params", &Some(params.clone()))?;
            model.params = Some(params);
        }
        if let Some(meta) = patch.meta {
            record::object("model meta", &Some(meta.clone()))?;
            model.meta = Some(meta);
        }
        if let Some(active) = patch.is_active {
            model.is_active = active;
        }
        let now = MODEL.time_unit.now();
        model.updated_at = Some(now.max(model.updated_at.unwrap_or(0)));
        let mut ops = Vec::new();
        let after = snapshot(&model);
        if after != before {
            let (entry, entry_op) = History::<ModelVersions>::entry_op(
                id,
                model.version_id.clone(),
                after,
                author,
                patch.commit_message,
                now,
            )?;
            model.version_id = Some(entry.id);
            ops.push(entry_op);
        }
        ops.insert(0, Records::upsert_op(&model)?);
        if let Some(grants) = &patch.access_grants {
            ops.extend(AccessGrants::replace_ops(Model::RESOURCE, id, grants, now)?);
        }
        self.models.write(ops).await?;
        Ok(model)
    }

    /// The model's versions, newest first.
    pub async fn versions(&self, id: &str, page: PageRequest) -> Result<Page<ModelVersion>> {
        self.history.list(id, page).await
    }

    /// Makes an earlier version current: its name, base model, params and meta come back
    /// (`meta.hidden` and `is_active` stay the live model's).
    pub async fn restore(&self, id: &str, version_id: &str) -> Result<Model> {
        let mut model = self.models.get(id).await?;
        let entry = self.history.get(id, version_id).await?;
        let snap = &entry.snapshot;
        if let Some(name) = snap.get("name").and_then(Value::as_str) {
            model.name = Some(name.to_owned());
        }
        if let Some(base) = snap.get("base_model_id") {
            model.base_model_id = base.as_str().map(str::to_owned);
        }
        if let Some(params) = snap.get("params") {
            model.params = Some(params.clone());
        }
        if let Some(mut meta) = snap.get("meta").cloned() {
            let hidden = model.meta.as_ref().and_then(|m| m.get("hidden")).cloned();
            if let (Some(map), Some(hidden)) = (meta.as_object_mut(), hidden) {
                map.insert("hidden".into(), hidden);
            }
            model.meta = Some(meta);
        }
        model.version_id = Some(entry.id);
        model.updated_at = Some(MODEL.time_unit.now().max(model.updated_at.unwrap_or(0)));
        self.models.replace(model).await
    }

    /// Deletes a version that is not the current one.
    pub async fn delete_version(&self, id: &str, version_id: &str) -> Result<()> {
        let model = self.models.get(id).await?;
        self.history
            .delete_entry(id, version_id, model.version_id.as_deref())
            .await
    }

    /// Deletes a model with its versions and grants.
    pub async fn delete(&self, id: &str) -> Result<()> {
        self.models.get(id).await?;
        let ids = [id.to_owned()];
        self.models
            .write(vec![
                History::<ModelVersions>::delete_all_op(&ids),
                AccessGrants::delete_ops(Model::RESOURCE, &ids),
                RowOp::Delete {
                    table: &MODEL,
                    filter: vec![Cond::Eq("id", id.into())],
                },
            ])
            .await?;
        Ok(())
    }
}
