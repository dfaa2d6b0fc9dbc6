//! Contracts of notes: nanosecond times, merges, pins, search.

use chatstore_core::models::{Grant, NewNote, NotePatch, Permission, Search, SortBy};
use chatstore_core::rows::Dir;
use chatstore_core::{Result, Store};
use serde_json::json;

use crate::assert_kind;
use crate::fixtures::obj;
use crate::folders::workspace;

/// 2025-01-01 in nanoseconds.
pub const NS0: i64 = 1_735_689_600_000_000_000;

fn note(user: &str, id: &str, title: &str, ts: i64) -> NewNote {
    NewNote {
        id: Some(id.to_owned()),
        user_id: user.to_owned(),
        title: title.to_owned(),
        data: Some(json!({"content": {"md": format!("# {title}")}})),
        created_at: Some(NS0 + ts),
        ..NewNote::default()
    }
}

/// A note keeps nanosecond times exactly; an update merges `data` and `meta` and moves
/// `updated_at` to now in nanoseconds.
pub async fn notes_keep_nanoseconds_and_merge(store: &Store) -> Result<()> {
    let notes = workspace(store)?.notes();
    let made = notes.create(note("u1", "n1", "Plan", 123_456_789)).await?;
    assert_eq!(made.created_at, Some(NS0 + 123_456_789));
    assert_eq!(notes.get("n1").await?, made);
    let got = notes
        .update(
            "n1",
            NotePatch {
                data: Some(obj(json!({"files": []}))),
                meta: Some(obj(json!({"k": "v"}))),
                ..NotePatch::default()
            },
        )
        .await?;
    assert_eq!(
        got.data,
        Some(json!({"content": {"md": "# Plan"}, "files": []}))
    );
    assert_eq!(got.meta, Some(json!({"k": "v"})));
    assert!(
        got.updated_at.unwrap_or(0) > NS0 + 10_i64.pow(15),
        "nanoseconds"
    );
    assert_eq!(notes.get("n1").await?, got);
    assert_kind!(notes.create(note("u1", "n2", "", 0)).await, InvalidInput);
    Ok(())
}

/// Pins are per user and idempotent; pinned notes list most recently pinned first, only while
/// the user may still read them; deleting a note removes its pins.
pub async fn pins_are_per_user_and_follow_access(store: &Store) -> Result<()> {
    let notes = workspace(store)?.notes();
    notes.create(note("u1", "n1", "One", 0)).await?;
    let mut shared = note("u2", "n2", "Two", 1);
    shared.access_grants = vec![Grant::user("u1", Permission::Read)];
    notes.create(shared).await?;
    notes.create(note("u2", "n3", "Three", 2)).await?;
    notes.set_pinned("u1", "n1", true).await?;
    notes.set_pinned("u1", "n2", true).await?;
    notes.set_pinned("u1", "n2", true).await?;
    notes.set_pinned("u1", "n3", true).await?;
    notes.set_pinned("u2", "n3", true).await?;
    let pinned: Vec<String> = notes
        .pinned("u1", Permission::Read)
        .await?
        .into_iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(pinned.len(), 2, "n3 is not readable by u1: {pinned:?}");
    assert!(pinned.contains(&"n1".to_owned()) && pinned.contains(&"n2".to_owned()));
    notes.set_pinned("u1", "n1", false).await?;
    assert_eq!(notes.pinned("u1", Permission::Read).await?.len(), 1);
    assert_kind!(notes.set_pinned("u1", "ghost", true).await, NotFound);
    notes.delete("n3").await?;
    assert_eq!(notes.pin_records().count(vec![]).await?, 1);
    assert!(notes.can("u1", "n2", Permission::Read).await?);
    assert!(!notes.can("u1", "n2", Permission::Write).await?);
    Ok(())
}

/// A note search matches the title, sorts by title for `Name` and needs the asked permission.
pub async fn note_search_matches_titles(store: &Store) -> Result<()> {
    let notes = workspace(store)?.notes();
    notes.create(note("u1", "n1", "Groceries", 0)).await?;
    notes.create(note("u1", "n2", "groceries list", 1)).await?;
    let mut shared = note("u2", "n3", "Shared groceries", 2);
    shared.access_grants = vec![Grant::user("u1", Permission::Read)];
    notes.create(shared).await?;
    let found = notes
        .search(
            &Search::for_user("u1")
                .text("GROCERIES")
                .sort(SortBy::Name, Dir::Asc),
        )
        .await?;
    let ids: Vec<_> = found.items.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, vec!["n1", "n3", "n2"]);
    let writable = notes
        .search(&Search::for_user("u1").permission(Permission::Write))
        .await?;
    assert_eq!(writable.total, 2);
    Ok(())
}
