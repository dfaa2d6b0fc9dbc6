//! The message upsert's blob rules run in the `tx` route's `upsert_messages` op
//! (`pb_hooks/chatstore.pb.js`), a port of core's `blob::upsert_message`: this property test
//! runs random message writes on PocketBase and on the memory reference model and asserts
//! the same answers, the same chat blobs and the same stored messages.
//!
//! Covered: new and replaced messages, parents that exist or not, parents changed on
//! replace, children written before their parent (their order: timestamp, then id by code
//! point, with non-ASCII and astral ids where UTF-16 order differs), equal timestamps,
//! missing author and creation time (the chat owner's and the stored message's), batches with
//! one id twice, deletions, chats created with a history or a legacy message list (entries
//! holding keys of the client's own, kept when the entry is replaced), and
//! contents holding `1.0`, integers beyond 2^53 and unicode. Random cases from fixed seeds:
//! `CHATSTORE_BLOB_CASES` (default 12; 200 for a longer run).

mod common;

use chatstore_core::{Chat, ErrorKind, Message, NewChat, NewMessage, NewUser, Store};
use serde_json::{Value, json};

/// Message ids: ASCII, Latin-1, a BMP character above the surrogates (sorts before astral
/// characters in code point order, after them in UTF-16 order) and an astral one.
const IDS: [&str; 6] = ["m0", "m1", "Z9", "é", "\u{FB00}", "\u{1D538}"];
/// Given creation times collide often, so the id breaks ties.
const T0: i64 = 1_700_000_000;

#[derive(Debug, Clone)]
struct Write {
    id: usize,
    parent: Option<usize>,
    author: Option<u8>,
    created: Option<i64>,
    content: u8,
}

#[derive(Debug, Clone)]
enum Step {
    Upsert(usize, Write),
    UpsertMany(usize, Vec<Write>),
    Delete(usize, usize),
}

/// A small seeded generator (xorshift64*): the same seed gives the same steps.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }

    fn maybe(&mut self, n: u64) -> Option<u64> {
        (self.below(3) > 0).then(|| self.below(n))
    }

    fn write(&mut self) -> Write {
        let id = self.below(IDS.len() as u64) as usize;
        Write {
            id,
            parent: self
                .maybe(IDS.len() as u64)
                .map(|p| p as usize)
                .filter(|p| *p != id),
            author: self.maybe(2).map(|a| a as u8),
            created: self.maybe(3).map(|c| T0 + c as i64),
            content: self.below(4) as u8,
        }
    }

    fn step(&mut self) -> Step {
        let chat = self.below(3) as usize;
        match self.below(7) {
            0..4 => Step::Upsert(chat, self.write()),
            4..6 => {
                let n = self.below(5);
                Step::UpsertMany(chat, (0..n).map(|_| self.write()).collect())
            }
            _ => Step::Delete(chat, self.below(IDS.len() as u64) as usize),
        }
    }
}

fn content(kind: u8) -> Value {
    match kind {
        0 => json!("plain text"),
        1 => {
            json!([{"type": "text", "text": "ünïcode ✓ 𝔸"}, {"n": 1.0, "big": 12345678901234567890u64}])
        }
        2 => json!(""),
        _ => Value::Null,
    }
}

fn chat_id(case: u64, c: usize) -> String {
    format!("k{case}c{c}")
}

fn message(chat: &str, w: &Write) -> NewMessage {
    let mut m = NewMessage::text(chat, IDS[w.id], "assistant", "");
    m.content = content(w.content);
    m.parent_id = w.parent.map(|p| IDS[p].to_owned());
    m.user_id = w.author.map(|a| format!("author{a}"));
    m.created_at = w.created;
    m.updated_at = w.created;
    m.usage = (w.content == 1).then(|| json!({"ratio": 0.5, "tokens": 1.0}));
    m
}

/// The chats each case starts from: an empty blob, a history written at creation, and a
/// legacy flat message list.
fn chats(case: u64) -> Vec<NewChat> {
    let blobs = [
        json!({"models": ["llama3"], "params": {"temperature": 1.0}}),
        json!({"history": {"currentId": "m1", "messages": {
            "m0": {"id": "m0", "parentId": null, "role": "user", "content": "hi", "timestamp": T0 + 1,
                   "annotation": {"rating": 1, "score": 1.0, "big": 12345678901234567890u64}},
            "m1": {"id": "m1", "parentId": "m0", "role": "assistant", "content": [{"x": 1.0}], "timestamp": T0,
                   "modelName": "Ada", "modelIdx": 0, "files": [{"id": "replaced"}]},
            "Z9": {"id": "Z9", "parentId": "é", "role": "user", "content": "orphan", "timestamp": T0}
        }}}),
        json!({"messages": [
            {"id": "é", "role": "user", "content": "legacy", "timestamp": 1_700_000_000_123i64, "models": ["a", "b"]},
            {"id": "\u{FB00}", "parentId": "é", "role": "assistant", "content": "x", "timestamp": T0}
        ]}),
    ];
    blobs
        .into_iter()
        .enumerate()
        .map(|(c, blob)| NewChat {
            id: Some(chat_id(case, c)),
            user_id: "owner".to_owned(),
            title: Some(format!("chat {c}")),
            chat: Some(blob),
            created_at: Some(T0),
            updated_at: Some(T0),
            ..NewChat::default()
        })
        .collect()
}

/// Times the backends fill in themselves ("now") may differ by a second: every integer at
/// or after `since` becomes 0.
fn without_now(value: &mut Value, since: i64) {
    match value {
        Value::Number(n) if n.as_i64().is_some_and(|n| n >= since) => *value = json!(0),
        Value::Array(items) => items.iter_mut().for_each(|v| without_now(v, since)),
        Value::Object(map) => map.values_mut().for_each(|v| without_now(v, since)),
        _ => {}
    }
}

fn comparable<T: serde::Serialize>(
    result: chatstore_core::Result<T>,
    since: i64,
) -> Result<Value, ErrorKind> {
    result
        .map(|v| {
            let mut v = serde_json::to_value(v).unwrap_or(Value::Null);
            without_now(&mut v, since);
            v
        })
        .map_err(|e| e.kind())
}

async fn apply(store: &Store, case: u64, step: &Step, since: i64) -> Result<Value, ErrorKind> {
    match step {
        Step::Upsert(c, w) => comparable(
            store.messages.upsert(message(&chat_id(case, *c), w)).await,
            since,
        ),
        Step::UpsertMany(c, ws) => {
            let chat = chat_id(case, *c);
            let batch = ws.iter().map(|w| message(&chat, w)).collect();
            comparable(store.messages.upsert_many(&chat, batch).await, since)
        }
        Step::Delete(c, m) => comparable(
            store.messages.delete(&chat_id(case, *c), IDS[*m]).await,
            since,
        ),
    }
}

async fn state(
    store: &Store,
    case: u64,
    since: i64,
) -> Vec<(Result<Value, ErrorKind>, Result<Value, ErrorKind>)> {
    let mut out = Vec::new();
    for c in 0..3 {
        let id = chat_id(case, c);
        let chat: chatstore_core::Result<Chat> = store.chats.get(&id).await;
        let messages: chatstore_core::Result<Vec<Message>> = store.messages.list(&id).await;
        out.push((comparable(chat, since), comparable(messages, since)));
    }
    out
}

/// Runs `steps` from [`chats`] on both stores and fails on the first difference.
fn compare(runtime: &tokio::runtime::Runtime, pb: &Store, case: u64, steps: &[Step]) {
    let memory = chatstore_core::memory::store();
    let since = chatstore_core::validate::now() - 5;
    runtime.block_on(async {
        memory.users.create(owner()).await.expect("memory user");
        for chat in chats(case) {
            let expected = memory
                .chats
                .create(chat.clone())
                .await
                .expect("memory chat");
            let got = pb.chats.create(chat).await.expect("PocketBase chat");
            assert_eq!(got, expected, "chat created from a blob");
        }
    });
    for (n, step) in steps.iter().enumerate() {
        let (expected, got) = runtime.block_on(async {
            (
                apply(&memory, case, step, since).await,
                apply(pb, case, step, since).await,
            )
        });
        assert_eq!(got, expected, "case {case}, step {n} {step:?} of {steps:?}");
    }
    let (expected, got) = runtime.block_on(async {
        (
            state(&memory, case, since).await,
            state(pb, case, since).await,
        )
    });
    assert_eq!(
        got, expected,
        "case {case}: chats and messages after {steps:?}"
    );
}

fn owner() -> NewUser {
    NewUser {
        id: Some("owner".to_owned()),
        ..NewUser::new("owner@example.com", "Owner")
    }
}

/// The PocketBase store with the chats' owner, or `None` when no server is configured.
fn setup(runtime: &tokio::runtime::Runtime) -> Option<Store> {
    let pb = runtime.block_on(common::backend())?.store();
    runtime
        .block_on(pb.users.create(owner()))
        .expect("create the owner on PocketBase");
    Some(pb)
}

#[test]
fn route_and_core_write_the_same_blob() {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let Some(pb) = setup(&runtime) else {
        return;
    };
    let cases: u64 = std::env::var("CHATSTORE_BLOB_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(12);
    for case in 0..cases {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (case + 1));
        let n = 1 + rng.below(13);
        let steps: Vec<Step> = (0..n).map(|_| rng.step()).collect();
        compare(&runtime, &pb, case, &steps);
    }
}

/// Children written before their parent, with equal timestamps: the parent lists them by id
/// in code point order (U+FB00 before U+1D538, which UTF-16 order reverses), in one batch
/// and one by one.
#[test]
fn children_found_later_are_ordered_by_code_point() {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let Some(pb) = setup(&runtime) else {
        return;
    };
    let w = |id: usize, parent: Option<usize>, created: Option<i64>| Write {
        id,
        parent,
        author: None,
        created,
        content: 0,
    };
    let one_by_one = [
        Step::Upsert(0, w(5, Some(1), Some(T0))),
        Step::Upsert(0, w(4, Some(1), Some(T0))),
        Step::Upsert(0, w(3, Some(1), Some(T0))),
        Step::Upsert(0, w(1, None, None)),
    ];
    compare(&runtime, &pb, 1_000_000, &one_by_one);
    let batch = [Step::UpsertMany(
        0,
        vec![
            w(5, Some(1), Some(T0)),
            w(4, Some(1), Some(T0)),
            w(2, Some(1), Some(T0 - 1)),
            w(1, None, None),
            w(1, Some(0), None),
        ],
    )];
    compare(&runtime, &pb, 1_000_001, &batch);
}
