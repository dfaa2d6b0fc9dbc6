//! The benchmarked operations, each an `async fn` over a [`Store`], and the [`Fixture`] of
//! inputs they draw from.
//!
//! An operation's iteration `i` picks its inputs from the fixture (chat `i mod n`, query vector
//! `i mod n`, ...). Inputs that take work to build (chat blobs, file bytes, vectors) are built
//! once in the fixture, so a timed iteration costs the store call plus a clone of its input,
//! the same for the adapter and for its raw baseline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use std::collections::HashMap;
use std::sync::Arc;

use chatstore_core::{
    Capabilities, ChatCursor, ChatQuery, ErrorKind, NewChat, NewFile, NewMessage, PageRequest,
    Result, Store, VectorItem,
};
use serde_json::Map;

use crate::models::{self, Model, RowPlan};
use crate::rng::Rng;
use crate::workload::{self, KNOWLEDGE_COLLECTION, PAGE_SIZE, SEARCH_TERM, TAG_NAMES, Workload};

/// Vector chunks per insert batch.
pub const INSERT_BATCH: usize = 32;

/// Neighbours asked for per vector search.
pub const SEARCH_K: u32 = 5;

/// The collection that insert batches go to.
pub const INSERT_COLLECTION: &str = "bench-insert";

/// Distinct inputs of a model's get (record `i mod PLAN_INPUTS`): each has its recorded plan.
pub const PLAN_INPUTS: u64 = 8;

/// The tag that the add/remove benchmark adds and removes again.
pub const BENCH_TAG: &str = "Bench Tag";

/// One benchmarked operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// Create a chat of one to four turns and two tags.
    CreateChat,
    /// Append a message to an existing chat.
    UpsertMessage,
    /// Read a chat with its blob.
    GetChat,
    /// The heavy user's first page of chats.
    ListChatsFirstPage,
    /// The same page with the exact total (every match counted).
    ListChatsWithTotal,
    /// A page of the heavy user's chats 90% of the way down.
    ListChatsDeepPage,
    /// The same deep page by cursor (keyset paging).
    ListChatsDeepCursor,
    /// The heavy user's chats that carry two given tags.
    ListByTwoTags,
    /// The heavy user's chats whose title contains a word.
    SearchTitle,
    /// Add a tag to a chat and remove it again.
    AddRemoveTag,
    /// Store a 4 KiB file.
    PutFile,
    /// Read a file's metadata and bytes.
    GetFile,
    /// A model's main list for the heavy user, through the typed API.
    List(Model),
    /// One record of a model by id, through the typed API.
    Get(Model),
    /// Insert 32 vector chunks.
    VectorInsertBatch,
    /// Find the 5 nearest chunks of the knowledge collection.
    VectorSearch,
}

impl Op {
    /// Every operation, in report order.
    pub const ALL: [Op; 34] = [
        Op::CreateChat,
        Op::UpsertMessage,
        Op::GetChat,
        Op::ListChatsFirstPage,
        Op::ListChatsWithTotal,
        Op::ListChatsDeepPage,
        Op::ListChatsDeepCursor,
        Op::ListByTwoTags,
        Op::SearchTitle,
        Op::AddRemoveTag,
        Op::PutFile,
        Op::GetFile,
        Op::VectorInsertBatch,
        Op::VectorSearch,
        Op::List(Model::Folders),
        Op::Get(Model::Folders),
        Op::List(Model::Knowledge),
        Op::Get(Model::Knowledge),
        Op::List(Model::Notes),
        Op::Get(Model::Notes),
        Op::List(Model::Memories),
        Op::Get(Model::Memories),
        Op::List(Model::Prompts),
        Op::Get(Model::Prompts),
        Op::List(Model::Models),
        Op::Get(Model::Models),
        Op::List(Model::Groups),
        Op::Get(Model::Groups),
        Op::List(Model::Channels),
        Op::Get(Model::Channels),
        Op::List(Model::ChannelMessages),
        Op::Get(Model::ChannelMessages),
        Op::List(Model::Feedback),
        Op::Get(Model::Feedback),
    ];

    /// A short name for tables and charts.
    pub fn name(self) -> &'static str {
        match self {
            Op::CreateChat => "create chat",
            Op::UpsertMessage => "upsert message",
            Op::GetChat => "get chat",
            Op::ListChatsFirstPage => "list chats, page 1",
            Op::ListChatsWithTotal => "list chats, page 1 + total",
            Op::ListChatsDeepPage => "list chats, deep page",
            Op::ListChatsDeepCursor => "list chats, deep page by cursor",
            Op::ListByTwoTags => "list by two tags",
            Op::SearchTitle => "search title",
            Op::AddRemoveTag => "add + remove tag",
            Op::PutFile => "put file",
            Op::GetFile => "get file",
            Op::List(m) => m.list_name(),
            Op::Get(m) => m.get_name(),
            Op::VectorInsertBatch => "vector insert batch",
            Op::VectorSearch => "vector search",
        }
    }

    /// An identifier for file names and criterion groups (`create_chat`, ...).
    pub fn slug(self) -> &'static str {
        match self {
            Op::CreateChat => "create_chat",
            Op::UpsertMessage => "upsert_message",
            Op::GetChat => "get_chat",
            Op::ListChatsFirstPage => "list_chats_page1",
            Op::ListChatsWithTotal => "list_chats_page1_total",
            Op::ListChatsDeepPage => "list_chats_deep_page",
            Op::ListChatsDeepCursor => "list_chats_deep_cursor",
            Op::ListByTwoTags => "list_by_two_tags",
            Op::SearchTitle => "search_title",
            Op::AddRemoveTag => "add_remove_tag",
            Op::PutFile => "put_file",
            Op::GetFile => "get_file",
            Op::List(m) => m.list_slug(),
            Op::Get(m) => m.get_slug(),
            Op::VectorInsertBatch => "vector_insert_batch",
            Op::VectorSearch => "vector_search",
        }
    }

    /// What one iteration does, for the report.
    pub fn describe(self) -> &'static str {
        match self {
            Op::CreateChat => {
                "`chats.create` of a generated chat (1–4 turns in its blob) with 2 tags"
            }
            Op::UpsertMessage => {
                "`messages.upsert` of a new 300-character message into an existing chat"
            }
            Op::GetChat => "`chats.get` of an existing chat (blob included)",
            Op::ListChatsFirstPage => {
                "`chats.list_items` (no total, as Open WebUI's sidebar asks) of the heavy user, \
                 first page of 60"
            }
            Op::ListChatsWithTotal => {
                "`chats.list` of the heavy user, first page of 60 and the exact total (every \
                 match counted)"
            }
            Op::ListChatsDeepPage => {
                "`chats.list_items` of the heavy user, the page of 60 at 90% depth"
            }
            Op::ListChatsDeepCursor => {
                "`chats.list_items` of the heavy user, the page of 60 at 90% depth by cursor \
                 (`ChatQuery::after`, keyset paging)"
            }
            Op::ListByTwoTags => {
                "`chats.list_items` of the heavy user filtered by two tags (all of them), first \
                 page"
            }
            Op::SearchTitle => {
                "`chats.list_items` of the heavy user filtered by a title substring, first page"
            }
            Op::AddRemoveTag => "`chats.add_tag` then `chats.remove_tag` on an existing chat",
            Op::PutFile => "`files.put` of 4 KiB of Markdown",
            Op::GetFile => "`files.get` then `files.read` (sha256 checked) of an existing file",
            Op::List(m) => m.list_call(),
            Op::Get(_) => "the model's typed `get` of an existing record by id",
            Op::VectorInsertBatch => "`vectors.insert` of 32 chunks of 384 dimensions",
            Op::VectorSearch => {
                "`vectors.search` of one 384-dimension query, k = 5, in the knowledge collection"
            }
        }
    }

    /// Whether a backend with these capabilities can do the operation.
    pub fn supported_by(self, caps: Capabilities) -> bool {
        match self {
            Op::PutFile | Op::GetFile => caps.files,
            Op::VectorInsertBatch | Op::VectorSearch => caps.vectors,
            // A store without rows answers Unsupported from `Store::workspace`.
            Op::List(_) | Op::Get(_) => caps.chats,
            _ => caps.chats,
        }
    }

    /// Whether the operation only reads.
    pub fn is_read(self) -> bool {
        !matches!(
            self,
            Op::CreateChat
                | Op::UpsertMessage
                | Op::AddRemoveTag
                | Op::PutFile
                | Op::VectorInsertBatch
        )
    }

    /// Whether the operation leaves records behind that [`Fixture::clean_up`] deletes.
    pub fn creates_records(self) -> bool {
        matches!(
            self,
            Op::CreateChat | Op::UpsertMessage | Op::PutFile | Op::VectorInsertBatch
        )
    }

    /// The operation whose slug or name is `s`.
    pub fn from_slug(s: &str) -> Option<Op> {
        Op::ALL
            .into_iter()
            .find(|op| op.slug() == s || op.name() == s)
    }

    /// Runs iteration `i` of this operation against `store`.
    pub async fn run(self, store: &Store, fx: &Fixture, i: u64) -> Result<()> {
        match self {
            Op::CreateChat => create_chat(store, fx, i).await,
            Op::UpsertMessage => upsert_message(store, fx, i).await,
            Op::GetChat => get_chat(store, fx, i).await,
            Op::ListChatsFirstPage => list_chats_first_page(store, fx, i).await,
            Op::ListChatsWithTotal => list_chats_with_total(store, fx, i).await,
            Op::ListChatsDeepPage => list_chats_deep_page(store, fx, i).await,
            Op::ListChatsDeepCursor => list_chats_deep_cursor(store, fx, i).await,
            Op::ListByTwoTags => list_by_two_tags(store, fx, i).await,
            Op::SearchTitle => search_title(store, fx, i).await,
            Op::AddRemoveTag => add_remove_tag(store, fx, i).await,
            Op::PutFile => put_file(store, fx, i).await,
            Op::GetFile => get_file(store, fx, i).await,
            Op::List(m) => models::list(&store.workspace()?, &fx.workload, m).await,
            Op::Get(m) => models::get(&store.workspace()?, &fx.workload, m, i % PLAN_INPUTS).await,
            Op::VectorInsertBatch => vector_insert_batch(store, fx, i).await,
            Op::VectorSearch => vector_search(store, fx, i).await,
        }
    }
}

/// The inputs of every operation, built once from the loaded [`Workload`], shared by the
/// adapter's runs and the raw baseline's.
#[derive(Debug)]
pub struct Fixture {
    /// The workload that was loaded.
    pub workload: Workload,
    /// Ids of every loaded user, by index.
    pub user_ids: Vec<String>,
    /// Ids of every loaded chat, by index.
    pub chat_ids: Vec<String>,
    /// The heavy user (user 0), whose chats the list operations page through.
    pub heavy_user_id: String,
    /// The offset of the deep page: 90% of the heavy user's chats, on a page boundary.
    pub deep_offset: u64,
    /// The cursor of the same page, read from the first store it runs on (the loaded chats
    /// are the same in every store; `None` inside when the deep page is the first).
    deep_cursor: OnceLock<Option<ChatCursor>>,
    /// The two tag names of the tag filter.
    pub two_tags: [String; 2],
    /// Ids of every loaded file, by index.
    pub file_ids: Vec<String>,
    /// Ids of every loaded note, by index.
    pub note_ids: Vec<String>,
    /// The row-store reads each model operation makes, per input (see
    /// [`Fixture::record_row_plans`]), for raw baselines.
    row_plans: Mutex<HashMap<(Op, u64), Arc<RowPlan>>>,
    /// Chats to create (fresh ids are set per iteration).
    pub new_chats: Vec<NewChat>,
    /// Message texts to upsert.
    pub message_texts: Vec<String>,
    /// The bytes `put_file` stores.
    pub file_bytes: Vec<u8>,
    /// One batch of chunks to insert (fresh ids are set per iteration).
    pub insert_batch: Vec<VectorItem>,
    /// Query vectors for searches.
    pub query_vectors: Vec<Vec<f32>>,
    next: AtomicU64,
    created: Mutex<Vec<Created>>,
}

/// A record a write operation created, to delete again in [`Fixture::clean_up`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Created {
    Chat(String),
    Message { chat: String, id: String },
    File(String),
    Vectors,
}

impl Fixture {
    /// The fixture of a loaded workload.
    pub fn new(workload: Workload) -> Self {
        let w = workload;
        let heavy = w.heavy_user_chats();
        let deep_offset = (heavy * 9 / 10) / PAGE_SIZE * PAGE_SIZE;
        let new_chats = (0..16)
            .map(|k| {
                let mut chat = w.chat(w.chats() + k);
                chat.user_id = w.user_id(k % w.users());
                chat.tags = vec![
                    TAG_NAMES[(k % 24) as usize].to_owned(),
                    TAG_NAMES[((k + 5) % 24) as usize].to_owned(),
                ];
                chat
            })
            .collect();
        let mut rng = Rng::for_item(w.seed, "fixture", 0);
        let message_texts = (0..16).map(|_| workload::prose(&mut rng, 300)).collect();
        let file_bytes = workload::prose(&mut rng, 4_096).into_bytes();
        let insert_batch = (0..INSERT_BATCH)
            .map(|_| VectorItem {
                id: String::new(),
                text: workload::prose(&mut rng, 500),
                vector: workload::embedding(&mut rng),
                metadata: Map::from_iter([("source".to_owned(), "bench-upload.pdf".into())]),
            })
            .collect();
        let [a, b] = w.two_tags();
        Fixture {
            workload: w,
            user_ids: (0..w.users()).map(|u| w.user_id(u)).collect(),
            chat_ids: (0..w.chats()).map(|c| w.chat_id(c)).collect(),
            heavy_user_id: w.user_id(0),
            deep_offset,
            deep_cursor: OnceLock::new(),
            two_tags: [a.to_owned(), b.to_owned()],
            file_ids: (0..w.files()).map(|f| w.file_id(f)).collect(),
            note_ids: (0..w.notes()).map(|n| w.note_id(n)).collect(),
            row_plans: Mutex::new(HashMap::new()),
            new_chats,
            message_texts,
            file_bytes,
            insert_batch,
            query_vectors: (0..64).map(|q| w.query_vector(q)).collect(),
            next: AtomicU64::new(0),
            created: Mutex::new(Vec::new()),
        }
    }

    /// A fresh uuid-shaped id, never handed out before by this fixture.
    pub fn fresh_id(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        Rng::for_item(self.workload.seed, "fresh", n).uuid()
    }

    /// Existing chat number `i` (modulo the number of chats).
    pub fn chat_id(&self, i: u64) -> &str {
        pick(&self.chat_ids, i)
    }

    /// Existing user number `i` (modulo the number of users).
    pub fn user_id(&self, i: u64) -> &str {
        pick(&self.user_ids, i)
    }

    /// Existing file number `i` (modulo the number of files).
    pub fn file_id(&self, i: u64) -> &str {
        pick(&self.file_ids, i)
    }

    /// Existing note number `i` (modulo the number of notes).
    pub fn note_id(&self, i: u64) -> &str {
        pick(&self.note_ids, i)
    }

    /// Records, once per input, the row-store reads every model operation makes on `store`
    /// (through its typed API, on the loaded data), for raw baselines to replay. A store
    /// without rows records nothing.
    pub async fn record_row_plans(&self, store: &Store) -> Result<()> {
        for op in Op::ALL {
            let inputs = match op {
                Op::List(_) => 1,
                Op::Get(_) => PLAN_INPUTS,
                _ => continue,
            };
            for i in 0..inputs {
                let w = &self.workload;
                let plan = models::record(store, |ws| async move {
                    match op {
                        Op::List(m) => models::list(&ws, w, m).await,
                        Op::Get(m) => models::get(&ws, w, m, i).await,
                        _ => Ok(()),
                    }
                })
                .await?;
                if let (Some(plan), Ok(mut plans)) = (plan, self.row_plans.lock()) {
                    plans.insert((op, i), Arc::new(plan));
                }
            }
        }
        Ok(())
    }

    /// The row-store reads of iteration `i` of a model operation, when recorded.
    pub fn row_plan(&self, op: Op, i: u64) -> Option<Arc<RowPlan>> {
        let key = match op {
            Op::Get(_) => (op, i % PLAN_INPUTS),
            _ => (op, 0),
        };
        self.row_plans.lock().ok()?.get(&key).cloned()
    }

    /// Query vector number `i` (modulo their number).
    pub fn query_vector(&self, i: u64) -> &[f32] {
        self.query_vectors
            .get((i % self.query_vectors.len().max(1) as u64) as usize)
            .map_or(&[], Vec::as_slice)
    }

    fn remember(&self, created: Created) {
        if let Ok(mut list) = self.created.lock() {
            list.push(created);
        }
    }

    /// Deletes what the write operations created since the last clean-up (chats, messages,
    /// files, inserted vectors), so that every operation sees the loaded data set and repeated
    /// runs do not let the store grow. Records that are already gone are passed over.
    pub async fn clean_up(&self, store: &Store) -> Result<()> {
        self.clean_up_on(&[store]).await
    }

    /// [`Fixture::clean_up`] on each of `stores` in turn (a run that measured several stores
    /// side by side): every record created since the last clean-up is deleted from each of
    /// them, wherever it was created.
    pub async fn clean_up_on(&self, stores: &[&Store]) -> Result<()> {
        let mut created = match self.created.lock() {
            Ok(mut list) => std::mem::take(&mut *list),
            Err(_) => return Ok(()),
        };
        created.dedup();
        for store in stores {
            for record in &created {
                let result = match record {
                    Created::Chat(id) => store.chats.delete(id).await,
                    Created::Message { chat, id } => store.messages.delete(chat, id).await,
                    Created::File(id) => store.files.delete(id).await,
                    Created::Vectors => store.vectors.delete_collection(INSERT_COLLECTION).await,
                };
                match result {
                    Err(e) if !matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Unsupported) => {
                        return Err(e);
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// The chat that iteration `i` of `create_chat` creates, with a fresh id.
    pub fn new_chat(&self, i: u64) -> NewChat {
        let mut chat = self.new_chats[(i % self.new_chats.len() as u64) as usize].clone();
        let id = self.fresh_id();
        self.remember(Created::Chat(id.clone()));
        chat.id = Some(id);
        chat.created_at = None;
        chat.updated_at = None;
        chat
    }

    /// The message that iteration `i` of `upsert_message` writes, with a fresh id.
    pub fn new_message(&self, i: u64) -> NewMessage {
        let text = pick(&self.message_texts, i);
        let id = self.fresh_id();
        self.remember(Created::Message {
            chat: self.chat_id(i).to_owned(),
            id: id.clone(),
        });
        NewMessage::text(self.chat_id(i), id, "user", text)
    }

    /// The file that iteration `i` of `put_file` stores, with a fresh id.
    pub fn new_file(&self, i: u64) -> NewFile {
        let id = self.fresh_id();
        self.remember(Created::File(id.clone()));
        let mut file = NewFile::new(
            self.user_id(i),
            format!("upload-{i}.md"),
            self.file_bytes.clone(),
        )
        .with_id(id);
        file.content_type = Some("text/markdown".into());
        file
    }

    /// The chunks that one insert batch writes, with fresh ids.
    pub fn new_batch(&self) -> Vec<VectorItem> {
        self.remember(Created::Vectors);
        self.insert_batch
            .iter()
            .map(|item| VectorItem {
                id: self.fresh_id(),
                ..item.clone()
            })
            .collect()
    }

    /// The heavy user's first page of chats.
    pub fn first_page_query(&self) -> ChatQuery {
        ChatQuery::for_user(&self.heavy_user_id).page(PageRequest::first(PAGE_SIZE))
    }

    /// The heavy user's deep page of chats.
    pub fn deep_page_query(&self) -> ChatQuery {
        ChatQuery::for_user(&self.heavy_user_id).page(PageRequest::new(self.deep_offset, PAGE_SIZE))
    }

    /// The heavy user's deep page of chats by cursor: the cursor is the chat before the deep
    /// page, read once (untimed but for the first iteration's read).
    pub async fn deep_cursor_query(&self, store: &Store) -> Result<ChatQuery> {
        let query = self.first_page_query();
        let cursor = match self.deep_cursor.get() {
            Some(cursor) => cursor.clone(),
            None => {
                let before = ChatQuery::for_user(&self.heavy_user_id)
                    .page(PageRequest::new(self.deep_offset.saturating_sub(1), 1));
                let chat = match self.deep_offset {
                    0 => None,
                    _ => store.chats.list_items(&before).await?.into_iter().next(),
                };
                let cursor = chat.map(|c| ChatCursor::after(&c, query.order));
                self.deep_cursor.get_or_init(|| cursor).clone()
            }
        };
        Ok(match cursor {
            Some(cursor) => query.after(cursor),
            None => query,
        })
    }

    /// The heavy user's chats with both tags, first page.
    pub fn two_tags_query(&self) -> ChatQuery {
        self.first_page_query().with_tags(self.two_tags.clone())
    }

    /// The heavy user's chats whose title contains [`SEARCH_TERM`], first page.
    pub fn title_query(&self) -> ChatQuery {
        self.first_page_query().with_title(SEARCH_TERM)
    }
}

fn pick<T: AsRef<str>>(items: &[T], i: u64) -> &str {
    items
        .get((i % items.len().max(1) as u64) as usize)
        .map_or("", AsRef::as_ref)
}

/// Creates a chat of one to four turns and two tags for user `i`.
pub async fn create_chat(store: &Store, fx: &Fixture, i: u64) -> Result<()> {
    store.chats.create(fx.new_chat(i)).await.map(drop)
}

/// Appends a 300-character user message to chat `i`.
pub async fn upsert_message(store: &Store, fx: &Fixture, i: u64) -> Result<()> {
    store.messages.upsert(fx.new_message(i)).await.map(drop)
}

/// Reads chat `i` with its blob.
pub async fn get_chat(store: &Store, fx: &Fixture, i: u64) -> Result<()> {
    store.chats.get(fx.chat_id(i)).await.map(drop)
}

/// Lists the heavy user's first page of chats.
pub async fn list_chats_first_page(store: &Store, fx: &Fixture, _i: u64) -> Result<()> {
    store
        .chats
        .list_items(&fx.first_page_query())
        .await
        .map(drop)
}

/// Lists the heavy user's first page of chats with the exact total.
pub async fn list_chats_with_total(store: &Store, fx: &Fixture, _i: u64) -> Result<()> {
    store.chats.list(&fx.first_page_query()).await.map(drop)
}

/// Lists the heavy user's page of chats at 90% depth.
pub async fn list_chats_deep_page(store: &Store, fx: &Fixture, _i: u64) -> Result<()> {
    store
        .chats
        .list_items(&fx.deep_page_query())
        .await
        .map(drop)
}

/// Lists the heavy user's page of chats at 90% depth by cursor.
pub async fn list_chats_deep_cursor(store: &Store, fx: &Fixture, _i: u64) -> Result<()> {
    let query = fx.deep_cursor_query(store).await?;
    store.chats.list_items(&query).await.map(drop)
}

/// Lists the heavy user's chats that carry both of the fixture's tags.
pub async fn list_by_two_tags(store: &Store, fx: &Fixture, _i: u64) -> Result<()> {
    store.chats.list_items(&fx.two_tags_query()).await.map(drop)
}

/// Lists the heavy user's chats whose title contains the search term.
pub async fn search_title(store: &Store, fx: &Fixture, _i: u64) -> Result<()> {
    store.chats.list_items(&fx.title_query()).await.map(drop)
}

/// Adds [`BENCH_TAG`] to chat `i` and removes it again.
pub async fn add_remove_tag(store: &Store, fx: &Fixture, i: u64) -> Result<()> {
    let chat = fx.chat_id(i);
    store.chats.add_tag(chat, BENCH_TAG).await?;
    store.chats.remove_tag(chat, BENCH_TAG).await.map(drop)
}

/// Stores 4 KiB of Markdown for user `i`.
pub async fn put_file(store: &Store, fx: &Fixture, i: u64) -> Result<()> {
    store.files.put(fx.new_file(i)).await.map(drop)
}

/// Reads file `i`'s metadata and bytes.
pub async fn get_file(store: &Store, fx: &Fixture, i: u64) -> Result<()> {
    let id = fx.file_id(i);
    store.files.get(id).await?;
    store.files.read(id).await.map(drop)
}

/// Inserts a batch of [`INSERT_BATCH`] chunks into [`INSERT_COLLECTION`].
pub async fn vector_insert_batch(store: &Store, fx: &Fixture, _i: u64) -> Result<()> {
    store
        .vectors
        .insert(INSERT_COLLECTION, fx.new_batch())
        .await
}

/// Searches the knowledge collection for the [`SEARCH_K`] nearest chunks of query vector `i`.
pub async fn vector_search(store: &Store, fx: &Fixture, i: u64) -> Result<()> {
    let query = [fx.query_vector(i).to_vec()];
    store
        .vectors
        .search(KNOWLEDGE_COLLECTION, &query, None, SEARCH_K)
        .await
        .map(drop)
}
