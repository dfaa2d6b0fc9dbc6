//! The PocketBase schema of chatstore, enforced at start-up.
//!
//! Six base collections (`owui_users`, `owui_chats`, `owui_messages`, `owui_tags`,
//! `owui_files`, and `owui_changes` for the change feed, each optionally prefixed) with stable
//! collection and field ids, brought up to date through `PUT /api/collections/import` with
//! `deleteMissing: false` (collections and fields are added or updated, nothing is deleted).
//! The same schema ships as the JS migrations in `pb_migrations/` for operators who run
//! `pocketbase migrate` (the newest, `1764892800_chatstore_message_key.js`, holds the whole
//! current schema of the aggregates; a test keeps it identical to this one). The collections of Open WebUI's
//! remaining tables ([`crate::rows::collections`], `owui_rows_<table>`) go in the same import.

use chatstore_core::transfer::MAX_STREAMED_FILE_BYTES;
use chatstore_core::{Error, Result};
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{Client, ListQuery, MAX_PER_PAGE};
use crate::error::Subject;
use crate::filter;

/// The version of the chatstore routes in `pb_hooks/chatstore.pb.js` this adapter needs.
pub const HOOKS_VERSION: u64 = 8;

/// PocketBase: the id of the `id` field every base collection has; reusing it makes the import
/// update the existing field instead of adding a second primary key.
const ID_FIELD_ID: &str = "text3208210256";
/// Ids: anything but `/` and `\` (PocketBase forbids both anyway); chatstore's own validation
/// already refuses empty ids, whitespace and control characters.
const ID_PATTERN: &str = r"^[^/\\]+$";
/// Text without a practical limit (PocketBase: `max: 0` would mean 5000 characters).
const TEXT_MAX: u64 = 2_147_483_647;
/// JSON fields (PocketBase: `maxSize: 0` would mean 1 MiB).
const JSON_MAX: u64 = 268_435_456;
/// Most tags a chat can carry.
const MAX_TAGS_PER_CHAT: u64 = 100_000;

/// The batch settings chatstore needs: bulk writes of up to this many records per batch.
pub const BATCH_MAX_REQUESTS: u64 = 1000;
/// Requests one chat import may send as a single batch (its chats, their messages and the tags
/// they add: a migration batch of 500 chats with a few dozen messages each). The server's batch
/// limit is raised to it at start-up; an import larger than this goes through the tx route.
pub const CHAT_BATCH_MAX_REQUESTS: u64 = 20_000;
/// Seconds a batch may run (PocketBase's default of 3 s is easy to hit).
pub const BATCH_TIMEOUT_SECS: u64 = 60;

/// The names of chatstore's collections on one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collections {
    /// Users.
    pub users: String,
    /// Chats.
    pub chats: String,
    /// Messages.
    pub messages: String,
    /// Tags.
    pub tags: String,
    /// Files.
    pub files: String,
    /// Change records of the change feed (deletions and tag changes, written by
    /// `pb_hooks/chatstore.pb.js`; see [`crate::changes`]).
    pub changes: String,
    /// The prefix (of the row collections too, see [`Collections::rows`]).
    prefix: String,
}

impl Collections {
    /// The collection names with `prefix` (letters, digits and `_`; may be empty).
    pub fn new(prefix: &str) -> Result<Self> {
        if prefix.len() > 40
            || !prefix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(Error::invalid(format!(
                "PocketBase collection prefix {prefix:?} must be at most 40 characters of a-z, 0-9 and _"
            )));
        }
        Ok(Collections {
            users: format!("{prefix}owui_users"),
            chats: format!("{prefix}owui_chats"),
            messages: format!("{prefix}owui_messages"),
            tags: format!("{prefix}owui_tags"),
            files: format!("{prefix}owui_files"),
            changes: format!("{prefix}owui_changes"),
            prefix: prefix.to_owned(),
        })
    }

    /// The collection of one of Open WebUI's remaining tables: `owui_rows_<table>`, prefixed
    /// (see [`crate::rows`]).
    pub fn rows(&self, table: &chatstore_core::rows::Table) -> String {
        format!("{}owui_rows_{}", self.prefix, table.name)
    }

    /// All names, in the order they are created.
    pub fn all(&self) -> [&str; 5] {
        [
            &self.users,
            &self.tags,
            &self.chats,
            &self.messages,
            &self.files,
        ]
    }
}

/// The stable collection id of a collection name.
pub fn collection_id(name: &str) -> String {
    format!("pbc_{name}")
}

pub(crate) fn id_field(max: u64) -> Value {
    json!({"id": ID_FIELD_ID, "name": "id", "type": "text", "primaryKey": true, "system": true,
           "required": true, "min": 1, "max": max, "pattern": ID_PATTERN,
           "autogeneratePattern": "[a-z0-9]{15}", "hidden": false, "presentable": false})
}

pub(crate) fn text_field(name: &str, max: u64) -> Value {
    json!({"id": format!("cs_{name}"), "name": name, "type": "text", "min": 0, "max": max,
           "pattern": "", "autogeneratePattern": "", "required": false, "primaryKey": false,
           "system": false, "hidden": false, "presentable": false})
}

fn number(name: &str) -> Value {
    json!({"id": format!("cs_{name}"), "name": name, "type": "number", "onlyInt": false,
           "min": null, "max": null, "required": false, "system": false, "hidden": false,
           "presentable": false})
}

pub(crate) fn bool_field(name: &str) -> Value {
    json!({"id": format!("cs_{name}"), "name": name, "type": "bool", "required": false,
           "system": false, "hidden": false, "presentable": false})
}

pub(crate) fn json_field(name: &str) -> Value {
    json!({"id": format!("cs_{name}"), "name": name, "type": "json", "maxSize": JSON_MAX,
           "required": false, "system": false, "hidden": false, "presentable": false})
}

fn relation(name: &str, target: &str, max_select: u64) -> Value {
    json!({"id": format!("cs_{name}"), "name": name, "type": "relation",
           "collectionId": collection_id(target), "cascadeDelete": false, "minSelect": 0,
           "maxSelect": max_select, "required": false, "system": false, "hidden": false,
           "presentable": false})
}

fn file(name: &str) -> Value {
    json!({"id": format!("cs_{name}"), "name": name, "type": "file", "maxSelect": 1,
           "maxSize": MAX_STREAMED_FILE_BYTES, "mimeTypes": [], "thumbs": [], "protected": true,
           "required": false, "system": false, "hidden": false, "presentable": false})
}

pub(crate) fn collection(name: &str, fields: Vec<Value>, indexes: Vec<String>) -> Value {
    let mut all = vec![format!(
        "CREATE UNIQUE INDEX idx_{name}_id_nocase ON {name} (id COLLATE NOCASE)"
    )];
    all.extend(indexes);
    json!({"id": collection_id(name), "name": name, "type": "base", "system": false,
           "listRule": null, "viewRule": null, "createRule": null, "updateRule": null,
           "deleteRule": null, "fields": fields, "indexes": all})
}

/// The collections of the schema, as `PUT /api/collections/import` takes them.
///
/// PocketBase: every collection has a custom id (Open WebUI uuids) and therefore the
/// `(id COLLATE NOCASE)` unique index; without it every insert scans the table.
pub fn collections_json(c: &Collections) -> Vec<Value> {
    let (u, t, ch, m, f, x) = (
        &c.users,
        &c.tags,
        &c.chats,
        &c.messages,
        &c.files,
        &c.changes,
    );
    vec![
        collection(
            u,
            vec![
                id_field(255),
                text_field("email", 255),
                text_field("email_key", 255),
                text_field("name", TEXT_MAX),
                text_field("role", 255),
                text_field("profile_image_url", TEXT_MAX),
                json_field("info"),
                json_field("settings"),
                number("created_at"),
                number("updated_at"),
                number("last_active_at"),
            ],
            vec![
                format!("CREATE UNIQUE INDEX idx_{u}_email_key ON {u} (email_key)"),
                format!("CREATE INDEX idx_{u}_created ON {u} (created_at)"),
                format!("CREATE INDEX idx_{u}_updated ON {u} (updated_at)"),
            ],
        ),
        collection(
            t,
            vec![
                id_field(64),
                text_field("user_id", 255),
                text_field("tag_id", TEXT_MAX),
                text_field("name", TEXT_MAX),
                json_field("meta"),
            ],
            vec![format!(
                "CREATE UNIQUE INDEX idx_{t}_user_tag ON {t} (user_id, tag_id)"
            )],
        ),
        collection(
            ch,
            vec![
                id_field(255),
                text_field("user_id", 255),
                text_field("title", TEXT_MAX),
                text_field("title_lower", TEXT_MAX),
                json_field("chat"),
                json_field("meta"),
                relation("tags", t, MAX_TAGS_PER_CHAT),
                bool_field("archived"),
                bool_field("pinned"),
                bool_field("internal"),
                text_field("folder_id", 255),
                text_field("share_id", 255),
                number("created_at"),
                number("updated_at"),
                number("version"),
            ],
            vec![
                format!(
                    "CREATE UNIQUE INDEX idx_{ch}_share ON {ch} (share_id) WHERE share_id != ''"
                ),
                format!("CREATE INDEX idx_{ch}_user_updated ON {ch} (user_id, updated_at)"),
                // Lists: a user's chats in list order with everything a list filters by. The
                // table's columns are in name order, so without it every list, count and
                // filter read past each chat's blob (`chat`) to reach `user_id` and `internal`.
                format!(
                    "CREATE INDEX idx_{ch}_user_list ON {ch} (user_id, internal, archived, \
                     updated_at DESC, id, pinned, folder_id, title_lower, tags)"
                ),
            ],
        ),
        collection(
            m,
            vec![
                id_field(64),
                text_field("chat_id", 255),
                text_field("msg_id", 255),
                text_field("key", 600),
                number("created_at"),
                json_field("doc"),
            ],
            vec![
                format!("CREATE INDEX idx_{m}_chat ON {m} (chat_id, created_at)"),
                // Open WebUI's row id `"{chat_id}-{id}"`: unique, as SQL's primary key (two
                // messages whose ids hold `-` can share it: the second is a `Conflict`).
                format!("CREATE UNIQUE INDEX idx_{m}_key ON {m} (key)"),
                format!("CREATE INDEX idx_{m}_created ON {m} (created_at)"),
            ],
        ),
        collection(
            f,
            vec![
                id_field(255),
                text_field("user_id", 255),
                text_field("filename", TEXT_MAX),
                text_field("sha256", 64),
                number("size"),
                file("blob"),
                json_field("doc"),
                number("created_at"),
                number("updated_at"),
            ],
            vec![
                format!("CREATE INDEX idx_{f}_user_updated ON {f} (user_id, updated_at)"),
                format!("CREATE INDEX idx_{f}_updated ON {f} (updated_at)"),
            ],
        ),
        collection(
            x,
            vec![
                id_field(64),
                text_field("user_id", 255),
                number("at"),
                json_field("event"),
            ],
            vec![
                format!("CREATE INDEX idx_{x}_at ON {x} (at)"),
                format!("CREATE INDEX idx_{x}_user_at ON {x} (user_id, at)"),
            ],
        ),
    ]
}

/// Every collection of the schema: the aggregates' ([`collections_json`]) and those of Open
/// WebUI's remaining tables ([`crate::rows::collections_json`]), in one import.
pub fn all_collections_json(c: &Collections) -> Vec<Value> {
    let mut all = collections_json(c);
    all.extend(crate::rows::collections_json(c));
    all
}

/// Why the schema could not be brought up to date. A server that could not be reached stays
/// `Unavailable` (a caller may open again once it is back); anything else is `Backend`.
fn startup_error(what: &str, source: Error) -> Error {
    let message =
        format!("PocketBase schema of chatstore cannot be brought up to date: {what}: {source}");
    if source.is_retryable() {
        Error::unavailable(message, source)
    } else {
        Error::backend(message, source)
    }
}

/// Whether the import failed on making the messages' key unique: an older schema let two
/// messages of different chats share Open WebUI's row id `"{chat_id}-{id}"`.
fn refused_for_shared_message_keys(e: &Error, c: &Collections) -> bool {
    let text = e.to_string();
    text.contains("UNIQUE constraint failed") && text.contains(&format!("{}.key", c.messages))
}

/// The start-up error naming messages that share a key (up to five keys), read by a walk of
/// the messages by key; `None` when the walk fails or finds none (the import's own error then
/// stands).
async fn shared_message_keys(client: &Client, c: &Collections) -> Option<Error> {
    const SHOWN: usize = 5;
    let subject = Subject::new("message", "");
    let text = |r: &Value, k: &str| r[k].as_str().unwrap_or_default().to_owned();
    let mut shared: Vec<(String, Vec<String>)> = Vec::new();
    let mut last: Option<(String, String)> = None;
    let mut previous: Option<Value> = None;
    loop {
        let filter = match &last {
            Some((key, id)) => format!(
                "key > {k} || (key = {k} && id > {i})",
                k = filter::literal(key),
                i = filter::literal(id)
            ),
            None => String::new(),
        };
        let q = ListQuery {
            filter,
            sort: "key,id".to_owned(),
            fields: Some("id,key,chat_id,msg_id"),
            skip_total: true,
            ..ListQuery::default()
        };
        let page = client
            .first(&c.messages, &q, MAX_PER_PAGE, subject)
            .await
            .ok()?;
        let full = page.len() as u64 == MAX_PER_PAGE;
        for r in page {
            if let Some(p) = previous.as_ref().filter(|p| p["key"] == r["key"]) {
                let describe = |r: &Value| {
                    format!(
                        "record {:?} (chat {:?}, message {:?})",
                        text(r, "id"),
                        text(r, "chat_id"),
                        text(r, "msg_id")
                    )
                };
                match shared.last_mut() {
                    Some((key, records)) if *key == text(&r, "key") => records.push(describe(&r)),
                    _ => shared.push((text(&r, "key"), vec![describe(p), describe(&r)])),
                }
            }
            last = Some((text(&r, "key"), text(&r, "id")));
            previous = Some(r);
        }
        if !full || shared.len() > SHOWN {
            break;
        }
    }
    if shared.is_empty() {
        return None;
    }
    let listed: Vec<String> = shared
        .iter()
        .take(SHOWN)
        .map(|(key, records)| format!("{key:?}: {}", records.join(", ")))
        .collect();
    let more = if shared.len() > SHOWN {
        "; and more"
    } else {
        ""
    };
    Some(Error::backend_msg(format!(
        "PocketBase schema of chatstore cannot be brought up to date: messages of different \
         chats in {} share Open WebUI's row id \"{{chat_id}}-{{id}}\", which chatstore now keeps \
         unique as SQL does: {}{more}. Keep one message of each key (delete the others' records \
         in PocketBase's dashboard or with DELETE /api/collections/{}/records/ID, after saving \
         what they hold) and start again",
        c.messages,
        listed.join("; "),
        c.messages
    )))
}

/// Serialises schema changes made by this process. PocketBase reloads its cache of
/// collections after every schema change; two changes at once can leave the cache without
/// the collections of one of them (seen with parallel tests: "Missing collection context").
static SCHEMA_CHANGES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Creates or updates the collections (never deleting a collection, field or record), checks
/// that every field has the type chatstore needs, enables and sizes the batch API, and checks
/// that the chatstore routes of `pb_hooks/` are served.
pub async fn ensure(client: &Client, c: &Collections) -> Result<()> {
    // First: an adapter of another version (an older binary restarting during an upgrade)
    // must not import its own schema before it refuses, as the import replaces every
    // collection's index list and field limits with its own.
    check_hooks(client).await?;
    let subject = Subject::new("schema", "");
    let wanted = all_collections_json(c);
    let body = json!({"collections": wanted, "deleteMissing": false});
    {
        let _serial = SCHEMA_CHANGES.lock().await;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let imported = client
                .send(
                    Method::PUT,
                    "/api/collections/import",
                    &[],
                    Some(&body),
                    subject,
                    true,
                )
                .await;
            match imported {
                Ok(_) => {}
                // PocketBase: an import racing with another process's schema change can be
                // refused once; a schema that cannot take ours is refused every time.
                Err(Error::InvalidInput { .. }) if attempt < 3 => {
                    tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
                    continue;
                }
                Err(e) if refused_for_shared_message_keys(&e, c) => {
                    return Err(shared_message_keys(client, c).await.unwrap_or_else(|| {
                        startup_error("the collections import was refused", e)
                    }));
                }
                Err(e) => return Err(startup_error("the collections import was refused", e)),
            }
            match check_collections(client, &wanted).await {
                // PocketBase: a concurrent schema change by another process can leave a stale
                // collections cache; importing again reloads it.
                Err(Error::NotFound { .. }) if attempt < 5 => continue,
                other => break other?,
            }
        }
    }
    ensure_batch(client).await
}

/// Checks, changing nothing, that the server has chatstore's collections with the field types
/// chatstore needs and serves the chatstore routes (for read-only opening). A server without
/// the collections is `InvalidInput` saying so.
pub async fn check(client: &Client, c: &Collections) -> Result<()> {
    match check_collections(client, &all_collections_json(c)).await {
        Ok(()) => {}
        Err(e @ Error::NotFound { .. }) => {
            return Err(Error::invalid(format!(
                "this PocketBase server lacks chatstore's collections ({:?}, ...: {e}); \
                 read-only opening creates nothing: open it once writable, or apply \
                 adapter-pocketbase/pb_migrations, to create them",
                c.users
            )));
        }
        Err(e) => return Err(e),
    }
    check_hooks(client).await
}

/// Reads every wanted collection back (from the collections API and the records API, which
/// uses PocketBase's cache) and checks its fields.
async fn check_collections(client: &Client, wanted: &[Value]) -> Result<()> {
    for want in wanted {
        check_collection(client, want).await?;
    }
    Ok(())
}

async fn check_collection(client: &Client, want: &Value) -> Result<()> {
    let name = want["name"].as_str().unwrap_or_default();
    let subject = Subject::new("collection", name);
    let have = client
        .send(
            Method::GET,
            &format!("/api/collections/{name}"),
            &[],
            None,
            subject,
            true,
        )
        .await?;
    check_fields(name, want, &have)?;
    client
        .send(
            Method::GET,
            &format!("/api/collections/{name}/records"),
            &[("perPage", "1".to_owned()), ("skipTotal", "1".to_owned())],
            None,
            subject,
            true,
        )
        .await?;
    Ok(())
}

/// Checks that `have` holds every field of `want` with the same type.
fn check_fields(name: &str, want: &Value, have: &Value) -> Result<()> {
    let fields = |v: &Value| {
        v.get("fields")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let have_fields = fields(have);
    for field in fields(want) {
        let fname = field["name"].as_str().unwrap_or_default();
        let ftype = field["type"].as_str().unwrap_or_default();
        match have_fields.iter().find(|f| f["name"] == fname) {
            Some(f) if f["type"] == ftype => {}
            Some(f) => {
                return Err(Error::backend_msg(format!(
                    "PocketBase schema of chatstore is not up to date: field {name}.{fname} is {}, \
                     chatstore needs {ftype}; fix the collection by hand or restore it from pb_migrations/",
                    f["type"]
                )));
            }
            None => {
                return Err(Error::backend_msg(format!(
                    "PocketBase schema of chatstore is not up to date: collection {name} has no field {fname}"
                )));
            }
        }
    }
    Ok(())
}

async fn ensure_batch(client: &Client) -> Result<()> {
    let subject = Subject::new("settings", "");
    let settings = client
        .send(Method::GET, "/api/settings", &[], None, subject, true)
        .await
        .map_err(|e| startup_error("reading the settings", e))?;
    let batch = &settings["batch"];
    let enabled = batch["enabled"].as_bool().unwrap_or(false);
    let max_requests = batch["maxRequests"].as_u64().unwrap_or(0);
    let timeout = batch["timeout"].as_u64().unwrap_or(0);
    // Kept as the operator set it; the client sends batches that fit it.
    client.set_server_batch_body_limit(batch["maxBodySize"].as_u64().unwrap_or(0));
    let wanted = BATCH_MAX_REQUESTS.max(CHAT_BATCH_MAX_REQUESTS);
    if enabled && max_requests >= wanted && timeout >= BATCH_TIMEOUT_SECS {
        return Ok(());
    }
    let body = json!({"batch": {
        "enabled": true,
        "maxRequests": max_requests.max(wanted),
        "timeout": timeout.max(BATCH_TIMEOUT_SECS),
        "maxBodySize": batch["maxBodySize"].as_u64().unwrap_or(0),
    }});
    client
        .send(
            Method::PATCH,
            "/api/settings",
            &[],
            Some(&body),
            subject,
            true,
        )
        .await
        .map_err(|e| startup_error("enabling the batch API", e))?;
    Ok(())
}

async fn check_hooks(client: &Client) -> Result<()> {
    let subject = Subject::new("chatstore routes", "");
    let info = client
        .send(Method::GET, "/api/chatstore/info", &[], None, subject, true)
        .await
        .map_err(|e| {
            if e.is_retryable() {
                // The server went away meanwhile: say so, not that it lacks the routes.
                return e;
            }
            Error::backend(
                "PocketBase does not serve the chatstore routes: start it with \
                 --hooksDir pointing at adapter-pocketbase/pb_hooks (or copy every file of \
                 that folder into its pb_hooks folder)"
                    .to_owned(),
                e,
            )
        })?;
    let version = info["version"].as_u64().unwrap_or(0);
    if version != HOOKS_VERSION {
        return Err(Error::backend_msg(format!(
            "PocketBase serves chatstore routes of version {version}, this adapter needs \
             {HOOKS_VERSION}: update pb_hooks/chatstore.pb.js on the server"
        )));
    }
    Ok(())
}

/// Deletes the collections (for throwaway test stores); missing ones are skipped.
pub async fn drop_collections(client: &Client, c: &Collections) -> Result<()> {
    let _serial = SCHEMA_CHANGES.lock().await;
    let rows = chatstore_core::rows::ALL_TABLES
        .iter()
        .rev()
        .map(|t| c.rows(t));
    let aggregates = [
        &c.changes,
        &c.files,
        &c.messages,
        &c.chats,
        &c.tags,
        &c.users,
    ]
    .into_iter()
    .cloned();
    for name in rows.chain(aggregates) {
        match client
            .send(
                Method::DELETE,
                &format!("/api/collections/{name}"),
                &[],
                None,
                Subject::new("collection", &name),
                false,
            )
            .await
        {
            Ok(_) | Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that went away while the schema was brought up keeps the error retryable (a
    /// replica starting during a PocketBase restart opens again), with what was being done in
    /// its message; a refusal stays a `Backend` error.
    #[test]
    fn a_schema_step_cut_off_by_the_server_stays_unavailable() {
        let down = startup_error(
            "the collections import was refused",
            Error::unavailable("PocketBase unreachable", std::io::Error::other("refused")),
        );
        assert!(down.is_retryable(), "{down}");
        assert!(down.to_string().contains("collections import"), "{down}");
        let refused = startup_error(
            "the collections import was refused",
            Error::invalid("field type mismatch"),
        );
        assert_eq!(
            refused.kind(),
            chatstore_core::ErrorKind::Backend,
            "{refused}"
        );
    }

    /// The newest aggregate migration in pb_migrations/ holds exactly the schema enforced at boot
    /// (older ones stay as shipped: PocketBase applies each file once).
    #[test]
    fn migration_holds_the_boot_schema() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/pb_migrations/1764892800_chatstore_message_key.js"
        );
        let expected = serde_json::to_string_pretty(&collections_json(
            &Collections::new("").expect("empty prefix"),
        ))
        .expect("schema serialises");
        if std::env::var_os("CHATSTORE_WRITE_MIGRATION").is_some() {
            let js = migration_js(&expected);
            std::fs::write(path, js).expect("write migration");
        }
        let js = std::fs::read_to_string(path).expect("migration file exists");
        let start =
            js.find("/* schema:begin */").expect("begin marker") + "/* schema:begin */".len();
        let end = js.find("/* schema:end */").expect("end marker");
        let shipped: Value = serde_json::from_str(js[start..end].trim()).expect("schema is JSON");
        let expected: Value = serde_json::from_str(&expected).expect("json");
        assert_eq!(
            shipped, expected,
            "run with CHATSTORE_WRITE_MIGRATION=1 to regenerate"
        );
    }

    fn migration_js(schema: &str) -> String {
        format!(
            "/// <reference path=\"../pb_data/types.d.ts\" />\n\
// chatstore schema (generated from adapter-pocketbase/src/schema.rs by\n\
// `CHATSTORE_WRITE_MIGRATION=1 cargo test -p chatstore-pocketbase migration_holds_the_boot_schema`).\n\
// The adapter enforces the same schema at start-up; this migration is for operators who run\n\
// `pocketbase migrate up --migrationsDir adapter-pocketbase/pb_migrations`.\n\
migrate((app) => {{\n\
  const collections = /* schema:begin */ {schema} /* schema:end */;\n\
  app.importCollections(collections, false);\n\
  const settings = app.settings();\n\
  settings.batch.enabled = true;\n\
  settings.batch.maxRequests = Math.max(settings.batch.maxRequests, {BATCH_MAX_REQUESTS});\n\
  settings.batch.timeout = Math.max(settings.batch.timeout, {BATCH_TIMEOUT_SECS});\n\
  app.save(settings);\n\
}}, (app) => {{\n\
  for (const name of [\"owui_files\", \"owui_messages\", \"owui_chats\", \"owui_tags\", \"owui_users\"]) {{\n\
    try {{ app.delete(app.findCollectionByNameOrId(name)); }} catch (_) {{}}\n\
  }}\n\
}});\n"
        )
    }
}
