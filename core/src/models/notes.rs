//! Notes (`note`, timestamps in nanoseconds) and the notes each user pinned (`pinned_note`).
//! Notes are shared through access grants (resource type `note`) and listed with a [`Search`]
//! (text in the title; sort by name sorts by title). Deleting a note deletes its pins and grants.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::access::{AccessGrants, Grant, Permission, Search, Shared, Viewer};
use super::record::{self, Record, Records, stamps};
use crate::rows::tables::{NOTE, PINNED_NOTE};
use crate::rows::{Cond, Dir, RowStore, Table};
use crate::{Page, Result};

/// A note (`note` row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    /// Id (uuid4).
    pub id: String,
    /// Owner.
    pub user_id: Option<String>,
    /// Title.
    pub title: Option<String>,
    /// Content (`content.md`, `content.html`, `files`, ...), merged on update.
    pub data: Option<Value>,
    /// Metadata, merged on update.
    pub meta: Option<Value>,
    /// Created (epoch nanoseconds).
    pub created_at: Option<i64>,
    /// Updated (epoch nanoseconds).
    pub updated_at: Option<i64>,
}

impl Record for Note {
    const TABLE: &'static Table = &NOTE;
    const ENTITY: &'static str = "note";
    fn id(&self) -> &str {
        &self.id
    }
}

impl Shared for Note {
    const RESOURCE: &'static str = "note";
    const NAME: &'static str = "title";
    const TEXT: &'static [&'static str] = &["title"];
}

/// A user's pin of a note (`pinned_note` row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PinnedNote {
    /// Id (uuid4).
    pub id: String,
    /// Who pinned it.
    pub user_id: String,
    /// The note.
    pub note_id: String,
    /// Pinned (epoch nanoseconds).
    pub created_at: i64,
}

impl Record for PinnedNote {
    const TABLE: &'static Table = &PINNED_NOTE;
    const ENTITY: &'static str = "pinned note";
    fn id(&self) -> &str {
        &self.id
    }
}

/// A note to create.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewNote {
    /// Id to keep; a uuid4 when `None`.
    pub id: Option<String>,
    /// Owner.
    pub user_id: String,
    /// Title (not empty).
    pub title: String,
    /// Content object.
    pub data: Option<Value>,
    /// Metadata object.
    pub meta: Option<Value>,
    /// Who else may read or write it.
    pub access_grants: Vec<Grant>,
    /// Created (nanoseconds); now when `None`.
    pub created_at: Option<i64>,
    /// Updated (nanoseconds); `created_at` when `None`.
    pub updated_at: Option<i64>,
}

impl NewNote {
    /// A private note of `user_id` titled `title`.
    pub fn new(user_id: impl Into<String>, title: impl Into<String>) -> Self {
        NewNote {
            user_id: user_id.into(),
            title: title.into(),
            ..NewNote::default()
        }
    }
}

/// Changes to a note; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NotePatch {
    /// New title.
    pub title: Option<String>,
    /// Keys merged into `data`.
    pub data: Option<Map<String, Value>>,
    /// Keys merged into `meta`.
    pub meta: Option<Map<String, Value>>,
    /// New grants (replace them all).
    pub access_grants: Option<Vec<Grant>>,
}

/// Notes and pins. See the [module docs](self).
#[derive(Clone)]
pub struct Notes {
    notes: Records<Note>,
    pins: Records<PinnedNote>,
    grants: AccessGrants,
}

impl Notes {
    pub(crate) fn new(rows: Arc<dyn RowStore>) -> Self {
        Notes {
            notes: Records::new(rows.clone()),
            pins: Records::new(rows.clone()),
            grants: AccessGrants::new(rows),
        }
    }

    /// The note records (generic reads: scan for export, custom filters).
    pub fn records(&self) -> &Records<Note> {
        &self.notes
    }

    /// The pin records.
    pub fn pin_records(&self) -> &Records<PinnedNote> {
        &self.pins
    }

    /// Creates a note with its grants, atomically.
    pub async fn create(&self, new: NewNote) -> Result<Note> {
        crate::validate::id("note user id", &new.user_id)?;
        record::name("note title", &new.title)?;
        record::object("note data", &new.data)?;
        record::object("note meta", &new.meta)?;
        let id = record::new_id("note id", new.id)?;
        let (created, updated) = stamps(&NOTE, new.created_at, new.updated_at)?;
        let note = Note {
            id,
            user_id: Some(new.user_id),
            title: Some(new.title),
            data: new.data,
            meta: new.meta,
            created_at: Some(created),
            updated_at: Some(updated),
        };
        let mut ops = vec![Records::insert_op(&note)?];
        ops.extend(AccessGrants::replace_ops(
            Note::RESOURCE,
            &note.id,
            &new.access_grants,
            crate::rows::TimeUnit::Seconds.now(),
        )?);
        self.notes.write(ops).await?;
        Ok(note)
    }

    /// The note with this id.
    pub async fn get(&self, id: &str) -> Result<Note> {
        self.notes.get(id).await
    }

    /// Notes by a [`Search`] (Open WebUI's notes page asks for write access by default).
    pub async fn search(&self, search: &Search) -> Result<Page<Note>> {
        self.grants.search(&self.notes, search, Vec::new()).await
    }

    /// Changes a note: sets the title, merges `data` and `meta`, replaces grants when given;
    /// `updated_at` becomes now (nanoseconds).
    pub async fn update(&self, id: &str, patch: NotePatch) -> Result<Note> {
        let mut note = self.notes.get(id).await?;
        if let Some(title) = patch.title {
            record::name("note title", &title)?;
            note.title = Some(title);
        }
        for (what, value, slot) in [
            ("note data", patch.data, &mut note.data),
            ("note meta", patch.meta, &mut note.meta),
        ] {
            if let Some(map) = value {
                crate::validate::json_map(what, &map)?;
                *slot = Some(record::merge(slot.take(), map));
            }
        }
        note.updated_at = Some(NOTE.time_unit.now());
        let mut ops = vec![Records::upsert_op(&note)?];
        if let Some(grants) = &patch.access_grants {
            ops.extend(AccessGrants::replace_ops(
                Note::RESOURCE,
                id,
                grants,
                crate::rows::TimeUnit::Seconds.now(),
            )?);
        }
        self.notes.write(ops).await?;
        Ok(note)
    }

    /// Deletes a note with its pins and grants.
    pub async fn delete(&self, id: &str) -> Result<()> {
        self.notes.get(id).await?;
        self.notes
            .write(vec![
                AccessGrants::delete_ops(Note::RESOURCE, &[id.to_owned()]),
                Records::<PinnedNote>::delete_op(vec![Cond::Eq("note_id", id.into())]),
                Records::<Note>::delete_op(vec![Cond::Eq("id", id.into())]),
            ])
            .await?;
        Ok(())
    }

    /// Pins or unpins a note for `user_id` (idempotent); `NotFound` when the note is missing.
    pub async fn set_pinned(&self, user_id: &str, note_id: &str, pinned: bool) -> Result<()> {
        crate::validate::id("user id", user_id)?;
        self.notes.get(note_id).await?;
        let filter = vec![
            Cond::Eq("user_id", user_id.into()),
            Cond::Eq("note_id", note_id.into()),
        ];
        let existing = self.pins.find(filter.clone()).await?;
        match (pinned, existing) {
            (true, None) => {
                self.pins
                    .insert(PinnedNote {
                        id: crate::validate::new_id(),
                        user_id: user_id.to_owned(),
                        note_id: note_id.to_owned(),
                        created_at: PINNED_NOTE.time_unit.now(),
                    })
                    .await?;
            }
            (false, Some(_)) => {
                self.pins
                    .write(vec![Records::<PinnedNote>::delete_op(filter)])
                    .await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// The notes `user_id` pinned and may still `permission`, most recently pinned first.
    pub async fn pinned(&self, user_id: &str, permission: Permission) -> Result<Vec<Note>> {
        let pins = self
            .pins
            .list(
                vec![Cond::Eq("user_id", user_id.into())],
                &[("created_at", Dir::Desc)],
            )
            .await?;
        let ids: Vec<Value> = pins
            .iter()
            .map(|p| Value::from(p.note_id.as_str()))
            .collect();
        let mut filter = vec![Cond::In("id", ids)];
        if let Some(access) = self
            .grants
            .access_filter::<Note>(&Viewer::User(user_id.to_owned()), permission)
            .await?
        {
            filter.push(access);
        }
        let notes = self.notes.list(filter, &[]).await?;
        Ok(pins
            .iter()
            .filter_map(|p| notes.iter().find(|n| n.id == p.note_id).cloned())
            .collect())
    }

    /// Whether `user_id` may `permission` the note (owner, or a grant).
    pub async fn can(&self, user_id: &str, note_id: &str, permission: Permission) -> Result<bool> {
        let note = self.notes.get(note_id).await?;
        self.grants.can(user_id, &note, permission).await
    }
}
