//! Contracts of models (presets): ids that are not uuids, versions on change, base models.

use chatstore_core::models::{Grant, ModelPatch, NewModel, Permission, Search};
use chatstore_core::{PageRequest, Result, Store};
use serde_json::json;

use crate::assert_kind;
use crate::fixtures::T0;
use crate::folders::workspace;

fn model(id: &str, base: Option<&str>, name: &str) -> NewModel {
    NewModel {
        id: id.to_owned(),
        user_id: "u1".into(),
        base_model_id: base.map(str::to_owned),
        name: name.to_owned(),
        params: Some(json!({"temperature": 0.2})),
        meta: Some(json!({"description": name, "hidden": false})),
        created_at: Some(T0),
        ..NewModel::default()
    }
}

/// Model ids such as `llama3.1:8b` are kept as given; a taken id is a `Conflict`.
pub async fn models_keep_their_ids(store: &Store) -> Result<()> {
    let models = workspace(store)?.models();
    let base = models.create(model("llama3.1:8b", None, "Llama")).await?;
    assert_eq!(models.get("llama3.1:8b").await?, base);
    models
        .create(model("helper", Some("llama3.1:8b"), "Helper"))
        .await?;
    assert_kind!(
        models.create(model("helper", None, "Again")).await,
        Conflict
    );
    assert_kind!(
        models.create(model("", None, "Nameless")).await,
        InvalidInput
    );
    let bases: Vec<_> = models
        .base_models()
        .await?
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(bases, vec!["llama3.1:8b"]);
    let presets: Vec<_> = models
        .presets_of("llama3.1:8b")
        .await?
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(presets, vec!["helper"]);
    Ok(())
}

/// A change to name, params or meta records a new version; toggling `is_active` or
/// `meta.hidden` does not; restore brings a version back and keeps `hidden`.
pub async fn model_versions_follow_the_snapshot(store: &Store) -> Result<()> {
    let models = workspace(store)?.models();
    let made = models
        .create(model("helper", Some("base"), "Helper"))
        .await?;
    let first = made.version_id.clone().expect("first");
    let off = models
        .update(
            "helper",
            "u1",
            ModelPatch {
                is_active: Some(false),
                meta: Some(json!({"description": "Helper", "hidden": true})),
                ..ModelPatch::default()
            },
        )
        .await?;
    assert_eq!(off.version_id.as_deref(), Some(first.as_str()));
    assert!(!off.is_active);
    let changed = models
        .update(
            "helper",
            "u2",
            ModelPatch {
                params: Some(json!({"temperature": 0.9})),
                ..ModelPatch::default()
            },
        )
        .await?;
    let second = changed.version_id.clone().expect("second");
    assert_ne!(first, second);
    let versions = models.versions("helper", PageRequest::default()).await?;
    assert_eq!(versions.total, 2);
    assert_eq!(
        versions.items[0].snapshot["params"],
        json!({"temperature": 0.9})
    );
    assert_eq!(versions.items[0].parent_id.as_deref(), Some(first.as_str()));
    let restored = models.restore("helper", &first).await?;
    assert_eq!(restored.params, Some(json!({"temperature": 0.2})));
    assert_eq!(
        restored.meta.as_ref().and_then(|m| m.get("hidden")),
        Some(&json!(true))
    );
    assert!(!restored.is_active);
    models.delete("helper").await?;
    assert_kind!(models.get("helper").await, NotFound);
    assert_eq!(
        models
            .history()
            .list("helper", PageRequest::default())
            .await?
            .total,
        0
    );
    Ok(())
}

/// The model search lists presets the viewer owns or was granted, never base models.
pub async fn model_search_lists_accessible_presets(store: &Store) -> Result<()> {
    let models = workspace(store)?.models();
    models.create(model("base", None, "Base")).await?;
    models.create(model("mine", Some("base"), "Mine")).await?;
    let mut shared = model("shared", Some("base"), "Shared");
    shared.user_id = "u2".into();
    shared.access_grants = vec![Grant::public_read()];
    models.create(shared).await?;
    let mut hidden = model("hidden", Some("base"), "Hidden");
    hidden.user_id = "u2".into();
    models.create(hidden).await?;
    let page = models.search(&Search::for_user("u1")).await?;
    let mut ids: Vec<_> = page.items.into_iter().map(|m| m.id).collect();
    ids.sort();
    assert_eq!(ids, vec!["mine", "shared"]);
    assert_eq!(
        models
            .search(&Search::for_user("u3").permission(Permission::Write))
            .await?
            .total,
        0
    );
    Ok(())
}

/// A tagged model search matches `meta.tags` names (case ignored); the tag list is sorted.
pub async fn model_tags_come_from_meta(store: &Store) -> Result<()> {
    let models = workspace(store)?.models();
    let mut a = model("a", Some("base"), "A");
    a.meta = Some(json!({"tags": [{"name": "Coding"}, {"name": "fast"}]}));
    models.create(a).await?;
    let mut b = model("b", Some("base"), "B");
    b.meta = Some(json!({"tags": ["coding"]}));
    models.create(b).await?;
    models.create(model("c", Some("base"), "C")).await?;
    let found = models.search(&Search::for_user("u1").tag("coding")).await?;
    assert_eq!(found.total, 2);
    let viewer = chatstore_core::models::Viewer::User("u1".into());
    assert_eq!(
        models.tags(&viewer).await?,
        vec!["Coding", "coding", "fast"]
    );
    Ok(())
}
