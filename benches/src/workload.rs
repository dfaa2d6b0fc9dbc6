//! The benchmark workload: a seeded, realistic Open WebUI data set.
//!
//! Users own chats the way a real deployment's users do: one heavy user holds a tenth of all
//! chats (at least 300), everybody else about 40. A chat is a multi-turn conversation (one to
//! four turns; user prompts of 40–400 characters, assistant answers of 200–2,000 with the odd
//! code block) whose messages live in the chat blob's `history`, as Open WebUI writes them. Each
//! user has a vocabulary of eight tags, applied with falling probability; titles come from a
//! list of topics, so a title search matches about one chat in twenty. There is one file of
//! 1–8 KiB per ten chats, and as many 384-dimension vector chunks as chats: four per file in
//! the file's own collection (`file-{id}`, as Open WebUI names them) and the rest in one
//! knowledge collection that searches run against.
//!
//! Every record is generated from `(seed, kind, index)` alone, so records can be produced one
//! batch at a time, and the same seed gives the same data on every machine.

use std::fmt;
use std::str::FromStr;

use chatstore_core::{NewChat, NewFile, NewUser, Result, Store, VectorItem};
use serde_json::{Map, Value, json};

use crate::rng::Rng;

/// Dimension of the vector chunks (all-MiniLM-L6-v2, Open WebUI's default embedding model).
pub const DIM: usize = 384;

/// How many chats a page of the chat list holds (Open WebUI's sidebar loads 60 at a time).
pub const PAGE_SIZE: u64 = 60;

/// The collection that holds most vector chunks and that searches run against.
pub const KNOWLEDGE_COLLECTION: &str = "knowledge-bench";

/// Vector chunks per file, stored in the file's own collection.
pub const CHUNKS_PER_FILE: u64 = 4;

/// The seed used when none is given.
pub const DEFAULT_SEED: u64 = 0x00c4_a75f_04e5;

/// Chats per user, apart from the heavy user.
const CHATS_PER_USER: u64 = 40;

/// The first epoch second of the workload's timestamps (2025-06-15).
const BASE_TIME: i64 = 1_750_000_000;

/// How many chats the workload holds: parsed from `"1k"`, `"10k"`, `"100k"`, `"1m"` or a plain
/// number such as `"50"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scale {
    chats: u64,
}

impl Scale {
    /// 1,000 chats: the default of `cargo bench`.
    pub const SMALL: Scale = Scale { chats: 1_000 };
    /// 10,000 chats.
    pub const MEDIUM: Scale = Scale { chats: 10_000 };
    /// 100,000 chats.
    pub const LARGE: Scale = Scale { chats: 100_000 };

    /// A workload of `chats` chats (at least one).
    pub fn new(chats: u64) -> Self {
        Scale {
            chats: chats.max(1),
        }
    }

    /// The number of chats.
    pub fn chats(self) -> u64 {
        self.chats
    }
}

impl Default for Scale {
    fn default() -> Self {
        Scale::SMALL
    }
}

impl fmt::Display for Scale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.chats {
            n if n >= 1_000_000 && n % 1_000_000 == 0 => write!(f, "{}m", n / 1_000_000),
            n if n >= 1_000 && n % 1_000 == 0 => write!(f, "{}k", n / 1_000),
            n => write!(f, "{n}"),
        }
    }
}

/// A scale that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scale {0:?} is not a number of chats such as 1k, 10k, 100k or 500")]
pub struct ParseScaleError(String);

impl FromStr for Scale {
    type Err = ParseScaleError;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        let (digits, factor) = match t.strip_suffix('k') {
            Some(d) => (d, 1_000),
            None => match t.strip_suffix('m') {
                Some(d) => (d, 1_000_000),
                None => (t.as_str(), 1),
            },
        };
        let n: u64 = digits.parse().map_err(|_| ParseScaleError(s.to_owned()))?;
        match n.checked_mul(factor) {
            Some(chats) if chats > 0 => Ok(Scale { chats }),
            _ => Err(ParseScaleError(s.to_owned())),
        }
    }
}

/// The tag names users pick from; each user's vocabulary is eight of them.
pub const TAG_NAMES: [&str; 24] = [
    "Work", "Research", "Rust", "Python", "Ideas", "Travel", "Recipes", "Writing", "Finance",
    "Health", "Music", "Homework", "Meetings", "Ops", "Frontend", "Data", "Legal", "Hiring",
    "Books", "Garden", "Gaming", "Family", "Design", "Math",
];

/// Topics that titles are made of; [`SEARCH_TERM`] is one of them.
pub const TOPICS: [&str; 20] = [
    "Kubernetes",
    "sourdough",
    "tax return",
    "borrow checker",
    "React hooks",
    "trip to Lisbon",
    "quarterly report",
    "SQL indexes",
    "marathon training",
    "cover letter",
    "vector search",
    "home network",
    "bread recipe",
    "linear algebra",
    "job interview",
    "garden beds",
    "async Rust",
    "budget spreadsheet",
    "novel outline",
    "Docker compose",
];

/// A title search term that matches about one chat in twenty (any case).
pub const SEARCH_TERM: &str = "kubernetes";

const TITLE_FORMS: [&str; 8] = [
    "Help with {}",
    "{} questions",
    "Notes on {}",
    "Debugging {}",
    "Planning the {}",
    "{}: first draft",
    "Explain {} simply",
    "Ideas for {}",
];

const MODELS: [&str; 4] = ["llama3.1:8b", "gpt-4o", "qwen2.5:14b", "mistral-nemo:12b"];

const WORDS: [&str; 96] = [
    "the",
    "a",
    "to",
    "of",
    "and",
    "in",
    "is",
    "that",
    "for",
    "it",
    "with",
    "as",
    "on",
    "be",
    "this",
    "can",
    "you",
    "are",
    "from",
    "by",
    "or",
    "an",
    "not",
    "we",
    "which",
    "will",
    "function",
    "value",
    "server",
    "request",
    "memory",
    "index",
    "query",
    "table",
    "model",
    "data",
    "error",
    "result",
    "version",
    "config",
    "thread",
    "cache",
    "latency",
    "page",
    "user",
    "message",
    "token",
    "vector",
    "schema",
    "column",
    "network",
    "budget",
    "plan",
    "week",
    "morning",
    "flour",
    "water",
    "dough",
    "oven",
    "recipe",
    "trip",
    "train",
    "hotel",
    "museum",
    "report",
    "chapter",
    "draft",
    "argument",
    "example",
    "reason",
    "because",
    "however",
    "first",
    "then",
    "finally",
    "usually",
    "quickly",
    "carefully",
    "simple",
    "complex",
    "better",
    "worse",
    "faster",
    "smaller",
    "larger",
    "important",
    "useful",
    "possible",
    "different",
    "similar",
    "clear",
    "correct",
    "should",
    "would",
    "could",
    "might",
];

const CODE_BLOCK: &str = "\n\n```rust\nfn main() {\n    let items: Vec<u32> = (1..=10).collect();\n    let total: u32 = items.iter().sum();\n    println!(\"total = {total}\");\n}\n```\n\n";

/// Prose of about `len` characters: sentences of random words.
pub fn prose(rng: &mut Rng, len: usize) -> String {
    let mut out = String::with_capacity(len + 16);
    let mut in_sentence = 0;
    while out.len() < len {
        let word = rng.pick(&WORDS).copied().unwrap_or("data");
        if in_sentence == 0 {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                out.extend(first.to_uppercase());
                out.push_str(chars.as_str());
            }
        } else {
            out.push_str(word);
        }
        in_sentence += 1;
        if in_sentence > 6 && rng.chance(0.15) {
            out.push_str(". ");
            in_sentence = 0;
        } else {
            out.push(' ');
        }
    }
    let trimmed = out.trim_end().trim_end_matches('.').len();
    out.truncate(trimmed);
    out.push('.');
    out
}

/// A seeded vector of [`DIM`] components in `[-1, 1)`, never all zero.
pub fn embedding(rng: &mut Rng) -> Vec<f32> {
    let mut v: Vec<f32> = (0..DIM).map(|_| (rng.unit() * 2.0 - 1.0) as f32).collect();
    if v.iter().all(|x| *x == 0.0) {
        v[0] = 1.0;
    }
    v
}

/// The seeded workload at one scale: how many records of each kind, and each record by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    /// The seed every record is derived from.
    pub seed: u64,
    /// How many chats.
    pub scale: Scale,
}

impl Workload {
    /// The workload of `scale` under `seed`.
    pub fn new(scale: Scale, seed: u64) -> Self {
        Workload { seed, scale }
    }

    /// Number of chats.
    pub fn chats(&self) -> u64 {
        self.scale.chats()
    }

    /// Chats of the heavy user (user 0): a tenth of all chats, at least 300 (or all of them).
    pub fn heavy_user_chats(&self) -> u64 {
        (self.chats() / 10).max(self.chats().min(300))
    }

    /// Number of users: the heavy user plus one per forty remaining chats.
    pub fn users(&self) -> u64 {
        1 + (self.chats() - self.heavy_user_chats()).div_ceil(CHATS_PER_USER)
    }

    /// Number of files: one per ten chats, at least one.
    pub fn files(&self) -> u64 {
        (self.chats() / 10).max(1)
    }

    /// Number of vector chunks in the knowledge collection (the rest belong to files).
    pub fn knowledge_chunks(&self) -> u64 {
        self.chats()
            .saturating_sub(self.files() * CHUNKS_PER_FILE)
            .max(1)
    }

    /// Every record the workload loads: users, chats, files and vector chunks.
    pub fn records(&self) -> u64 {
        self.users()
            + self.chats()
            + self.files()
            + self.files() * CHUNKS_PER_FILE
            + self.knowledge_chunks()
    }

    fn rng(&self, stream: &str, index: u64) -> Rng {
        Rng::for_item(self.seed, stream, index)
    }

    /// The id of user `i`.
    pub fn user_id(&self, i: u64) -> String {
        self.rng("user-id", i).uuid()
    }

    /// User `i`.
    pub fn user(&self, i: u64) -> NewUser {
        let mut rng = self.rng("user", i);
        let created = BASE_TIME - 86_400 * 30 + i as i64;
        NewUser {
            id: Some(self.user_id(i)),
            email: format!("user{i}@bench.example"),
            name: format!("Bench User {i}"),
            role: Some(if i == 0 { "admin" } else { "user" }.to_owned()),
            profile_image_url: None,
            info: None,
            settings: Some(
                json!({"ui": {"theme": if rng.chance(0.5) { "dark" } else { "light" }}}),
            ),
            created_at: Some(created),
            updated_at: Some(created),
            last_active_at: None,
        }
    }

    /// The index of the user who owns chat `i`.
    pub fn chat_owner(&self, i: u64) -> u64 {
        let heavy = self.heavy_user_chats();
        if i < heavy || self.users() < 2 {
            0
        } else {
            1 + (i - heavy) % (self.users() - 1)
        }
    }

    /// The tag vocabulary of user `u`: eight names, the heavy user's being the first eight.
    pub fn tag_vocabulary(&self, u: u64) -> Vec<&'static str> {
        let start = if u == 0 {
            0
        } else {
            self.rng("vocab", u).below(TAG_NAMES.len() as u64) as usize
        };
        (0..8)
            .map(|k| TAG_NAMES[(start + k * 3) % TAG_NAMES.len()])
            .collect()
    }

    /// The two tags the tag-filter benchmark asks the heavy user for (about one chat in ten
    /// has both).
    pub fn two_tags(&self) -> [&'static str; 2] {
        let v = self.tag_vocabulary(0);
        [v[0], v[1]]
    }

    /// The id of chat `i`.
    pub fn chat_id(&self, i: u64) -> String {
        self.rng("chat-id", i).uuid()
    }

    /// Chat `i`: a multi-turn conversation in the blob's `history`, with its tags.
    pub fn chat(&self, i: u64) -> NewChat {
        let mut rng = self.rng("chat", i);
        let owner = self.chat_owner(i);
        let user_id = self.user_id(owner);
        let topic = TOPICS[(i % TOPICS.len() as u64) as usize];
        let form = rng.pick(&TITLE_FORMS).copied().unwrap_or("{}");
        let title = form.replace("{}", topic);
        let model = rng.pick(&MODELS).copied().unwrap_or(MODELS[0]);
        let vocab = self.tag_vocabulary(owner);
        let tags: Vec<String> = vocab
            .iter()
            .enumerate()
            .filter(|(k, _)| rng.chance(0.45 / (*k as f64 + 1.0)))
            .map(|(_, t)| (*t).to_owned())
            .collect();
        let created = BASE_TIME + i as i64 * 60 + rng.below(60) as i64;
        let turns = rng.range(1, 4);
        let mut messages = Map::new();
        let mut parent: Option<String> = None;
        let mut ts = created;
        let mut last = String::new();
        for turn in 0..turns {
            for role in ["user", "assistant"] {
                let id = rng.uuid();
                let len = if role == "user" {
                    rng.range(40, 400)
                } else {
                    rng.range(200, 2_000)
                } as usize;
                let mut content = prose(&mut rng, len);
                if role == "assistant" && rng.chance(0.25) {
                    content.insert_str(content.len() / 2, CODE_BLOCK);
                }
                let mut m = json!({
                    "id": id,
                    "parentId": parent,
                    "role": role,
                    "content": content,
                    "timestamp": ts,
                    "done": true,
                });
                if role == "assistant" {
                    m["model"] = json!(model);
                    m["usage"] = json!({
                        "prompt_tokens": 40 + turn * 300,
                        "completion_tokens": len / 4,
                    });
                }
                messages.insert(id.clone(), m);
                parent = Some(id.clone());
                last = id;
                ts += rng.range(5, 90) as i64;
            }
        }
        NewChat {
            id: Some(self.chat_id(i)),
            user_id,
            title: Some(title.clone()),
            chat: Some(json!({
                "title": title,
                "models": [model],
                "params": {},
                "history": {"messages": messages, "currentId": last},
                "tags": [],
                "timestamp": created * 1000,
            })),
            meta: None,
            tags,
            archived: rng.chance(0.03),
            pinned: rng.chance(0.02),
            folder_id: None,
            share_id: None,
            created_at: Some(created),
            updated_at: Some(ts),
        }
    }

    /// Number of notes (rows of Open WebUI's `note` table): one per two chats, at least one;
    /// the heavy user owns a tenth of them, like its chats.
    pub fn notes(&self) -> u64 {
        (self.chats() / 2).max(1)
    }

    /// The id of note `i`.
    pub fn note_id(&self, i: u64) -> String {
        self.rng("note-id", i).uuid()
    }

    /// Note `i` as the row Open WebUI stores: Markdown and HTML content in `data`, no `meta`,
    /// nanosecond timestamps, owned by the owner of chat `2 i`.
    pub fn note(&self, i: u64) -> chatstore_core::Row {
        let mut rng = self.rng("note", i);
        let owner = self.chat_owner((i * 2).min(self.chats() - 1));
        let topic = TOPICS[rng.below(TOPICS.len() as u64) as usize];
        let len = rng.range(200, 2_000) as usize;
        let md = prose(&mut rng, len);
        let created = (BASE_TIME + i as i64) * 1_000_000_000;
        let updated = created + rng.below(86_400 * 30) as i64 * 1_000_000_000;
        chatstore_core::rows::row([
            ("id", json!(self.note_id(i))),
            ("user_id", json!(self.user_id(owner))),
            ("title", json!(format!("Notes on {topic} {i}"))),
            (
                "data",
                json!({"content": {"json": null, "html": format!("<p>{md}</p>"), "md": md}}),
            ),
            ("meta", Value::Null),
            ("created_at", json!(created)),
            ("updated_at", json!(updated)),
        ])
    }

    /// Loads the notes into `store`'s rows, then the other models' records ([`crate::models`])
    /// through the typed API (nothing when the store has no rows), calling `progress` with the
    /// records written. Apart from [`Workload::load`] so the bulk-import comparison keeps
    /// comparing the same records.
    pub async fn load_rows(&self, store: &Store, progress: &(dyn Fn(u64) + Sync)) -> Result<()> {
        const BATCH: u64 = 500;
        let Ok(rows) = store.rows() else {
            progress(self.notes());
            return Ok(());
        };
        for start in (0..self.notes()).step_by(BATCH as usize) {
            let end = (start + BATCH).min(self.notes());
            let ops = (start..end)
                .map(|i| chatstore_core::RowOp::Upsert {
                    table: &chatstore_core::rows::tables::NOTE,
                    row: self.note(i),
                })
                .collect();
            rows.write(ops).await?;
            progress(end - start);
        }
        // The other models through their typed API (folders, knowledge, memories, ...).
        crate::models::load(self, store, progress).await
    }

    /// The id of file `i`.
    pub fn file_id(&self, i: u64) -> String {
        self.rng("file-id", i).uuid()
    }

    /// File `i`: 1–8 KiB of Markdown text owned by the owner of chat `10 i`.
    pub fn file(&self, i: u64) -> NewFile {
        let mut rng = self.rng("file", i);
        let owner = self.chat_owner((i * 10).min(self.chats() - 1));
        let len = rng.range(1_024, 8_192) as usize;
        let topic = TOPICS[rng.below(TOPICS.len() as u64) as usize];
        let mut data = Map::new();
        data.insert("status".into(), json!("completed"));
        let mut meta = Map::new();
        meta.insert(
            "collection_name".into(),
            Value::String(format!("file-{}", self.file_id(i))),
        );
        NewFile {
            id: Some(self.file_id(i)),
            user_id: self.user_id(owner),
            filename: format!("{}-notes-{i}.md", topic.replace(' ', "-")),
            content_type: Some("text/markdown".into()),
            bytes: prose(&mut rng, len).into_bytes(),
            hash: None,
            data,
            meta,
            created_at: Some(BASE_TIME + i as i64 * 600),
            updated_at: Some(BASE_TIME + i as i64 * 600),
        }
    }

    /// The collection of file `i`'s chunks.
    pub fn file_collection(&self, i: u64) -> String {
        format!("file-{}", self.file_id(i))
    }

    /// Vector chunk `k` of file `i`.
    pub fn file_chunk(&self, i: u64, k: u64) -> VectorItem {
        let mut rng = self.rng("file-chunk", i * CHUNKS_PER_FILE + k);
        let mut metadata = Map::new();
        metadata.insert("file_id".into(), json!(self.file_id(i)));
        metadata.insert("page".into(), json!(k));
        chunk(&mut rng, metadata)
    }

    /// Vector chunk `i` of the knowledge collection.
    pub fn knowledge_chunk(&self, i: u64) -> VectorItem {
        let mut rng = self.rng("knowledge-chunk", i);
        let mut metadata = Map::new();
        metadata.insert("source".into(), json!(format!("handbook-{}.pdf", i / 50)));
        metadata.insert("page".into(), json!(i % 50));
        chunk(&mut rng, metadata)
    }

    /// Query vector `i` (not one of the stored vectors).
    pub fn query_vector(&self, i: u64) -> Vec<f32> {
        embedding(&mut self.rng("query", i))
    }

    /// Loads the whole workload into `store` in batches, calling `progress` with the number of
    /// records written after each batch. Aggregates the store cannot hold (see
    /// [`Capabilities`](chatstore_core::Capabilities)) are passed over.
    pub async fn load(&self, store: &Store, progress: &(dyn Fn(u64) + Sync)) -> Result<()> {
        const BATCH: u64 = 500;
        let caps = store.capabilities();
        if !caps.users {
            progress(self.users());
        }
        for start in (0..self.users())
            .step_by(BATCH as usize)
            .filter(|_| caps.users)
        {
            let end = (start + BATCH).min(self.users());
            store
                .users
                .create_many((start..end).map(|i| self.user(i)).collect())
                .await?;
            progress(end - start);
        }
        if !caps.chats {
            progress(self.chats());
        }
        for start in (0..self.chats())
            .step_by(BATCH as usize)
            .filter(|_| caps.chats)
        {
            let end = (start + BATCH).min(self.chats());
            store
                .chats
                .create_many((start..end).map(|i| self.chat(i)).collect())
                .await?;
            progress(end - start);
        }
        const FILE_BATCH: u64 = 50;
        if !caps.files {
            progress(self.files());
        }
        for start in (0..self.files())
            .step_by(FILE_BATCH as usize)
            .filter(|_| caps.files)
        {
            let end = (start + FILE_BATCH).min(self.files());
            store
                .files
                .put_many((start..end).map(|i| self.file(i)).collect())
                .await?;
            progress(end - start);
        }
        if !caps.vectors {
            progress(self.files() * CHUNKS_PER_FILE + self.knowledge_chunks());
            return Ok(());
        }
        for i in 0..self.files() {
            let items = (0..CHUNKS_PER_FILE)
                .map(|k| self.file_chunk(i, k))
                .collect();
            store
                .vectors
                .insert(&self.file_collection(i), items)
                .await?;
            progress(CHUNKS_PER_FILE);
        }
        for start in (0..self.knowledge_chunks()).step_by(BATCH as usize) {
            let end = (start + BATCH).min(self.knowledge_chunks());
            store
                .vectors
                .insert(
                    KNOWLEDGE_COLLECTION,
                    (start..end).map(|i| self.knowledge_chunk(i)).collect(),
                )
                .await?;
            progress(end - start);
        }
        Ok(())
    }
}

fn chunk(rng: &mut Rng, metadata: Map<String, Value>) -> VectorItem {
    let id = rng.uuid();
    let len = rng.range(300, 800) as usize;
    VectorItem {
        id,
        text: prose(rng, len),
        vector: embedding(rng),
        metadata,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_parse_with_suffixes() {
        assert_eq!("1k".parse::<Scale>(), Ok(Scale::SMALL));
        assert_eq!("10K".parse::<Scale>(), Ok(Scale::MEDIUM));
        assert_eq!("100k".parse::<Scale>(), Ok(Scale::LARGE));
        assert_eq!("50".parse::<Scale>().map(Scale::chats), Ok(50));
        assert!("0".parse::<Scale>().is_err());
        assert!("ten".parse::<Scale>().is_err());
        assert_eq!(Scale::LARGE.to_string(), "100k");
    }

    #[test]
    fn the_same_seed_gives_the_same_chat() {
        let w = Workload::new(Scale::SMALL, 1);
        assert_eq!(w.chat(17), w.chat(17));
        assert_ne!(w.chat(17).id, w.chat(18).id);
        assert_ne!(Workload::new(Scale::SMALL, 2).chat(17).id, w.chat(17).id);
    }

    #[test]
    fn counts_are_consistent_at_every_scale() {
        for chats in [1, 50, 1_000, 100_000] {
            let w = Workload::new(Scale::new(chats), 1);
            assert!(w.heavy_user_chats() <= w.chats());
            assert!((0..w.chats()).all(|i| w.chat_owner(i) < w.users()) || chats > 1_000);
            assert!(w.chat_owner(w.chats() - 1) < w.users());
        }
        let w = Workload::new(Scale::LARGE, 1);
        assert_eq!(w.heavy_user_chats(), 10_000);
        assert_eq!(w.users(), 2_251);
    }
}
