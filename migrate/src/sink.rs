//! Writing one batch to the target: the bulk call first; when the target refuses it, each
//! record alone, so one bad record is set aside and the rest arrive. A record the target
//! already holds (a batch written before a crash, not yet checkpointed) counts as skipped:
//! every batch can be written again without duplicates. "Already holds" compares content the
//! way verification does ([`chatstore_core::compare`]), not only the id: another record under
//! the id is set aside with the fields that differ. A record that differs from what the run
//! read but equals what the source holds now changed on both stores since (a router in
//! `dual`), and is held too.

use std::collections::HashMap;

use async_trait::async_trait;
use chatstore_core::compare::{Precision, canonical, diff_within, same_within};
use chatstore_core::{
    Chat, ChatPatch, Error, ErrorKind, NewChat, NewFile, NewMessage, NewUser, Result, Store, Tag,
};
use serde::Serialize;
use serde_json::Value;

use crate::read::retrying;
use crate::verify::chat_record;

/// A target repository seen as a place to put records of one kind.
#[async_trait]
pub(crate) trait Sink: Send + Sync {
    /// What is written.
    type Item: Clone + Send + Sync;
    /// Writes every item (all or nothing where the backend's bulk writes are atomic).
    async fn bulk(&self, items: &[Self::Item]) -> Result<()>;
    /// Writes one item.
    async fn one(&self, item: Self::Item) -> Result<()>;
    /// After a `Conflict`: whether the target holds this record already (finishing what a
    /// crash may have left undone), another record under its id, or nothing under it.
    async fn present(&self, item: &Self::Item) -> Result<Held>;
}

/// What the target holds under a record's id, after a `Conflict`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Held {
    /// This record (written before a crash, or by a router in `dual`).
    Same,
    /// Nothing: the conflict is on another key (an email, a unique name).
    Nothing,
    /// Another record, set aside for this reason.
    Other(String),
}

/// `Same` when `held` and `wanted` hold the same data (compared as verification compares),
/// else `Other` naming the fields that differ.
fn compared<T: Serialize>(
    entity: &str,
    held: &T,
    wanted: &T,
    precision: Precision,
) -> Result<Held> {
    let (held, wanted) = (canonical(held)?, canonical(wanted)?);
    if held == wanted || same_within(&held, &wanted, precision) {
        return Ok(Held::Same);
    }
    let fields: Vec<String> = diff_within(&wanted, &held, precision)
        .into_iter()
        .map(|d| {
            if d.path.is_empty() {
                "/".to_owned()
            } else {
                d.path
            }
        })
        .collect();
    Ok(Held::Other(format!(
        "the target holds another {entity} under this id (differs at {})",
        fields.join(", ")
    )))
}

/// [`compared`] with what the run read; when they differ, with what the source holds now (a
/// record changed on both stores since the run read it is held).
async fn held_as<T, Fut>(
    entity: &str,
    held: &T,
    wanted: &T,
    source_now: Fut,
    precision: Precision,
) -> Result<Held>
where
    T: Serialize,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let against_read = compared(entity, held, wanted, precision)?;
    if against_read == Held::Same {
        return Ok(Held::Same);
    }
    match source_now.await? {
        Some(now) if compared(entity, held, &now, precision)? == Held::Same => Ok(Held::Same),
        _ => Ok(against_read),
    }
}

fn precision(source: &Store, target: &Store) -> Precision {
    Precision::between(&source.capabilities(), &target.capabilities())
}

fn or_none<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A record on its way: its id, its source form for the dead letters, and what is written.
pub(crate) struct Pending<I> {
    pub id: String,
    pub record: Record,
    pub item: I,
}

/// A record's source form for the dead letters, encoded only when one is written (a chat's is
/// as large as its conversation, and nearly every chat arrives).
pub(crate) struct Record(Box<dyn FnOnce() -> Value + Send + Sync>);

impl Record {
    /// A form already encoded.
    pub fn value(v: Value) -> Self {
        Record(Box::new(move || v))
    }

    /// The record itself, encoded when asked.
    pub fn of<T: Serialize + Send + Sync + 'static>(record: T) -> Self {
        Record(Box::new(move || {
            serde_json::to_value(&record).unwrap_or(Value::Null)
        }))
    }

    /// The encoded form.
    pub fn into_value(self) -> Value {
        (self.0)()
    }
}

/// What became of a batch.
pub(crate) struct Outcome<I> {
    pub written: Vec<Pending<I>>,
    pub skipped: u64,
    pub rejected: Vec<(Pending<I>, Error)>,
}

/// Writes a batch; `Err` only when the target stays unavailable (nothing is then known about
/// the batch, and the run stops before its checkpoint).
pub(crate) async fn write<S: Sink>(
    sink: &S,
    what: &str,
    batch: Vec<Pending<S::Item>>,
) -> Result<Outcome<S::Item>> {
    let mut out = Outcome {
        written: Vec::new(),
        skipped: 0,
        rejected: Vec::new(),
    };
    if batch.is_empty() {
        return Ok(out);
    }
    let (heads, items): (Vec<(String, Record)>, Vec<S::Item>) = batch
        .into_iter()
        .map(|p| ((p.id, p.record), p.item))
        .unzip();
    let bulk = retrying(what, || sink.bulk(&items)).await;
    let batch = heads
        .into_iter()
        .zip(items)
        .map(|((id, record), item)| Pending { id, record, item });
    match bulk {
        Ok(()) => {
            out.written = batch.collect();
            return Ok(out);
        }
        Err(e) if e.is_retryable() => return Err(e),
        Err(e) => tracing::debug!(%what, error = %e, "bulk write refused; writing one by one"),
    }
    for p in batch {
        match retrying(what, || sink.one(p.item.clone())).await {
            Ok(()) => out.written.push(p),
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) if e.kind() == ErrorKind::Conflict => {
                match retrying(what, || sink.present(&p.item)).await {
                    Ok(Held::Same) => out.skipped += 1,
                    Ok(Held::Nothing) => out.rejected.push((p, e)),
                    Ok(Held::Other(why)) => out.rejected.push((p, Error::conflict("record", why))),
                    Err(e2) if e2.is_retryable() => return Err(e2),
                    Err(_) => out.rejected.push((p, e)),
                }
            }
            Err(e) => out.rejected.push((p, e)),
        }
    }
    Ok(out)
}

/// Users: the source (to compare a user the target holds with what it holds now) and the
/// target.
pub(crate) struct Users<'a>(pub &'a Store, pub &'a Store);

#[async_trait]
impl Sink for Users<'_> {
    type Item = NewUser;
    async fn bulk(&self, items: &[NewUser]) -> Result<()> {
        self.1.users.create_many(items.to_vec()).await.map(|_| ())
    }
    async fn one(&self, item: NewUser) -> Result<()> {
        self.1.users.create(item).await.map(|_| ())
    }
    async fn present(&self, item: &NewUser) -> Result<Held> {
        let id = item.id.as_deref().unwrap_or_default();
        let Some(held) = or_none(self.1.users.get(id).await)? else {
            return Ok(Held::Nothing);
        };
        let now = async { Ok(or_none(self.0.users.get(id).await)?.map(|u| NewUser::from(&u))) };
        let precision = precision(self.0, self.1);
        held_as("user", &NewUser::from(&held), item, now, precision).await
    }
}

/// Tag rows, exactly as the source holds them: the source and the target.
pub(crate) struct Tags<'a>(pub &'a Store, pub &'a Store);

#[async_trait]
impl Sink for Tags<'_> {
    type Item = Tag;
    async fn bulk(&self, items: &[Tag]) -> Result<()> {
        self.1.tags.create_many(items.to_vec()).await
    }
    async fn one(&self, item: Tag) -> Result<()> {
        self.1.tags.create_many(vec![item]).await
    }
    async fn present(&self, item: &Tag) -> Result<Held> {
        let Some(held) = or_none(self.1.tags.get(&item.user_id, &item.id).await)? else {
            return Ok(Held::Nothing);
        };
        let now = async { or_none(self.0.tags.get(&item.user_id, &item.id).await) };
        let precision = precision(self.0, self.1);
        held_as("tag", &held, item, now, precision).await
    }
}

/// A chat to create, and what makes its messages exact afterwards.
#[derive(Clone)]
pub(crate) struct ChatItem {
    /// The chat; its blob's history holds the source's messages.
    pub chat: NewChat,
    /// Messages whose `updated_at` the blob cannot carry, written again as rows, the chat's
    /// current message last (an upsert makes its message the current one).
    pub fixups: Vec<NewMessage>,
    /// The source chat's `updated_at` (message upserts raise it).
    pub updated_at: i64,
}

/// Chats with their messages and tag sets: the source (to compare a chat the target holds with
/// it) and the target.
pub(crate) struct Chats<'a>(pub &'a Store, pub &'a Store);

impl Chats<'_> {
    /// Whether the target's copy of a chat already holds each message of `item.fixups` at
    /// least as late as the run read it, or no longer holds it: an earlier run's fixups
    /// landed, or a router in `dual` wrote (or deleted) them on both stores after this run
    /// read the chat. Writing them again would then
    /// undo later writes (an edit, the current message). An earlier run stopped between its
    /// message writes and the chat's `updated_at` patch left the chat at its latest message's
    /// time, which is put right here.
    async fn holds_fixups(&self, item: &ChatItem, held: &Chat) -> Result<bool> {
        if item.fixups.is_empty() {
            return Ok(true);
        }
        let stored = self.1.messages.list(&held.id).await?;
        let updated: HashMap<&str, i64> = stored
            .iter()
            .map(|m| (m.id.as_str(), m.updated_at))
            .collect();
        // A fixup message missing from the target was deleted there since (by a router in
        // `dual`): the chat is created with every message of its blob in one write, so no
        // earlier run can have left one unwritten. Writing it again would bring it back.
        let held_all = item.fixups.iter().all(|f| {
            updated
                .get(f.id.as_str())
                .is_none_or(|&at| at >= f.updated_at.unwrap_or(i64::MIN))
        });
        if !held_all {
            return Ok(false);
        }
        let latest = item.fixups.iter().filter_map(|m| m.updated_at).max();
        if latest.is_some_and(|l| l > item.updated_at && held.updated_at == l) {
            let patch = ChatPatch {
                updated_at: Some(item.updated_at),
                ..ChatPatch::default()
            };
            self.1.chats.update(&held.id, patch).await?;
        }
        Ok(true)
    }

    async fn finish(&self, item: &ChatItem) -> Result<()> {
        if item.fixups.is_empty() {
            return Ok(());
        }
        let id = item.chat.id.clone().unwrap_or_default();
        self.1
            .messages
            .upsert_many(&id, item.fixups.clone())
            .await?;
        let latest = item
            .fixups
            .iter()
            .filter_map(|m| m.updated_at)
            .max()
            .unwrap_or(i64::MIN);
        if latest > item.updated_at {
            let patch = ChatPatch {
                updated_at: Some(item.updated_at),
                ..ChatPatch::default()
            };
            self.1.chats.update(&id, patch).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Sink for Chats<'_> {
    type Item = ChatItem;
    async fn bulk(&self, items: &[ChatItem]) -> Result<()> {
        self.1
            .chats
            .create_many(items.iter().map(|i| i.chat.clone()).collect())
            .await?;
        for item in items {
            self.finish(item).await?;
        }
        Ok(())
    }
    async fn one(&self, item: ChatItem) -> Result<()> {
        self.1.chats.create(item.chat.clone()).await?;
        self.finish(&item).await
    }
    /// A chat the target changed after the run read it (a router in `dual`) is left as it is;
    /// another chat under the id (another owner or creation time) is refused before anything
    /// is written to it; else the message fixes a crash may have cut short are finished, and
    /// the chat with its messages is compared with the source's as verification compares it.
    async fn present(&self, item: &ChatItem) -> Result<Held> {
        let id = item.chat.id.as_deref().unwrap_or_default();
        let Some(held) = or_none(self.1.chats.get(id).await)? else {
            return Ok(Held::Nothing);
        };
        let later = held.updated_at > item.updated_at;
        if !later
            && (held.user_id != item.chat.user_id || Some(held.created_at) != item.chat.created_at)
        {
            return Ok(Held::Other(format!(
                "the target holds another chat under this id (user {:?}, created at {})",
                held.user_id, held.created_at
            )));
        }
        if !self.holds_fixups(item, &held).await? {
            self.finish(item).await?;
        }
        if later {
            return Ok(Held::Same);
        }
        // Deleted from the source meanwhile: nothing left to compare with.
        let Some(source) = or_none(self.0.chats.get(id).await)? else {
            return Ok(Held::Same);
        };
        let source = chat_record(&source, &self.0.messages.list(id).await?);
        let held = self.1.chats.get(id).await?;
        let held = chat_record(&held, &self.1.messages.list(id).await?);
        compared("chat", &held, &source, precision(self.0, self.1))
    }
}

/// Files with their bytes.
pub(crate) struct Files<'a>(pub &'a Store);

#[async_trait]
impl Sink for Files<'_> {
    type Item = NewFile;
    async fn bulk(&self, items: &[NewFile]) -> Result<()> {
        self.0.files.put_many(items.to_vec()).await.map(|_| ())
    }
    async fn one(&self, item: NewFile) -> Result<()> {
        self.0.files.put(item).await.map(|_| ())
    }
    /// Held with the same bytes (by sha256 and size): a file the target holds with other
    /// bytes under the id is set aside, as a streamed large file is.
    async fn present(&self, item: &NewFile) -> Result<Held> {
        match self
            .0
            .files
            .get(item.id.as_deref().unwrap_or_default())
            .await
        {
            Ok(held)
                if held.size == item.bytes.len() as u64
                    && held.sha256 == chatstore_core::files::sha256_hex(&item.bytes) =>
            {
                Ok(Held::Same)
            }
            // Refused with the write's own conflict, as before.
            Ok(_) => Ok(Held::Nothing),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Held::Nothing),
            Err(e) => Err(e),
        }
    }
}
