//! Re-copying records by key: the state of a record on one store (its absence included) made
//! the state of the other. Every function here is idempotent, so a repair can be replayed any
//! number of times, and it converges whatever the other store held before.
//!
//! A record is read from the source again after it was copied, and copied again if it
//! changed meanwhile ([`settle`]): another process (a replica in `dual`) writing the record to
//! both stores during the copy would otherwise have its write on the target replaced by the
//! older state the copy had read, with nothing logged. A vector collection is read from the
//! source again whole, as it was read for the copy.

use std::collections::BTreeSet;
use std::future::Future;

use chatstore_core::chats::{Chat, ChatPatch, NewChat};
use chatstore_core::files::{FileMeta, NewFile};
use chatstore_core::messages::{Message, NewMessage};
use chatstore_core::rows::tables::{CHANNEL_FILE, CHAT_FILE, KNOWLEDGE_FILE, SHARED_CHAT};
use chatstore_core::rows::{Cond, RowOp, RowQuery, Table};
use chatstore_core::tags::{Tag, TagKey};
use chatstore_core::users::{NewUser, User, UserPatch};
use chatstore_core::{
    ChatQuery, Error, ErrorKind, FileQuery, ModelGroup, PageRequest, Result, Store, VectorItem,
};

use serde_json::Value;

use crate::repair::RepairKey;

/// Items per vector upsert while copying a collection.
const VECTOR_BATCH: usize = 500;
/// Items per page while listing a user's chats or files.
const LIST_PAGE: u64 = 500;
/// Copies of one record, at most, until its source reads the same before and after a copy.
const SETTLE_ROUNDS: usize = 3;

/// Copies the state `read` gives with `apply` until the source reads the same after a copy
/// as before it (at most [`SETTLE_ROUNDS`] copies; then `Conflict`, and the repair stays
/// pending). `what` names the record in that error.
pub(crate) async fn settle<S, R, RF, A, AF>(what: &str, read: R, apply: A) -> Result<()>
where
    S: PartialEq + Clone,
    R: Fn() -> RF,
    RF: Future<Output = Result<S>>,
    A: Fn(S) -> AF,
    AF: Future<Output = Result<()>>,
{
    let mut state = read().await?;
    for _ in 0..SETTLE_ROUNDS {
        apply(state.clone()).await?;
        let now = read().await?;
        if now == state {
            return Ok(());
        }
        state = now;
    }
    Err(Error::conflict(
        "record",
        format!("{what} kept changing while it was copied; reconcile again"),
    ))
}

/// Makes `key`'s records on `to` what they are on `from`.
pub async fn copy_key(key: &RepairKey, from: &Store, to: &Store) -> Result<()> {
    match key {
        RepairKey::User(id) => copy_user(id, from, to).await,
        RepairKey::Chat(id) => copy_chat(id, from, to).await,
        RepairKey::ChatsOf(user) => copy_chats_of(user, from, to).await,
        RepairKey::Tags(user) => copy_tags(user, from, to).await,
        RepairKey::File(id) => copy_file(id, from, to).await,
        RepairKey::FilesOf(user) => copy_files_of(user, from, to).await,
        RepairKey::Row { table, key } => crate::rows::copy_row(table, key, from, to).await,
        RepairKey::Collection(name) => copy_collection(name, from, to).await,
        RepairKey::AllVectors => copy_all_vectors(from, to).await,
        RepairKey::Group(group) => Err(Error::invalid(format!(
            "{group}: a whole group is copied record by record (see group_keys)"
        ))),
    }
}

/// Ids a group walk reads per request.
const WALK_PAGE: u32 = 1000;

/// Every id of a keyset walk, read `WALK_PAGE` at a time through `scan(after)`.
async fn every_id<F, Fut>(scan: F) -> Result<Vec<String>>
where
    F: Fn(Option<String>) -> Fut,
    Fut: Future<Output = Result<Vec<String>>>,
{
    let mut ids: Vec<String> = Vec::new();
    loop {
        let page = scan(ids.last().cloned()).await?;
        let full = page.len() == WALK_PAGE as usize;
        ids.extend(page);
        if !full {
            return Ok(ids);
        }
    }
}

/// The keys of every record of `group` on either store: what [`RepairKey::Group`] copies one
/// by one (a record only `to` holds is deleted there by its copy).
pub(crate) async fn group_keys(
    group: ModelGroup,
    from: &Store,
    to: &Store,
) -> Result<Vec<RepairKey>> {
    let mut keys = std::collections::BTreeSet::new();
    for store in [from, to] {
        match group {
            ModelGroup::Users => {
                let ids = every_id(|after| async move {
                    store.users.scan_ids(after.as_deref(), WALK_PAGE).await
                })
                .await?;
                keys.extend(ids.into_iter().map(RepairKey::User));
            }
            ModelGroup::Chats => {
                let ids = every_id(|after| async move {
                    store.chats.scan_ids(after.as_deref(), WALK_PAGE).await
                })
                .await?;
                keys.extend(ids.into_iter().map(RepairKey::Chat));
                let mut after: Option<TagKey> = None;
                loop {
                    let page = store.tags.scan(after.as_ref(), WALK_PAGE).await?;
                    keys.extend(page.iter().map(|t| RepairKey::Tags(t.user_id.clone())));
                    match page.last() {
                        Some(last) if page.len() == WALK_PAGE as usize => {
                            after = Some(TagKey {
                                user_id: last.user_id.clone(),
                                id: last.id.clone(),
                            });
                        }
                        _ => break,
                    }
                }
            }
            ModelGroup::Files => {
                let ids = every_id(|after| async move {
                    store.files.scan_ids(after.as_deref(), WALK_PAGE).await
                })
                .await?;
                keys.extend(ids.into_iter().map(RepairKey::File));
            }
            ModelGroup::Vectors => {
                keys.insert(RepairKey::AllVectors);
            }
            ModelGroup::Workspace => {
                let rows = store.rows()?;
                for table in chatstore_core::rows::ALL_TABLES.iter().copied() {
                    let held = rows.select(table, &RowQuery::default()).await?;
                    keys.extend(held.iter().map(|r| crate::rows::row_key(table, r)));
                }
            }
        }
    }
    Ok(keys.into_iter().collect())
}

/// `Ok` also when the record was not there.
fn absent_ok(result: Result<()>) -> Result<()> {
    match result {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// `None` for `NotFound`.
fn found<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

async fn copy_user(id: &str, from: &Store, to: &Store) -> Result<()> {
    settle(
        &format!("user {id}"),
        || async { found(from.users.get(id).await) },
        |user| put_user(id, user, to),
    )
    .await
}

async fn put_user(id: &str, user: Option<User>, to: &Store) -> Result<()> {
    let Some(user) = user else {
        return absent_ok(to.users.delete(id).await);
    };
    let Some(theirs) = found(to.users.get(id).await)? else {
        to.users.create(NewUser::from(&user)).await?;
        return Ok(());
    };
    if theirs == user {
        return Ok(());
    }
    // Updated in place, never deleted and made again: on a SQL store deleting the user takes
    // its credentials (`auth`) and group memberships with it, which no repair puts back.
    let mut updated = to
        .users
        .update(
            id,
            UserPatch {
                email: Some(user.email.clone()),
                name: Some(user.name.clone()),
                role: Some(user.role.clone()),
                profile_image_url: Some(user.profile_image_url.clone()),
                info: user.info.clone(),
                settings: user.settings.clone(),
                updated_at: Some(user.updated_at),
            },
        )
        .await?;
    if updated == user {
        return Ok(());
    }
    // An activity moves no `updated_at`: a missed one is set by itself.
    if updated.last_active_at != user.last_active_at {
        to.users.set_last_active(id, user.last_active_at).await?;
        updated.last_active_at = user.last_active_at;
        if updated == user {
            return Ok(());
        }
    }
    let mut fields = Vec::new();
    if updated.created_at != user.created_at {
        fields.push("created_at");
    }
    if updated.info != user.info {
        fields.push("info");
    }
    if updated.settings != user.settings {
        fields.push("settings");
    }
    Err(Error::conflict(
        "user",
        format!(
            "user {id} differs between the stores in what an update cannot set ({}); a repair \
             does not delete and re-create a user, which would take its credentials and group \
             memberships with it: set them on the target by hand, then reconcile again",
            fields.join(", ")
        ),
    ))
}

/// The tables whose rows point at a chat or a file through a foreign key that SQL stores
/// cascade on delete, and the column that points.
static CHAT_DEPENDENTS: [(&Table, &str); 2] = [(&SHARED_CHAT, "chat_id"), (&CHAT_FILE, "chat_id")];
static FILE_DEPENDENTS: [(&Table, &str); 3] = [
    (&CHAT_FILE, "file_id"),
    (&KNOWLEDGE_FILE, "file_id"),
    (&CHANNEL_FILE, "file_id"),
];

/// The rows of `to` that point at the record `id` (see [`CHAT_DEPENDENTS`]), as the writes
/// that put them back after the record was deleted and made again there. Nothing on a store
/// without Open WebUI's other tables.
async fn dependents(
    to: &Store,
    tables: &[(&'static Table, &'static str)],
    id: &str,
) -> Result<Vec<RowOp>> {
    let Ok(rows) = to.rows() else {
        return Ok(Vec::new());
    };
    let mut ops = Vec::new();
    for &(table, column) in tables {
        let query = RowQuery::filter(vec![Cond::Eq(column, Value::String(id.to_owned()))]);
        for row in rows.select(table, &query).await? {
            ops.push(RowOp::Upsert { table, row });
        }
    }
    Ok(ops)
}

/// Writes back what [`dependents`] read.
async fn restore(to: &Store, ops: Vec<RowOp>) -> Result<()> {
    if ops.is_empty() {
        return Ok(());
    }
    to.rows()?.write(ops).await?;
    Ok(())
}

async fn copy_chat(id: &str, from: &Store, to: &Store) -> Result<()> {
    let read = || async {
        let Some(chat) = found(from.chats.get(id).await)? else {
            return Ok(None);
        };
        let messages = from.messages.list(id).await?;
        Ok(Some((chat, messages)))
    };
    settle(&format!("chat {id}"), read, |state| {
        put_chat(id, state, from, to)
    })
    .await
}

/// Makes the chat `id` on `to` the `state` read from `from` (`None`: absent).
async fn put_chat(
    id: &str,
    state: Option<(Chat, Vec<Message>)>,
    from: &Store,
    to: &Store,
) -> Result<()> {
    let Some((chat, messages)) = state else {
        if let Some(theirs) = found(to.chats.get(id).await)? {
            absent_ok(to.chats.delete(id).await)?;
            copy_tags(&theirs.user_id, from, to).await?;
        }
        return Ok(());
    };
    let theirs = found(to.chats.get(id).await)?;
    // The target's messages, read once: compared, then the ones the source lacks deleted.
    let their_messages = match &theirs {
        Some(_) => to.messages.list(id).await?,
        None => Vec::new(),
    };
    if theirs.as_ref() == Some(&chat) && their_messages == messages {
        return copy_tags(&chat.user_id, from, to).await;
    }
    let mut names = Vec::with_capacity(chat.tags.len());
    for tag in &chat.tags {
        let name =
            found(from.tags.get(&chat.user_id, tag).await)?.map_or_else(|| tag.clone(), |t| t.name);
        names.push(name);
    }
    match theirs {
        // The same chat (owner and creation): changed in place, so that nothing pointing at
        // it (shares, attached files) goes with a delete.
        Some(theirs) if theirs.user_id == chat.user_id && theirs.created_at == chat.created_at => {
            let mut meta = chat.meta.clone();
            meta.remove("tags");
            to.chats
                .update(
                    id,
                    ChatPatch {
                        title: Some(chat.title.clone()),
                        chat: Some(chat.chat.clone()),
                        meta: Some(meta),
                        archived: Some(chat.archived),
                        pinned: Some(chat.pinned),
                        folder_id: Some(chat.folder_id.clone()),
                        share_id: Some(chat.share_id.clone()),
                        updated_at: Some(chat.updated_at),
                    },
                )
                .await?;
            if theirs.tags != chat.tags {
                to.chats.set_tags(id, &names).await?;
            }
            for message in &their_messages {
                if !messages.iter().any(|m| m.id == message.id) {
                    absent_ok(to.messages.delete(id, &message.id).await)?;
                }
            }
        }
        theirs => {
            // Another chat under the id (or none): made again, and the rows that pointed at
            // it there put back.
            let kept = match theirs {
                Some(_) => dependents(to, &CHAT_DEPENDENTS, id).await?,
                None => Vec::new(),
            };
            absent_ok(to.chats.delete(id).await)?;
            to.chats
                .create(NewChat {
                    tags: names,
                    ..NewChat::again(&chat)
                })
                .await?;
            restore(to, kept).await?;
        }
    }
    if !messages.is_empty() {
        // The blob's messages became rows with their timestamps; writing the rows again sets
        // every field exactly. The blob's current message goes last, since each write makes
        // the message written current.
        let current = chat
            .chat
            .pointer("/history/currentId")
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        let mut inputs: Vec<NewMessage> = messages.iter().map(NewMessage::from).collect();
        if let Some(current) = current
            && let Some(i) = inputs.iter().position(|m| m.id == current)
        {
            let last = inputs.remove(i);
            inputs.push(last);
        }
        to.messages.upsert_many(id, inputs).await?;
    }
    // Writing messages and tags may raise the chat's updated_at: put it back.
    if found(to.chats.get(id).await)?.is_some_and(|c| c.updated_at != chat.updated_at) {
        to.chats
            .update(
                id,
                ChatPatch {
                    updated_at: Some(chat.updated_at),
                    ..ChatPatch::default()
                },
            )
            .await?;
    }
    copy_tags(&chat.user_id, from, to).await
}

/// The ids of a user's listed chats (every archive state; internal chats are never listed).
async fn chat_ids_of(user: &str, store: &Store) -> Result<BTreeSet<String>> {
    let mut ids = BTreeSet::new();
    let mut offset = 0;
    loop {
        // Internal chats too: lists leave them out, and a repair must cover every chat.
        let query = ChatQuery::for_user(user)
            .archived(None)
            .internal(true)
            .page(PageRequest::new(offset, LIST_PAGE));
        let page = store.chats.list(&query).await?;
        let n = page.items.len() as u64;
        ids.extend(page.items.into_iter().map(|c| c.id));
        if n < LIST_PAGE {
            return Ok(ids);
        }
        offset += n;
    }
}

async fn copy_chats_of(user: &str, from: &Store, to: &Store) -> Result<()> {
    let mut ids = chat_ids_of(user, from).await?;
    ids.extend(chat_ids_of(user, to).await?);
    for id in &ids {
        copy_chat(id, from, to).await?;
    }
    copy_tags(user, from, to).await
}

async fn copy_tags(user: &str, from: &Store, to: &Store) -> Result<()> {
    settle(
        &format!("the tags of user {user}"),
        || from.tags.list(user),
        |wanted| put_tags(user, wanted, to),
    )
    .await
}

async fn put_tags(user: &str, wanted: Vec<Tag>, to: &Store) -> Result<()> {
    let have = to.tags.list(user).await?;
    for tag in &have {
        if !wanted.iter().any(|t| t.id == tag.id) {
            absent_ok(to.tags.delete(user, &tag.id).await)?;
        }
    }
    let missing: Vec<_> = wanted
        .iter()
        .filter(|t| !have.iter().any(|h| h.id == t.id))
        .cloned()
        .collect();
    if !missing.is_empty() {
        to.tags.create_many(missing).await?;
    }
    // Tags have no update, and deleting one takes it off every chat that carries it: a tag
    // held under the same id with another name or meta stays a difference to settle by hand.
    let differing: Vec<&str> = wanted
        .iter()
        .filter(|t| have.iter().any(|h| h.id == t.id && h != *t))
        .map(|t| t.id.as_str())
        .collect();
    if differing.is_empty() {
        return Ok(());
    }
    Err(Error::conflict(
        "tag",
        format!(
            "the tags {differing:?} of user {user} differ between the stores in name or meta;              a repair does not delete and re-create a tag, which would take it off the chats              that carry it: set them on the target by hand, then reconcile again"
        ),
    ))
}

async fn copy_file(id: &str, from: &Store, to: &Store) -> Result<()> {
    settle(
        &format!("file {id}"),
        || async { found(from.files.get(id).await) },
        |meta| put_file(id, meta, from, to),
    )
    .await
}

async fn put_file(id: &str, meta: Option<FileMeta>, from: &Store, to: &Store) -> Result<()> {
    let Some(meta) = meta else {
        return absent_ok(to.files.delete(id).await);
    };
    if found(to.files.get(id).await)?.as_ref() == Some(&meta) {
        return Ok(());
    }
    let bytes = from.files.read(id).await?;
    // Files have no update: the file is made again, and the rows that pointed at it there
    // (attached to chats, knowledge bases, channels) put back.
    let kept = dependents(to, &FILE_DEPENDENTS, id).await?;
    absent_ok(to.files.delete(id).await)?;
    to.files
        .put(NewFile {
            id: Some(meta.id.clone()),
            user_id: meta.user_id.clone(),
            filename: meta.filename.clone(),
            content_type: meta.content_type.clone(),
            bytes,
            hash: meta.hash.clone(),
            data: meta.data.clone(),
            meta: meta.meta.clone(),
            created_at: Some(meta.created_at),
            updated_at: Some(meta.updated_at),
        })
        .await?;
    restore(to, kept).await
}

async fn file_ids_of(user: &str, store: &Store) -> Result<BTreeSet<String>> {
    let mut ids = BTreeSet::new();
    let mut offset = 0;
    loop {
        let query = FileQuery {
            user_id: Some(user.to_owned()),
            page: PageRequest::new(offset, LIST_PAGE),
        };
        let page = store.files.list(&query).await?;
        let n = page.items.len() as u64;
        ids.extend(page.items.into_iter().map(|f| f.id));
        if n < LIST_PAGE {
            return Ok(ids);
        }
        offset += n;
    }
}

async fn copy_files_of(user: &str, from: &Store, to: &Store) -> Result<()> {
    let mut ids = file_ids_of(user, from).await?;
    ids.extend(file_ids_of(user, to).await?);
    for id in &ids {
        copy_file(id, from, to).await?;
    }
    Ok(())
}

async fn copy_collection(name: &str, from: &Store, to: &Store) -> Result<()> {
    settle(
        &format!("vector collection {name}"),
        || from.vectors.get(name),
        |items| put_collection(name, items, to),
    )
    .await
}

async fn put_collection(name: &str, items: Vec<VectorItem>, to: &Store) -> Result<()> {
    to.vectors.delete_collection(name).await?;
    for batch in items.chunks(VECTOR_BATCH) {
        to.vectors.upsert(name, batch.to_vec()).await?;
    }
    Ok(())
}

async fn copy_all_vectors(from: &Store, to: &Store) -> Result<()> {
    let collections = from.vectors.collections().await?;
    to.vectors.reset().await?;
    for name in &collections {
        copy_collection(name, from, to).await?;
    }
    if collections.is_empty() && !to.vectors.collections().await?.is_empty() {
        return Err(Error::backend_msg(
            "vectors: the store still has collections after a reset",
        ));
    }
    Ok(())
}
