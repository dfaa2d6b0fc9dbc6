//! `chatstore demo`: fills a store with a small, realistic data set and shows what the
//! repositories answer: a tag-filtered chat list, a message thread and a vector search.
//!
//! The demo's records have fixed ids, so running it again replaces them instead of piling up.

use chatstore_core::{
    ChatQuery, Error, NewChat, NewFile, NewMessage, NewUser, Result, Store, VectorItem,
};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::json;

use crate::embed::embed;

const ADA: &str = "demo-user-ada";
const GRACE: &str = "demo-user-grace";
const COLLECTION: &str = "demo-knowledge";

struct DemoChat {
    id: &'static str,
    owner: &'static str,
    title: &'static str,
    tags: &'static [&'static str],
    turns: &'static [(&'static str, &'static str)],
}

const CHATS: [DemoChat; 5] = [
    DemoChat {
        id: "demo-chat-borrow",
        owner: ADA,
        title: "Borrow checker puzzles",
        tags: &["Work", "Rust"],
        turns: &[
            (
                "Why does this closure need `move`?",
                "It outlives the stack frame it borrows from, so it must own its captures.",
            ),
            (
                "And for a thread::scope?",
                "Scoped threads may borrow, because the scope joins them before returning.",
            ),
        ],
    },
    DemoChat {
        id: "demo-chat-async",
        owner: ADA,
        title: "Async traits in 2026",
        tags: &["work", "rust", "async"],
        turns: &[(
            "Can I use async fn in a dyn trait?",
            "Not directly; #[async_trait] boxes the futures so the trait stays object safe.",
        )],
    },
    DemoChat {
        id: "demo-chat-bread",
        owner: ADA,
        title: "Sourdough schedule",
        tags: &["Home"],
        turns: &[(
            "How long should the levain rest?",
            "Four to six hours at 24 °C, until it has doubled.",
        )],
    },
    DemoChat {
        id: "demo-chat-notes",
        owner: ADA,
        title: "Untitled notes",
        tags: &[],
        turns: &[(
            "Remind me to renew the TLS certificate.",
            "Noted. It expires on the 30th.",
        )],
    },
    DemoChat {
        id: "demo-chat-cobol",
        owner: GRACE,
        title: "Compilers, then and now",
        tags: &["Work"],
        turns: &[(
            "What did A-0 do?",
            "It linked subroutines from tape: arguably the first compiler.",
        )],
    },
];

const CHUNKS: [(&str, &str, &str); 8] = [
    (
        "demo-chunk-1",
        "rust-book.md",
        "The borrow checker enforces that references never outlive the data they point to.",
    ),
    (
        "demo-chunk-2",
        "rust-book.md",
        "Lifetimes annotate how long references are valid; the compiler checks them.",
    ),
    (
        "demo-chunk-3",
        "rust-book.md",
        "Async functions return futures that do nothing until they are polled by an executor.",
    ),
    (
        "demo-chunk-4",
        "rust-book.md",
        "Trait objects need object safety: no generic methods, no Self by value.",
    ),
    (
        "demo-chunk-5",
        "bread.md",
        "A sourdough levain needs flour, water and time to ferment and double.",
    ),
    (
        "demo-chunk-6",
        "bread.md",
        "Bake the bread in a preheated dutch oven for a crisp crust.",
    ),
    (
        "demo-chunk-7",
        "ops.md",
        "Renew TLS certificates before they expire to keep the service reachable.",
    ),
    (
        "demo-chunk-8",
        "ops.md",
        "Back up the database before every schema migration.",
    ),
];

/// What the demo found, for printing and for tests.
#[derive(Debug)]
pub struct DemoReport {
    /// Rows of the tag-filtered list: (title, tags, updated_at).
    pub tagged: Vec<(String, String, i64)>,
    /// The thread: (role, content).
    pub thread: Vec<(String, String)>,
    /// Vector hits: (score, source, text).
    pub hits: Vec<(f64, String, String)>,
    /// Whether the store had vectors (false: the backend answered `Unsupported`).
    pub vectors: bool,
}

/// Writes the demo data into `store` (replacing an earlier run's) and reads it back.
pub async fn run(store: &Store) -> Result<DemoReport> {
    for user in [ADA, GRACE] {
        match store.delete_user(user).await {
            Ok(()) | Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let now = chatstore_core::validate::now();
    store
        .users
        .create_many(vec![
            NewUser::new("ada@example.com", "Ada Lovelace").with_id(ADA),
            NewUser::new("grace@example.com", "Grace Hopper").with_id(GRACE),
        ])
        .await?;
    for (i, demo) in CHATS.iter().enumerate() {
        let at = now - 3600 * (CHATS.len() - i) as i64;
        let mut chat = NewChat::new(demo.owner, demo.title)
            .with_id(demo.id)
            .with_tags(demo.tags.iter().copied());
        chat.created_at = Some(at);
        chat.chat = Some(json!({"models": ["llama3.1:8b"], "params": {}}));
        store.chats.create(chat).await?;
        let mut parent: Option<String> = None;
        let mut messages = Vec::new();
        for (turn, (question, answer)) in demo.turns.iter().enumerate() {
            let t = at + 60 * turn as i64;
            let q_id = format!("q{turn}");
            let a_id = format!("a{turn}");
            let mut q = NewMessage::text(demo.id, &q_id, "user", *question).at(t);
            q.parent_id = parent.clone();
            let mut a = NewMessage::text(demo.id, &a_id, "assistant", *answer)
                .with_parent(&q_id)
                .at(t + 5);
            a.model_id = Some("llama3.1:8b".into());
            messages.extend([q, a]);
            parent = Some(a_id);
        }
        store.messages.upsert_many(demo.id, messages).await?;
    }
    let notes = "TLS renewal checklist\n1. issue\n2. deploy\n"
        .as_bytes()
        .to_vec();
    match store.files.delete("demo-file-checklist").await {
        Ok(()) | Err(Error::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    let mut file =
        NewFile::new(ADA, "tls-checklist.md", notes.clone()).with_id("demo-file-checklist");
    file.content_type = Some("text/markdown".into());
    store.files.put(file).await?;
    if store.files.read("demo-file-checklist").await? != notes {
        return Err(Error::backend_msg("the demo file did not read back intact"));
    }

    let page = store
        .chats
        .list(&ChatQuery::for_user(ADA).with_tags(["work", "rust"]))
        .await?;
    let tagged = page
        .items
        .iter()
        .map(|c| {
            let tags: Vec<&str> = c.tags.iter().map(String::as_str).collect();
            (c.title.clone(), tags.join(", "), c.updated_at)
        })
        .collect();
    let thread = store
        .messages
        .list("demo-chat-borrow")
        .await?
        .into_iter()
        .map(|m| {
            let text = m.content.as_str().unwrap_or_default().to_owned();
            (m.role, text)
        })
        .collect();

    let (hits, vectors) = match vector_demo(store).await {
        Ok(hits) => (hits, true),
        Err(Error::Unsupported { .. }) => (Vec::new(), false),
        Err(e) => return Err(e),
    };
    Ok(DemoReport {
        tagged,
        thread,
        hits,
        vectors,
    })
}

async fn vector_demo(store: &Store) -> Result<Vec<(f64, String, String)>> {
    store.vectors.delete_collection(COLLECTION).await?;
    let items = CHUNKS
        .iter()
        .map(|(id, source, text)| VectorItem {
            id: (*id).to_owned(),
            text: (*text).to_owned(),
            vector: embed(text),
            metadata: json!({"source": source, "file_id": source})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        })
        .collect();
    store.vectors.upsert(COLLECTION, items).await?;
    let query = embed("how does the borrow checker treat references and lifetimes");
    let mut results = store.vectors.search(COLLECTION, &[query], None, 3).await?;
    let hits = results.pop().unwrap_or_default();
    Ok(hits
        .into_iter()
        .map(|h| {
            let source = h
                .metadata
                .get("source")
                .and_then(|s| s.as_str())
                .unwrap_or("")
                .to_owned();
            (h.score, source, h.text)
        })
        .collect())
}

/// Renders the report as tables.
pub fn render(report: &DemoReport, backend: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "chatstore demo on {backend}\n");
    let _ = writeln!(out, "Ada's chats tagged both \"work\" and \"rust\":");
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_header(["title", "tags", "updated"]);
    let now = chatstore_core::validate::now();
    for (title, tags, updated) in &report.tagged {
        t.add_row([title.clone(), tags.clone(), age(now - updated)]);
    }
    let _ = writeln!(out, "{t}\n");
    let _ = writeln!(out, "Thread of \"Borrow checker puzzles\":");
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_header(["role", "content"]);
    for (role, content) in &report.thread {
        t.add_row([role.clone(), content.clone()]);
    }
    let _ = writeln!(out, "{t}\n");
    if report.vectors {
        let _ = writeln!(
            out,
            "Vector search for \"how does the borrow checker treat references and lifetimes\":"
        );
        let mut t = Table::new();
        t.load_style(UTF8_FULL_CONDENSED)
            .set_header(["score", "source", "text"]);
        for (score, source, text) in &report.hits {
            t.add_row([format!("{score:.3}"), source.clone(), text.clone()]);
        }
        let _ = writeln!(out, "{t}");
    } else {
        let _ = writeln!(
            out,
            "This backend stores no vectors; the vector search was left out."
        );
    }
    out
}

fn age(seconds: i64) -> String {
    match seconds {
        s if s < 60 => "just now".to_owned(),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn demo_runs_twice_on_memory_and_finds_the_borrow_chat() {
        let store = chatstore_core::memory::store();
        run(&store).await.expect("first run");
        let report = run(&store).await.expect("second run replaces the first");
        let titles: Vec<&str> = report.tagged.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(titles, ["Async traits in 2026", "Borrow checker puzzles"]);
        assert_eq!(report.thread.len(), 4);
        assert_eq!(report.hits.len(), 3);
        assert_eq!(report.hits[0].1, "rust-book.md");
    }

    /// The vector search's heading is part of the rendered text, after the thread and right
    /// above its table (it was printed on its own, before everything else).
    #[tokio::test]
    async fn the_vector_search_heading_comes_before_its_table() {
        let store = chatstore_core::memory::store();
        let report = run(&store).await.expect("demo runs");
        let text = render(&report, "memory");
        let heading = text
            .find("Vector search for")
            .expect("the heading is in the rendered text");
        let thread = text.find("Thread of").expect("the thread is shown");
        let hit = text.find("rust-book.md").expect("a search hit is shown");
        assert!(thread < heading && heading < hit, "{text}");
    }
}
