//! `chatstore inspect`: a read-only overview of a store (an Open WebUI database included):
//! schema version, row counts, and each user's tags with their chat counts.

use chatstore_core::{PageRequest, Result, Store, TagKey};
use chatstore_registry::{OpenOptions, StoreUrl, Target};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::json;

use crate::open;

/// Records per keyset page when counting a store without a cheap count.
const SCAN_PAGE: u32 = 1000;

/// Records of each aggregate.
struct Counts {
    users: u64,
    chats: u64,
    messages: u64,
    tags: u64,
    files: u64,
}

/// Opens `url` read-only and renders the overview, as tables or as JSON.
pub async fn run(url: &str, as_json: bool) -> Result<String> {
    use std::fmt::Write as _;
    let mut out = String::new();
    // The environment's vector settings as every command reads them: a `VECTOR_DB` naming
    // another store than pgvector without a vector URL is refused here too.
    let options = OpenOptions::for_url_from_env(url, None)?.read_only(true);
    let (version, counts, store) = match StoreUrl::parse(url)?.target() {
        // SQL: Open WebUI's schema revision and COUNT(*) of each table.
        Target::Sqlite { .. } | Target::Postgres { .. } => {
            let sql = options.open_sql_database().await?;
            let version = sql.schema_version().await?;
            let c = sql.counts().await?;
            let counts = Counts {
                users: c.users,
                chats: c.chats,
                messages: c.messages,
                tags: c.tags,
                files: c.files,
            };
            (version, counts, sql.store())
        }
        _ => {
            let store = options.open().await?;
            let counts = count_by_scan(&store).await?;
            (format!("n/a ({})", store.backend_name()), counts, store)
        }
    };
    let users = store.users.list(PageRequest::default()).await?.items;
    let mut per_user = Vec::with_capacity(users.len());
    for user in &users {
        let usage = store.tags.usage(&user.id).await?;
        per_user.push((user, usage));
    }
    drop(store);
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

/// Counts every record by walking each aggregate in keyset pages.
async fn count_by_scan(store: &Store) -> Result<Counts> {
    let id = |id: &String| id.clone();
    Ok(Counts {
        users: count_pages(
            |a| async move { store.users.scan(a.as_deref(), SCAN_PAGE).await },
            |u| id(&u.id),
        )
        .await?,
        chats: count_pages(
            |a| async move { store.chats.scan(a.as_deref(), SCAN_PAGE).await },
            |c| id(&c.id),
        )
        .await?,
        messages: count_pages(
            |a| async move { store.messages.scan(a.as_deref(), SCAN_PAGE).await },
            |m| m.key(),
        )
        .await?,
        tags: count_pages(
            |a| async move { store.tags.scan(a.as_ref(), SCAN_PAGE).await },
            |t| TagKey {
                user_id: t.user_id.clone(),
                id: t.id.clone(),
            },
        )
        .await?,
        files: count_pages(
            |a| async move { store.files.scan(a.as_deref(), SCAN_PAGE).await },
            |f| id(&f.id),
        )
        .await?,
    })
}

/// How many records `next` gives, page after page, each page starting after the key of the
/// previous page's last record.
async fn count_pages<T, K, F, Fut>(mut next: F, key: impl Fn(&T) -> K) -> Result<u64>
where
    F: FnMut(Option<K>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>>>,
{
    let mut total = 0;
    let mut after = None;
    loop {
        let page = next(after.take()).await?;
        total += page.len() as u64;
        match page.last() {
            Some(last) if page.len() == SCAN_PAGE as usize => after = Some(key(last)),
            _ => return Ok(total),
        }
    }
}
