//! Version history, shared by prompts (`prompt_history`) and models (`model_history`): every
//! save that changes a record adds an entry holding a snapshot of it, whose parent is the
//! entry before; the record's `version_id` names its current entry.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::record::{self, Record};
use crate::rows::tables::{MODEL_HISTORY, PROMPT_HISTORY};
use crate::rows::{Cond, Dir, RowOp, RowQuery, RowStore, Table};
use crate::{Error, Page, PageRequest, Result};

/// One saved version (a `prompt_history` or `model_history` row; the key column is
/// `prompt_id` or `model_id`, serialized under that name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry<K: HistoryKind> {
    /// Id (uuid4).
    pub id: String,
    /// The prompt or model this is a version of.
    #[serde(rename = "resource_id", skip)]
    pub resource_id: String,
    /// The entry before, if any.
    pub parent_id: Option<String>,
    /// The record as saved.
    pub snapshot: Value,
    /// Who saved it.
    pub user_id: String,
    /// The author's note.
    pub commit_message: Option<String>,
    /// Saved (epoch seconds).
    pub created_at: i64,
    #[serde(skip)]
    kind: PhantomData<K>,
}

/// Which history table: [`PromptVersions`] or [`ModelVersions`].
pub trait HistoryKind: Clone + Send + Sync + std::fmt::Debug + PartialEq + 'static {
    /// The table.
    const TABLE: &'static Table;
    /// The column naming the versioned record.
    const KEY: &'static str;
    /// What an entry is called in errors.
    const ENTITY: &'static str;
}

/// `prompt_history`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PromptVersions;

impl HistoryKind for PromptVersions {
    const TABLE: &'static Table = &PROMPT_HISTORY;
    const KEY: &'static str = "prompt_id";
    const ENTITY: &'static str = "prompt version";
}

/// `model_history`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ModelVersions;

impl HistoryKind for ModelVersions {
    const TABLE: &'static Table = &MODEL_HISTORY;
    const KEY: &'static str = "model_id";
    const ENTITY: &'static str = "model version";
}

impl<K: HistoryKind> HistoryEntry<K> {
    fn from_row(mut row: crate::rows::Row) -> Result<Self> {
        let resource_id = match row.remove(K::KEY) {
            Some(Value::String(s)) => s,
            _ => {
                return Err(Error::backend_msg(format!(
                    "a {} row has no {}",
                    K::TABLE.name,
                    K::KEY
                )));
            }
        };
        let mut entry: HistoryEntry<K> =
            serde_json::from_value(Value::Object(row)).map_err(|e| {
                Error::backend(
                    format!("a {} row does not fit its record type", K::TABLE.name),
                    e,
                )
            })?;
        entry.resource_id = resource_id;
        Ok(entry)
    }

    fn to_row(&self) -> Result<crate::rows::Row> {
        let mut row = match serde_json::to_value(self) {
            Ok(Value::Object(row)) => row,
            _ => return Err(Error::backend_msg("a history entry did not serialize")),
        };
        row.insert(K::KEY.to_owned(), Value::from(self.resource_id.clone()));
        Ok(row)
    }
}

/// One history table. See the [module docs](self).
pub struct History<K: HistoryKind> {
    rows: Arc<dyn RowStore>,
    kind: PhantomData<K>,
}

impl<K: HistoryKind> Clone for History<K> {
    fn clone(&self) -> Self {
        History {
            rows: self.rows.clone(),
            kind: PhantomData,
        }
    }
}

impl<K: HistoryKind> History<K> {
    /// The history table of `K` in `rows`.
    pub fn new(rows: Arc<dyn RowStore>) -> Self {
        History {
            rows,
            kind: PhantomData,
        }
    }

    /// The entry a save adds, and the op inserting it: parent = `parent_id` (the record's
    /// current version).
    pub fn entry_op(
        resource_id: &str,
        parent_id: Option<String>,
        snapshot: Value,
        user_id: &str,
        commit_message: Option<String>,
        created_at: i64,
    ) -> Result<(HistoryEntry<K>, RowOp)> {
        let entry = HistoryEntry {
            id: crate::validate::new_id(),
            resource_id: resource_id.to_owned(),
            parent_id,
            snapshot,
            user_id: user_id.to_owned(),
            commit_message,
            created_at,
            kind: PhantomData,
        };
        let op = RowOp::Insert {
            table: K::TABLE,
            row: entry.to_row()?,
        };
        Ok((entry, op))
    }

    /// The versions of one record, newest first (ties by id, newest id first as Open WebUI
    /// sorts them), one page.
    pub async fn list(
        &self,
        resource_id: &str,
        page: PageRequest,
    ) -> Result<Page<HistoryEntry<K>>> {
        page.validate()?;
        let filter = vec![Cond::Eq(K::KEY, resource_id.into())];
        let total = self.rows.count(K::TABLE, &filter).await?;
        let query = RowQuery::filter(filter)
            .order_by("created_at", Dir::Desc)
            .order_by("id", Dir::Desc)
            .page(page.offset, page.limit);
        let items = self
            .rows
            .select(K::TABLE, &query)
            .await?
            .into_iter()
            .map(HistoryEntry::from_row)
            .collect::<Result<_>>()?;
        Ok(Page { items, total })
    }

    /// One version of one record; `NotFound` when it is not a version of that record.
    pub async fn get(&self, resource_id: &str, entry_id: &str) -> Result<HistoryEntry<K>> {
        let query = RowQuery::filter(vec![
            Cond::Eq("id", entry_id.into()),
            Cond::Eq(K::KEY, resource_id.into()),
        ]);
        let mut rows = self.rows.select(K::TABLE, &query).await?;
        match rows.pop() {
            Some(row) => HistoryEntry::from_row(row),
            None => Err(Error::not_found(K::ENTITY, entry_id)),
        }
    }

    /// Deletes one version that is not the current one (`current`); its children take its
    /// parent, as in Open WebUI.
    pub async fn delete_entry(
        &self,
        resource_id: &str,
        entry_id: &str,
        current: Option<&str>,
    ) -> Result<()> {
        if current == Some(entry_id) {
            return Err(Error::invalid(format!(
                "{entry_id:?} is the current version: restore another version before deleting it"
            )));
        }
        let entry = self.get(resource_id, entry_id).await?;
        self.rows
            .write(vec![
                RowOp::Update {
                    table: K::TABLE,
                    filter: vec![
                        Cond::Eq(K::KEY, resource_id.into()),
                        Cond::Eq("parent_id", entry_id.into()),
                    ],
                    set: record::set([("parent_id", entry.parent_id.clone().into())]),
                },
                RowOp::Delete {
                    table: K::TABLE,
                    filter: vec![Cond::Eq("id", entry_id.into())],
                },
            ])
            .await?;
        Ok(())
    }

    /// The op deleting every version of these records.
    pub fn delete_all_op(resource_ids: &[String]) -> RowOp {
        RowOp::Delete {
            table: K::TABLE,
            filter: vec![Cond::In(
                K::KEY,
                resource_ids
                    .iter()
                    .map(|i| Value::from(i.as_str()))
                    .collect(),
            )],
        }
    }
}

/// Implemented so generic code can name the table of an entry.
impl<K: HistoryKind> Record for HistoryEntry<K>
where
    HistoryEntry<K>: Serialize + for<'de> Deserialize<'de>,
{
    const TABLE: &'static Table = K::TABLE;
    const ENTITY: &'static str = K::ENTITY;
    fn id(&self) -> &str {
        &self.id
    }
    fn to_row(&self) -> Result<crate::rows::Row> {
        HistoryEntry::to_row(self)
    }
    fn from_row(row: crate::rows::Row) -> Result<Self> {
        HistoryEntry::from_row(row)
    }
    fn from_cells(cells: Vec<crate::rows::Cell>) -> Result<Self> {
        // The versioned record's id is a column the entry keeps outside its serde fields.
        let row = crate::rows::cells::into_row(K::TABLE, cells).map_err(|e| {
            Error::backend(
                format!("a {} row does not fit its record type: {e}", K::TABLE.name),
                e,
            )
        })?;
        HistoryEntry::from_row(row)
    }
}

/// A saved version of a prompt.
pub type PromptVersion = HistoryEntry<PromptVersions>;
/// A saved version of a model.
pub type ModelVersion = HistoryEntry<ModelVersions>;
