//! Feedback (`feedback`): a user's rating of an answer (`data`: `rating`, `model_id`,
//! `reason`, `comment`), with its context (`meta`: `chat_id`, `message_id`, ...) and a snapshot
//! of the chat it was given on (`snapshot`). The evaluations page lists them newest first; a
//! user's own list newest update first.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::record::{self, Record, Records, stamps};
use crate::rows::tables::FEEDBACK;
use crate::rows::{Cond, Dir, RowStore, Table};
use crate::{Error, Page, PageRequest, Result};

/// A rating (`feedback` row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    /// Id (uuid4).
    pub id: String,
    /// Who rated.
    pub user_id: Option<String>,
    /// Format version (0).
    pub version: Option<i64>,
    /// `rating` (the only type Open WebUI writes).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The rating (`rating`, `model_id`, `sibling_model_ids`, `reason`, `comment`).
    pub data: Option<Value>,
    /// Context (`chat_id`, `message_id`, `message_index`, `arena`, `tags`).
    pub meta: Option<Value>,
    /// The chat as it was (`{"chat": {...}}`).
    pub snapshot: Option<Value>,
    /// Created (epoch seconds).
    pub created_at: i64,
    /// Updated (epoch seconds).
    pub updated_at: i64,
}

impl Record for Feedback {
    const TABLE: &'static Table = &FEEDBACK;
    const ENTITY: &'static str = "feedback";
    fn id(&self) -> &str {
        &self.id
    }
}

/// A rating to record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewFeedback {
    /// Id to keep; a uuid4 when `None`.
    pub id: Option<String>,
    /// Who rates.
    pub user_id: String,
    /// Type (`rating` when `None`).
    pub kind: Option<String>,
    /// The rating object.
    pub data: Option<Value>,
    /// Context object.
    pub meta: Option<Value>,
    /// Chat snapshot object.
    pub snapshot: Option<Value>,
    /// Created; now when `None`.
    pub created_at: Option<i64>,
    /// Updated; `created_at` when `None`.
    pub updated_at: Option<i64>,
}

/// Changes to a rating; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeedbackPatch {
    /// New rating object.
    pub data: Option<Value>,
    /// New context object.
    pub meta: Option<Value>,
    /// New snapshot object.
    pub snapshot: Option<Value>,
}

/// The sort of the evaluations list (Open WebUI's `order_by` on columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum FeedbackOrder {
    /// Newest first (the default).
    #[default]
    CreatedDesc,
    /// By last update, newest first.
    UpdatedDesc,
    /// By last update, oldest first.
    UpdatedAsc,
}

/// Ratings. See the [module docs](self).
#[derive(Clone)]
pub struct Feedbacks {
    feedback: Records<Feedback>,
}

impl Feedbacks {
    pub(crate) fn new(rows: Arc<dyn RowStore>) -> Self {
        Feedbacks {
            feedback: Records::new(rows),
        }
    }

    /// The feedback records (generic reads: scan for export, custom filters).
    pub fn records(&self) -> &Records<Feedback> {
        &self.feedback
    }

    /// Records a rating.
    pub async fn create(&self, new: NewFeedback) -> Result<Feedback> {
        crate::validate::id("feedback user id", &new.user_id)?;
        for (what, value) in [
            ("feedback data", &new.data),
            ("feedback meta", &new.meta),
            ("feedback snapshot", &new.snapshot),
        ] {
            record::object(what, value)?;
        }
        let kind = new.kind.unwrap_or_else(|| "rating".to_owned());
        record::name("feedback type", &kind)?;
        let id = record::new_id("feedback id", new.id)?;
        let (created, updated) = stamps(&FEEDBACK, new.created_at, new.updated_at)?;
        self.feedback
            .insert(Feedback {
                id,
                user_id: Some(new.user_id),
                version: Some(0),
                kind: Some(kind),
                data: new.data,
                meta: new.meta,
                snapshot: new.snapshot,
                created_at: created,
                updated_at: updated,
            })
            .await
    }

    /// The rating with this id.
    pub async fn get(&self, id: &str) -> Result<Feedback> {
        self.feedback.get(id).await
    }

    /// Every rating, one page, in `order` (the evaluations page).
    pub async fn list(&self, order: FeedbackOrder, page: PageRequest) -> Result<Page<Feedback>> {
        let sort = match order {
            FeedbackOrder::CreatedDesc => ("created_at", Dir::Desc),
            FeedbackOrder::UpdatedDesc => ("updated_at", Dir::Desc),
            FeedbackOrder::UpdatedAsc => ("updated_at", Dir::Asc),
        };
        self.feedback.page(Vec::new(), &[sort], page).await
    }

    /// The ratings of one model (`data.model_id`), in `order`, one page. The model id lives in
    /// JSON, so the ratings are filtered in process.
    pub async fn for_model(
        &self,
        model_id: &str,
        order: FeedbackOrder,
        page: PageRequest,
    ) -> Result<Page<Feedback>> {
        page.validate()?;
        let sort = match order {
            FeedbackOrder::CreatedDesc => ("created_at", Dir::Desc),
            FeedbackOrder::UpdatedDesc => ("updated_at", Dir::Desc),
            FeedbackOrder::UpdatedAsc => ("updated_at", Dir::Asc),
        };
        let matching: Vec<Feedback> = self
            .feedback
            .list(Vec::new(), &[sort])
            .await?
            .into_iter()
            .filter(|f| {
                f.data
                    .as_ref()
                    .and_then(|d| d.get("model_id"))
                    .and_then(Value::as_str)
                    == Some(model_id)
            })
            .collect();
        Ok(Page {
            total: matching.len() as u64,
            items: page.slice(matching),
        })
    }

    /// One user's ratings, newest update first, one page.
    pub async fn for_user(&self, user_id: &str, page: PageRequest) -> Result<Page<Feedback>> {
        self.feedback
            .page(
                vec![Cond::Eq("user_id", user_id.into())],
                &[("updated_at", Dir::Desc)],
                page,
            )
            .await
    }

    /// The ratings of one type, newest first.
    pub async fn of_type(&self, kind: &str) -> Result<Vec<Feedback>> {
        self.feedback
            .list(
                vec![Cond::Eq("type", kind.into())],
                &[("created_at", Dir::Desc)],
            )
            .await
    }

    /// Changes a rating (`NotFound` when it is not `user_id`'s; `None` for an admin's edit).
    pub async fn update(
        &self,
        id: &str,
        user_id: Option<&str>,
        patch: FeedbackPatch,
    ) -> Result<Feedback> {
        let mut feedback = self.owned(id, user_id).await?;
        for (what, value, slot) in [
            ("feedback data", patch.data, &mut feedback.data),
            ("feedback meta", patch.meta, &mut feedback.meta),
            ("feedback snapshot", patch.snapshot, &mut feedback.snapshot),
        ] {
            if let Some(value) = value {
                record::object(what, &Some(value.clone()))?;
                *slot = Some(value);
            }
        }
        feedback.updated_at = FEEDBACK.time_unit.now().max(feedback.updated_at);
        self.feedback.replace(feedback).await
    }

    /// Deletes a rating (`NotFound` when it is not `user_id`'s; `None` for an admin's delete).
    pub async fn delete(&self, id: &str, user_id: Option<&str>) -> Result<()> {
        self.owned(id, user_id).await?;
        self.feedback.delete(id).await
    }

    async fn owned(&self, id: &str, user_id: Option<&str>) -> Result<Feedback> {
        let feedback = self.feedback.get(id).await?;
        if let Some(user) = user_id
            && feedback.user_id.as_deref() != Some(user)
        {
            return Err(Error::not_found("feedback", id));
        }
        Ok(feedback)
    }
}
