//! Contracts of prompts: unique commands, a version per change, restore, search.

use chatstore_core::models::{Grant, NewPrompt, Permission, PromptPatch, Search};
use chatstore_core::{PageRequest, Result, Store};
use serde_json::json;

use crate::assert_kind;
use crate::fixtures::T0;
use crate::folders::workspace;

fn prompt(id: &str, command: &str, name: &str) -> NewPrompt {
    NewPrompt {
        id: Some(id.to_owned()),
        created_at: Some(T0),
        tags: vec!["writing".into()],
        ..NewPrompt::new("u1", command, name, format!("Please {name}"))
    }
}

/// A prompt is found by id and by its command; a taken command is a `Conflict`.
pub async fn prompts_are_addressed_by_unique_commands(store: &Store) -> Result<()> {
    let prompts = workspace(store)?.prompts();
    let made = prompts
        .create(prompt("p1", "/summarize", "Summarize"))
        .await?;
    assert!(made.is_active);
    assert_eq!(made.tags, Some(json!(["writing"])));
    assert_eq!(prompts.get("p1").await?, made);
    assert_eq!(prompts.by_command("/summarize").await?, made);
    assert_kind!(prompts.by_command("/nope").await, NotFound);
    assert_kind!(
        prompts.create(prompt("p2", "/summarize", "Other")).await,
        Conflict
    );
    assert_kind!(prompts.get("p2").await, NotFound);
    assert_kind!(
        prompts.create(prompt("p3", "two words", "Bad")).await,
        InvalidInput
    );
    prompts
        .create(prompt("p4", "/translate", "Translate"))
        .await?;
    assert_kind!(
        prompts
            .update(
                "p4",
                "u1",
                PromptPatch {
                    command: Some("/summarize".into()),
                    ..PromptPatch::default()
                }
            )
            .await,
        Conflict
    );
    assert_eq!(
        prompts.get("p4").await?.command.as_deref(),
        Some("/translate")
    );
    Ok(())
}

/// Creating records the first version; every change records a new current version whose
/// parent is the previous one; a save that changes nothing records none.
pub async fn every_change_records_a_version(store: &Store) -> Result<()> {
    let prompts = workspace(store)?.prompts();
    let made = prompts.create(prompt("p1", "/fix", "Fix")).await?;
    let first = made.version_id.clone().expect("a first version");
    let changed = prompts
        .update(
            "p1",
            "u2",
            PromptPatch {
                content: Some("Fix it all".into()),
                commit_message: Some("broader".into()),
                ..PromptPatch::default()
            },
        )
        .await?;
    let second = changed.version_id.clone().expect("a second version");
    assert_ne!(first, second);
    let same = prompts.update("p1", "u2", PromptPatch::default()).await?;
    assert_eq!(same.version_id.as_deref(), Some(second.as_str()));
    let versions = prompts.versions("p1", PageRequest::default()).await?;
    assert_eq!(versions.total, 2);
    let newest = &versions.items[0];
    assert_eq!(newest.id, second);
    assert_eq!(newest.parent_id.as_deref(), Some(first.as_str()));
    assert_eq!(newest.user_id, "u2");
    assert_eq!(newest.commit_message.as_deref(), Some("broader"));
    assert_eq!(newest.snapshot["content"], json!("Fix it all"));
    assert_eq!(versions.items[1].snapshot["content"], json!("Please Fix"));
    Ok(())
}

/// Restoring a version copies its content back and makes it current; the current version
/// cannot be deleted, another can (its children take its parent).
pub async fn versions_restore_and_delete(store: &Store) -> Result<()> {
    let prompts = workspace(store)?.prompts();
    let made = prompts.create(prompt("p1", "/fix", "Fix")).await?;
    let first = made.version_id.clone().expect("first");
    let second = prompts
        .update(
            "p1",
            "u1",
            PromptPatch {
                content: Some("v2".into()),
                ..PromptPatch::default()
            },
        )
        .await?
        .version_id
        .expect("second");
    let restored = prompts.restore("p1", &first).await?;
    assert_eq!(restored.content, "Please Fix");
    assert_eq!(restored.version_id.as_deref(), Some(first.as_str()));
    assert_kind!(prompts.delete_version("p1", &first).await, InvalidInput);
    prompts.delete_version("p1", &second).await?;
    assert_eq!(
        prompts.versions("p1", PageRequest::default()).await?.total,
        1
    );
    assert_kind!(prompts.restore("p1", &second).await, NotFound);
    prompts.delete_by_command("/fix").await?;
    assert_kind!(prompts.get("p1").await, NotFound);
    assert_eq!(
        prompts
            .history()
            .list("p1", PageRequest::default())
            .await?
            .total,
        0
    );
    Ok(())
}

/// A prompt search matches name, command or content and follows grants.
pub async fn prompt_search_matches_text_and_access(store: &Store) -> Result<()> {
    let prompts = workspace(store)?.prompts();
    prompts.create(prompt("p1", "/alpha", "First")).await?;
    let mut other = prompt("p2", "/beta", "Second");
    other.user_id = "u2".into();
    other.access_grants = vec![Grant::user("u1", Permission::Read)];
    prompts.create(other).await?;
    let mut hidden = prompt("p3", "/gamma", "Third");
    hidden.user_id = "u2".into();
    prompts.create(hidden).await?;
    assert_eq!(prompts.search(&Search::for_user("u1")).await?.total, 2);
    assert_eq!(
        prompts
            .search(&Search::for_user("u1").text("/BET"))
            .await?
            .items[0]
            .id,
        "p2"
    );
    assert_eq!(
        prompts
            .search(&Search::for_user("u1").text("please third"))
            .await?
            .total,
        0
    );
    assert_eq!(
        prompts
            .search(&Search::default().text("please third"))
            .await?
            .total,
        1
    );
    Ok(())
}

/// A tagged search keeps prompts carrying the tag (case ignored) with a total over them; the
/// tag list holds the distinct tags of the prompts the viewer may read.
pub async fn prompt_tags_filter_searches_and_list(store: &Store) -> Result<()> {
    let prompts = workspace(store)?.prompts();
    let mut a = prompt("p1", "/a", "A");
    a.tags = vec!["Writing".into(), "mail".into()];
    prompts.create(a).await?;
    let mut b = prompt("p2", "/b", "B");
    b.tags = vec!["writing".into()];
    prompts.create(b).await?;
    let mut c = prompt("p3", "/c", "C");
    c.user_id = "u2".into();
    c.tags = vec!["secret".into()];
    prompts.create(c).await?;
    let page = prompts
        .search(
            &Search::for_user("u1")
                .tag("WRITING")
                .page(PageRequest::new(1, 5)),
        )
        .await?;
    assert_eq!(page.total, 2);
    assert_eq!(page.items.len(), 1);
    assert_eq!(
        prompts
            .search(&Search::for_user("u1").tag("secret"))
            .await?
            .total,
        0
    );
    let viewer = chatstore_core::models::Viewer::User("u1".into());
    assert_eq!(
        prompts.tags(&viewer).await?,
        vec!["Writing", "mail", "writing"]
    );
    Ok(())
}
