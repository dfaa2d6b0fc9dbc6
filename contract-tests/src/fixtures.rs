//! Fixtures shared by the contracts: users, chats, messages, files and vectors with fixed ids
//! and timestamps, so every backend receives exactly the same input.

use chatstore_core::{
    Chat, ChatQuery, ChatSummary, FileMeta, Message, NewChat, NewFile, NewMessage, NewUser, Page,
    Result, Store, User, VectorItem,
};
use serde_json::{Map, Value, json};

/// A base time (2024-01-01) that fixtures count from.
pub const T0: i64 = 1_704_067_200;

/// A user numbered `n`: id `user-n`, email `user-n@example.com`, created at `T0 + n`.
pub fn new_user(n: u32) -> NewUser {
    NewUser {
        id: Some(format!("user-{n}")),
        email: format!("user-{n}@example.com"),
        name: format!("User {n}"),
        created_at: Some(T0 + i64::from(n)),
        ..NewUser::default()
    }
}

/// Creates [`new_user`]`(n)`.
pub async fn user(store: &Store, n: u32) -> Result<User> {
    store.users.create(new_user(n)).await
}

/// A chat of `user` with id `id`, title `title`, created and updated at `ts`.
pub fn new_chat(user: &str, id: &str, title: &str, ts: i64) -> NewChat {
    NewChat {
        id: Some(id.to_owned()),
        user_id: user.to_owned(),
        title: Some(title.to_owned()),
        chat: Some(json!({"models": ["llama3"], "params": {}})),
        created_at: Some(ts),
        updated_at: Some(ts),
        ..NewChat::default()
    }
}

/// Creates [`new_chat`].
pub async fn chat(store: &Store, user: &str, id: &str, title: &str, ts: i64) -> Result<Chat> {
    store.chats.create(new_chat(user, id, title, ts)).await
}

/// `chats.list` of `query`, after checking that `chats.list_items` (the list without a
/// total) answers exactly its items: every chat-list contract holds for both calls.
pub async fn listed(store: &Store, query: &ChatQuery) -> Result<Page<ChatSummary>> {
    let page = store.chats.list(query).await?;
    let items = store.chats.list_items(query).await?;
    assert_eq!(
        ids(&items),
        ids(&page.items),
        "list_items differs from list's items for {query:?}"
    );
    assert_eq!(items, page.items, "list_items' summaries for {query:?}");
    Ok(page)
}

/// Creates a chat with tags.
pub async fn tagged_chat(
    store: &Store,
    user: &str,
    id: &str,
    ts: i64,
    tags: &[&str],
) -> Result<Chat> {
    store
        .chats
        .create(new_chat(user, id, id, ts).with_tags(tags.iter().copied()))
        .await
}

/// A text message `id` in `chat` at `ts`, child of `parent`.
pub fn new_message(
    chat: &str,
    id: &str,
    parent: Option<&str>,
    role: &str,
    text: &str,
    ts: i64,
) -> NewMessage {
    let mut m = NewMessage::text(chat, id, role, text).at(ts);
    m.parent_id = parent.map(str::to_owned);
    m
}

/// Upserts [`new_message`].
pub async fn message(
    store: &Store,
    chat: &str,
    id: &str,
    parent: Option<&str>,
    ts: i64,
) -> Result<Message> {
    let role = if parent.is_none() {
        "user"
    } else {
        "assistant"
    };
    store
        .messages
        .upsert(new_message(
            chat,
            id,
            parent,
            role,
            &format!("text of {id}"),
            ts,
        ))
        .await
}

/// A file of `user` with id `id` holding `bytes`, created at `ts`.
pub fn new_file(user: &str, id: &str, bytes: &[u8], ts: i64) -> NewFile {
    NewFile {
        id: Some(id.to_owned()),
        user_id: user.to_owned(),
        filename: format!("{id}.txt"),
        content_type: Some("text/plain".to_owned()),
        bytes: bytes.to_vec(),
        created_at: Some(ts),
        ..NewFile::default()
    }
}

/// Stores [`new_file`].
pub async fn file(store: &Store, user: &str, id: &str, bytes: &[u8], ts: i64) -> Result<FileMeta> {
    store.files.put(new_file(user, id, bytes, ts)).await
}

/// The metadata of a streamed file: [`new_file`] without bytes.
pub fn new_stream_file(user: &str, id: &str, ts: i64) -> NewFile {
    new_file(user, id, b"", ts)
}

/// Deterministic bytes that are not a repeating short pattern.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u64).wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// A stream of `bytes` in chunks of the given sizes, cycled (uneven chunks on purpose).
pub fn chunked(bytes: &[u8], sizes: &[usize]) -> chatstore_core::ByteStream {
    let mut chunks = Vec::new();
    let mut at = 0;
    let mut n = 0;
    while at < bytes.len() {
        let size = sizes[n % sizes.len()].max(1);
        let end = (at + size).min(bytes.len());
        chunks.push(Ok(bytes::Bytes::copy_from_slice(&bytes[at..end])));
        at = end;
        n += 1;
    }
    Box::pin(futures::stream::iter(chunks))
}

/// A stream that yields `bytes` and then fails, as a connection cut off mid-upload does.
pub fn cut_off(bytes: &[u8]) -> chatstore_core::ByteStream {
    let head = chunked(bytes, &[16 * 1024]);
    let fail = futures::stream::once(async {
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "client went away",
        ))
    });
    Box::pin(futures::StreamExt::chain(head, fail))
}

/// A stream that yields `bytes` and then waits forever (the caller gives up on it).
pub fn stalled(bytes: &[u8]) -> chatstore_core::ByteStream {
    let head = chunked(bytes, &[16 * 1024]);
    Box::pin(futures::StreamExt::chain(head, futures::stream::pending()))
}

/// A JSON object from a `json!` literal.
pub fn obj(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("fixture expects an object, got {other}"),
    }
}

/// A vector item.
pub fn item(id: &str, vector: &[f32], metadata: Value) -> VectorItem {
    VectorItem {
        id: id.to_owned(),
        text: format!("text of {id}"),
        vector: vector.to_vec(),
        metadata: obj(metadata),
    }
}

/// A deterministic pseudo-random vector (xorshift), components in [-1, 1).
pub fn pseudo_random_vector(seed: u64, dim: usize) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..dim)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// The ids of chat summaries, in order.
pub fn ids<T: HasId>(items: &[T]) -> Vec<String> {
    items.iter().map(|i| i.id().to_owned()).collect()
}

/// Anything with an id, for [`ids`].
pub trait HasId {
    /// The id.
    fn id(&self) -> &str;
}

macro_rules! has_id {
    ($($t:ty),*) => { $(impl HasId for $t { fn id(&self) -> &str { &self.id } })* };
}
has_id!(
    chatstore_core::ChatSummary,
    Chat,
    User,
    Message,
    FileMeta,
    VectorItem,
    chatstore_core::SearchHit,
    chatstore_core::Tag
);
