//! `chatstore inspect`: a read-only overview of a database (an Open WebUI one included):
//! schema version, row counts, and each user's tags with their chat counts.

use chatstore_core::{PageRequest, Result};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::json;

use crate::open;

/// Opens `url` read-only and renders the overview, as tables or as JSON.
pub async fn run(url: &str, as_json: bool) -> Result<String> {
    use std::fmt::Write as _;
    let mut out = String::new();
    let sql = open::open_existing_read_only(url).await?;
    let version = sql.schema_version().await?;
    let counts = sql.counts().await?;
    let store = sql.store();
    let users = store.users.list(PageRequest::default()).await?.items;
    let mut per_user = Vec::with_capacity(users.len());
    for user in &users {
        let usage = store.tags.usage(&user.id).await?;
        per_user.push((user, usage));
    }
    sql.close().await;
    if as_json {
        let users_json: Vec<_> = per_user
            .iter()
            .map(|(user, usage)| {
                json!({
                    "id": user.id,
                    "email": user.email,
                    "tags": usage.iter().map(|u| json!({"id": u.tag.id, "name": u.tag.name, "chats": u.chats})).collect::<Vec<_>>(),
                })
            })
            .collect();
        let doc = json!({
            "database": open::describe(url),
            "schema_version": version,
            "counts": {
                "users": counts.users,
                "chats": counts.chats,
                "messages": counts.messages,
                "tags": counts.tags,
                "files": counts.files,
            },
            "users": users_json,
        });
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&doc).unwrap_or_default()
        );
        return Ok(out);
    }
    let _ = writeln!(out, "{}", open::describe(url));
    let _ = writeln!(out, "schema version (alembic): {version}\n");
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_header(["users", "chats", "messages", "tags", "files"]);
    t.add_row([
        counts.users.to_string(),
        counts.chats.to_string(),
        counts.messages.to_string(),
        counts.tags.to_string(),
        counts.files.to_string(),
    ]);
    let _ = writeln!(out, "{t}\n");
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_header(["user", "tag", "chats"]);
    for (user, usage) in &per_user {
        if usage.is_empty() {
            t.add_row([user.email.clone(), "(no tags)".to_owned(), String::new()]);
        }
        for u in usage {
            t.add_row([user.email.clone(), u.tag.name.clone(), u.chats.to_string()]);
        }
    }
    let _ = writeln!(out, "{t}");
    Ok(out)
}
