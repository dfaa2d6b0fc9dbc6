//! The chats' pages, read by a task of their own ahead of the engine's writes.
//!
//! The engine starts the reader with the run, so the first page (the chats' blobs and their
//! message rows, decoded) is read while the users and the tag rows are copied, and every later
//! page while the page before it is written. It runs beside the writer rather than inside its task: decoding a
//! page is CPU work, and sharing the writer's task would hold back the writer's next statement
//! until the decoding yields. Each chat is also turned into what the target writes
//! ([`chat_item_for`]) on the reader's side. At most [`PAGES_AHEAD`] + 2 pages are held at
//! once: the one being written, the one waiting, the one being read.
//!
//! The first page is an eighth of the batch (at most 4 chats) and each next one twice the one
//! before, up to the batch: the writer waits only for a small page before its first write, and
//! each page is read while the smaller one before it is written (a page reads faster than it
//! is written). With batches of 500 that cut the wait before the first write from 46-100 ms
//! (a whole page of chats and their messages read and decoded) to 13-17 ms in the benchmark's
//! statement log.
//!
//! Pages are also kept near a budget of bytes ([`MigrateOptions::chat_page_bytes`]): after
//! each page the next one is sized from the chats just read (their blobs' and rewritten
//! messages' JSON), so chats that hold pasted images or long documents come a few at a time
//! instead of hundreds at once (500 chats of 10 MB each, three pages held, would be 15 GB).
//! A chat larger than the budget is a page alone.
//!
//! [`MigrateOptions::chat_page_bytes`]: crate::MigrateOptions::chat_page_bytes
//!
//! Checkpoints do not change: the engine saves a page's cursor only after the target committed
//! it. A read that fails for good is handed over after the pages before it, so the run stops
//! with the checkpoint of the last written page.

use chatstore_core::blob::split_blob;
use chatstore_core::{Chat, Error, ErrorKind, Message, Result, Store};
use futures::{StreamExt, TryStreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::chat_item_from;
use crate::read::{Read, page, read_key, retrying};
use crate::sink::{ChatItem, Pending, Record};

/// Pages waiting for the writer.
const PAGES_AHEAD: usize = 1;

/// Reads of chats' messages made at the same time.
const MESSAGE_READS: usize = 4;

/// The first page is the batch size divided by this (at least one chat)...
const FIRST_PAGE_DIVISOR: u32 = 8;
/// ... and at most this many chats: nothing is known of the chats' sizes before the first page
/// is read, and 62 chats of 10 MB each (a batch of 500) were 620 MB against a 64 MiB budget.
const FIRST_PAGE_MAX: u32 = 4;

/// The size of the first page for batches of `limit`.
fn first_page(limit: u32) -> u32 {
    (limit / FIRST_PAGE_DIVISOR).clamp(1, FIRST_PAGE_MAX)
}

/// A source chat as read for the copy.
pub(super) enum ChatRead {
    /// The chat with its messages, ready to write, and the entries of its blob that do not
    /// read as messages (each key, entry and why), which the chat is written without.
    Chat(Pending<ChatItem>, Vec<(String, Value, Error)>),
    /// The chat could not be read: its id and why.
    Unreadable(String, Error),
    /// The chat was read but not its messages.
    NoMessages(Chat, Error),
}

/// A page of chats: the last id in it (the cursor after it) and its chats.
pub(super) type ChatPage = (String, Vec<ChatRead>);

/// The pages after a cursor, read ahead by a task that stops when this is dropped.
pub(super) struct ChatPages {
    pages: mpsc::Receiver<Result<ChatPage>>,
    reader: JoinHandle<()>,
}

impl ChatPages {
    /// Starts reading the chats of `source` after `after`, at most `limit` and about `bytes`
    /// of chat content a page.
    pub(super) fn start(source: &Store, limit: u32, bytes: usize, after: Option<String>) -> Self {
        let (sender, pages) = mpsc::channel(PAGES_AHEAD);
        let reader = tokio::spawn(read_ahead(source.clone(), limit, bytes, after, sender));
        ChatPages { pages, reader }
    }

    /// The next page; `None` after the last one.
    pub(super) async fn next(&mut self) -> Result<Option<ChatPage>> {
        match self.pages.recv().await {
            Some(page) => page.map(Some),
            // The reader hung up: past the last page, unless it stopped unexpectedly (it sends
            // its errors, so only a panic ends it early).
            None => match (&mut self.reader).await {
                Err(e) if e.is_panic() => {
                    Err(Error::backend("the chat reader stopped unexpectedly", e))
                }
                _ => Ok(None),
            },
        }
    }
}

impl Drop for ChatPages {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Reads page after page into `pages` until the last one, a read that fails for good (sent),
/// or the writer hangs up; pages grow from [`first_page`] to `limit`, doubling, and hold as
/// many chats as the last page's fit in `bytes`.
async fn read_ahead(
    source: Store,
    limit: u32,
    bytes: usize,
    mut after: Option<String>,
    pages: mpsc::Sender<Result<ChatPage>>,
) {
    let mut size = first_page(limit);
    loop {
        let read = read_chats(&source, size, after.take()).await;
        let grown = size.saturating_mul(2).min(limit);
        size = match &read {
            Ok(Some((_, reads))) => grown.min(fitting(reads, bytes)),
            _ => grown,
        };
        let sent = match read {
            Ok(Some((last, reads))) => {
                after = Some(last.clone());
                pages.send(Ok((last, reads))).await
            }
            Ok(None) => return,
            Err(e) => {
                let _ = pages.send(Err(e)).await;
                return;
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

/// How many chats as large as the largest of `page` fit in `budget` bytes (at least one): by
/// the mean, a page of small chats let the next one hold as many large ones.
fn fitting(page: &[ChatRead], budget: usize) -> u32 {
    let per_chat = page.iter().map(content_bytes).max().unwrap_or(0).max(1);
    u32::try_from(budget / per_chat).unwrap_or(u32::MAX).max(1)
}

/// About how many bytes of JSON a chat read brings (its blob and the messages written again
/// as rows; ids and small fields aside).
fn content_bytes(read: &ChatRead) -> usize {
    match read {
        ChatRead::Chat(p, _) => {
            p.item.chat.chat.as_ref().map_or(0, json_bytes)
                + p.item
                    .fixups
                    .iter()
                    .map(|m| json_bytes(&m.content))
                    .sum::<usize>()
        }
        ChatRead::NoMessages(chat, _) => json_bytes(&chat.chat),
        ChatRead::Unreadable(..) => 0,
    }
}

/// About the length of `value` as JSON: its strings and keys, and a few bytes for every
/// other value (no escaping counted).
fn json_bytes(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => 8,
        Value::String(s) => s.len() + 2,
        Value::Array(items) => 2 + items.iter().map(json_bytes).sum::<usize>(),
        Value::Object(map) => {
            2 + map
                .iter()
                .map(|(k, v)| k.len() + 3 + json_bytes(v))
                .sum::<usize>()
        }
    }
}

/// What the target is given for a source chat and its messages.
fn pending(chat: Chat, messages: &[Message]) -> ChatRead {
    let (messages, unreadable) = split_blob(&chat, messages);
    let (new, fixups) = chat_item_from(&chat, &messages);
    ChatRead::Chat(
        Pending {
            id: chat.id.clone(),
            item: ChatItem {
                chat: new,
                fixups,
                updated_at: chat.updated_at,
            },
            record: Record::of(chat),
        },
        unreadable,
    )
}

/// Reads the page of chats after `after` with every chat's messages (several chats' at a
/// time); `None` past the last chat.
async fn read_chats(source: &Store, limit: u32, after: Option<String>) -> Result<Option<ChatPage>> {
    let src = &source.chats;
    let page: Vec<Read<Chat>> = page(
        "reading chats",
        || src.scan(after.as_deref(), limit),
        || src.scan_ids(after.as_deref(), limit),
        |id| async move { src.get(&id).await },
    )
    .await?;
    let Some(last) = page.last().map(read_key) else {
        return Ok(None);
    };
    // Every readable chat's messages in one call; when that fails (a message row that does
    // not decode), chat by chat, so that only the chat holding it is set aside.
    let ids: Vec<String> = page
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|c| c.id.clone()))
        .collect();
    // A few calls at a time, so that a store with several connections decodes in parallel.
    let chunk = ids.len().div_ceil(MESSAGE_READS).max(1);
    let chunks: Vec<Vec<String>> = ids.chunks(chunk).map(<[String]>::to_vec).collect();
    let lists: Result<Vec<Vec<Vec<Message>>>> = futures::stream::iter(chunks)
        .map(|some| async move {
            retrying("reading the chats' messages", || {
                source.messages.list_many(&some)
            })
            .await
        })
        .buffered(MESSAGE_READS)
        .try_collect()
        .await;
    match lists.map(|l| l.into_iter().flatten().collect::<Vec<_>>()) {
        Ok(lists) if lists.len() == ids.len() => {
            let mut lists = lists.into_iter();
            let reads = page
                .into_iter()
                .map(|r| match r {
                    Ok(chat) => pending(chat, &lists.next().unwrap_or_default()),
                    Err((id, e)) => ChatRead::Unreadable(id, e),
                })
                .collect();
            return Ok(Some((last, reads)));
        }
        Ok(_) => {}
        Err(e) if e.is_retryable() => return Err(e),
        Err(e) => tracing::debug!(error = %e,
            "a page of chats' messages could not be read at once; reading chat by chat"),
    }
    let reads: Vec<ChatRead> = futures::stream::iter(page)
        .map(|r| async move {
            let chat = match r {
                Ok(c) => c,
                Err((id, e)) => return Ok(ChatRead::Unreadable(id, e)),
            };
            match retrying("reading a chat's messages", || {
                source.messages.list(&chat.id)
            })
            .await
            {
                Ok(messages) => Ok(pending(chat, &messages)),
                Err(e) if e.is_retryable() => Err(e),
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    // Deleted since its page was read (a live source): gone, unless the source
                    // still holds it.
                    match retrying("reading a chat", || source.chats.get(&chat.id)).await {
                        Err(gone) if gone.kind() == ErrorKind::NotFound => {
                            Ok(ChatRead::Unreadable(chat.id, gone))
                        }
                        Err(other) if other.is_retryable() => Err(other),
                        _ => Ok(ChatRead::NoMessages(chat, e)),
                    }
                }
                Err(e) => Ok(ChatRead::NoMessages(chat, e)),
            }
        })
        .buffered(MESSAGE_READS)
        .try_collect()
        .await?;
    Ok(Some((last, reads)))
}
