//! Contracts of feedback: ratings with their snapshot, lists, ownership.

use chatstore_core::models::{FeedbackOrder, FeedbackPatch, NewFeedback};
use chatstore_core::{PageRequest, Result, Store};
use serde_json::json;

use crate::assert_kind;
use crate::fixtures::T0;
use crate::folders::workspace;

fn rating(id: &str, user: &str, ts: i64, updated: i64) -> NewFeedback {
    NewFeedback {
        id: Some(id.to_owned()),
        user_id: user.to_owned(),
        data: Some(json!({"rating": 1, "model_id": "llama3", "reason": "clear"})),
        meta: Some(json!({"chat_id": "c1", "message_id": "m1"})),
        snapshot: Some(json!({"chat": {"title": "Engines", "history": {"messages": {}}}})),
        created_at: Some(T0 + ts),
        updated_at: Some(T0 + updated),
        ..NewFeedback::default()
    }
}

/// A rating reads back with its snapshot, type `rating` and version 0.
pub async fn feedback_round_trips_with_its_snapshot(store: &Store) -> Result<()> {
    let feedback = workspace(store)?.feedback();
    let made = feedback.create(rating("f1", "u1", 0, 0)).await?;
    assert_eq!(made.kind.as_deref(), Some("rating"));
    assert_eq!(made.version, Some(0));
    let got = feedback.get("f1").await?;
    assert_eq!(got, made);
    assert_eq!(
        got.snapshot,
        Some(json!({"chat": {"title": "Engines", "history": {"messages": {}}}}))
    );
    assert_eq!(feedback.of_type("rating").await?.len(), 1);
    let mut bad = rating("f2", "u1", 0, 0);
    bad.snapshot = Some(json!("text"));
    assert_kind!(feedback.create(bad).await, InvalidInput);
    Ok(())
}

/// The evaluations list is newest first (or by update), a user's list newest update first,
/// both paged with totals.
pub async fn feedback_lists_sort_and_page(store: &Store) -> Result<()> {
    let feedback = workspace(store)?.feedback();
    feedback.create(rating("f1", "u1", 1, 5)).await?;
    feedback.create(rating("f2", "u2", 2, 2)).await?;
    feedback.create(rating("f3", "u1", 3, 3)).await?;
    let ids = |page: chatstore_core::Page<chatstore_core::models::Feedback>| -> Vec<String> {
        page.items.into_iter().map(|f| f.id).collect()
    };
    assert_eq!(
        ids(feedback
            .list(FeedbackOrder::CreatedDesc, PageRequest::default())
            .await?),
        vec!["f3", "f2", "f1"]
    );
    assert_eq!(
        ids(feedback
            .list(FeedbackOrder::UpdatedAsc, PageRequest::new(1, 5))
            .await?),
        vec!["f3", "f1"]
    );
    let mine = feedback.for_user("u1", PageRequest::first(1)).await?;
    assert_eq!(mine.total, 2);
    assert_eq!(ids(mine), vec!["f1"]);
    let mut other = rating("f4", "u1", 4, 4);
    other.data = Some(json!({"rating": -1, "model_id": "mistral"}));
    feedback.create(other).await?;
    let llama = feedback
        .for_model("llama3", FeedbackOrder::CreatedDesc, PageRequest::new(1, 1))
        .await?;
    assert_eq!(llama.total, 3);
    assert_eq!(ids(llama), vec!["f2"]);
    Ok(())
}

/// Only the author (or an admin, with no user) may change or delete a rating.
pub async fn feedback_changes_belong_to_their_author(store: &Store) -> Result<()> {
    let feedback = workspace(store)?.feedback();
    feedback.create(rating("f1", "u1", 0, 0)).await?;
    let patch = FeedbackPatch {
        data: Some(json!({"rating": -1})),
        ..FeedbackPatch::default()
    };
    assert_kind!(
        feedback.update("f1", Some("u2"), patch.clone()).await,
        NotFound
    );
    let got = feedback.update("f1", Some("u1"), patch).await?;
    assert_eq!(got.data, Some(json!({"rating": -1})));
    assert_kind!(feedback.delete("f1", Some("u2")).await, NotFound);
    feedback.delete("f1", None).await?;
    assert_kind!(feedback.get("f1").await, NotFound);
    Ok(())
}
