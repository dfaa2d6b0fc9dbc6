//! Verification: two stores compared group by group, record by record. Both sides are walked
//! in id order with keyset pages and merge-joined, so memory stays bounded by the page size;
//! each pair is compared by the content hash of its canonical JSON (core's `compare`), with the
//! differing fields listed when the hashes differ.
//!
//! What is compared:
//! - users: every field;
//! - chats: every field, the blob without its `history` (whose message entries are rewritten
//!   from the messages on every backend), the current message, and the chat's messages as its
//!   store lists them (rows or, for chats Open WebUI never gave rows, the blob); tag rows by
//!   `(user_id, id)` with name and meta. A tag row only the target holds is accepted when a
//!   source chat of that user carries the tag (the source kept that tag only in `meta.tags`;
//!   the set of such `(user, tag)` pairs is held while walking, one entry per tag);
//! - files: the metadata (sha256 and size included), and the target's bytes read back and
//!   checked against that sha256;
//! - workspace: every table of Open WebUI's remaining tables (`chatstore_core::rows`), row by
//!   row by primary key, every column (a JSON `null` and a missing value alike); differing rows
//!   are listed as `table:key`;
//! - vectors: every collection's items (text, metadata, embedding within 1e-6; within
//!   half precision's rounding when a side keeps vectors as `halfvec`: `Precision::HalfVectors`).

use std::collections::{HashSet, VecDeque};
use std::future::Future;

use chatstore_core::blob::{client_keys, set_title, with_blob_only};
use chatstore_core::compare::{
    FieldDiff, Precision, canonical, content_hash, diff_within, same_within,
};
use chatstore_core::rows::{ALL_TABLES, Cond, Row, Table};
use chatstore_core::{Chat, ErrorKind, Message, ModelGroup, Result, Store, Tag, TagKey};
use serde::Serialize;
use serde_json::{Value, json};

use crate::engine::{current_id, has_records, supports};
use crate::progress::Progress;
use crate::read::{Keyed, Read, gone, page, read_key, retrying};
use crate::rows::{merge_key, min_text, normalised, page_after};

/// At most this many ids are listed per kind of difference and group (all are counted).
pub const MAX_LISTED: usize = 1_000;

const PAGE: u32 = 500;

/// A record whose content differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    /// `user`, `chat`, `tag`, `file`, `vector`.
    pub entity: String,
    /// Its id (`user_id/tag_id` for tags, `collection/id` for vectors).
    pub id: String,
    /// The differing fields, source on the left, target on the right.
    pub fields: Vec<FieldDiff>,
}

/// The comparison of one group.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GroupReport {
    /// The group (`None` only in `Default`).
    pub group: Option<ModelGroup>,
    /// Records in the source.
    pub source: u64,
    /// Records in the target.
    pub target: u64,
    /// Records equal on both sides.
    pub equal: u64,
    /// How many records differ in any way (listed below up to [`MAX_LISTED`] each).
    pub differences: u64,
    /// Ids only the source holds.
    pub only_in_source: Vec<String>,
    /// Ids only the target holds.
    pub only_in_target: Vec<String>,
    /// Records on both sides with different content.
    pub differing: Vec<Difference>,
    /// Records a side could not read, with the error.
    pub unreadable: Vec<(String, String)>,
    /// Why the group was not compared (a side does not store it), when it was not.
    pub skipped: Option<String>,
}

impl GroupReport {
    fn new(group: ModelGroup) -> Self {
        GroupReport {
            group: Some(group),
            ..GroupReport::default()
        }
    }

    fn count(&mut self) {
        self.differences += 1;
    }

    fn only_source(&mut self, id: String) {
        self.count();
        if self.only_in_source.len() < MAX_LISTED {
            self.only_in_source.push(id);
        }
    }

    fn only_target(&mut self, id: String) {
        self.count();
        if self.only_in_target.len() < MAX_LISTED {
            self.only_in_target.push(id);
        }
    }

    fn unreadable(&mut self, side: &str, id: String, error: String) {
        self.count();
        if self.unreadable.len() < MAX_LISTED {
            self.unreadable.push((format!("{side}:{id}"), error));
        }
    }

    fn compare(&mut self, entity: &str, id: String, a: &Value, b: &Value) {
        self.compare_within(entity, id, a, b, Precision::Float);
    }

    fn compare_within(
        &mut self,
        entity: &str,
        id: String,
        a: &Value,
        b: &Value,
        precision: Precision,
    ) {
        if a == b || same_within(a, b, precision) {
            self.equal += 1;
            return;
        }
        self.count();
        if self.differing.len() < MAX_LISTED {
            self.differing.push(Difference {
                entity: entity.to_owned(),
                id,
                fields: diff_within(a, b, precision),
            });
        }
    }

    /// Whether the two sides hold the same records.
    pub fn is_equal(&self) -> bool {
        self.differences == 0
    }
}

/// The comparison of two stores.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VerifyReport {
    /// Per group.
    pub groups: Vec<GroupReport>,
    /// Whether every compared group is equal.
    pub equal: bool,
}

impl VerifyReport {
    /// Every id that differs, as `group:id` (only-in-source, only-in-target, differing,
    /// unreadable), up to [`MAX_LISTED`] of each kind per group.
    pub fn differing_ids(&self) -> Vec<String> {
        let mut out = Vec::new();
        for g in &self.groups {
            let name = g.group.map(|g| g.as_str()).unwrap_or("?");
            for id in &g.only_in_source {
                out.push(format!("{name}: {id} (only in the source)"));
            }
            for id in &g.only_in_target {
                out.push(format!("{name}: {id} (only in the target)"));
            }
            for d in &g.differing {
                let fields: Vec<&str> = d.fields.iter().map(|f| f.path.as_str()).collect();
                out.push(format!(
                    "{name}: {} {} differs at {}",
                    d.entity,
                    d.id,
                    fields.join(", ")
                ));
            }
            for (id, e) in &g.unreadable {
                out.push(format!("{name}: {id} unreadable: {e}"));
            }
        }
        out
    }
}

fn hashed<T: Serialize>(v: &T) -> Result<(String, Value)> {
    let c = canonical(v)?;
    Ok((content_hash(&c)?, c))
}

/// Keyset pages of one side, with the record at its head.
struct Pager<T> {
    buf: VecDeque<Read<T>>,
    after: Option<String>,
    exhausted: bool,
    read: u64,
}

impl<T> Pager<T> {
    fn new() -> Self {
        Pager {
            buf: VecDeque::new(),
            after: None,
            exhausted: false,
            read: 0,
        }
    }

    /// The key of the head record, fetching the next page when needed; `None` at the end.
    async fn head<F, Fut>(
        &mut self,
        fetch: &F,
        key: fn(&Read<T>) -> String,
    ) -> Result<Option<String>>
    where
        F: Fn(Option<String>) -> Fut,
        Fut: Future<Output = Result<Vec<Read<T>>>>,
    {
        if self.buf.is_empty() && !self.exhausted {
            let page = fetch(self.after.clone()).await?;
            if page.is_empty() {
                self.exhausted = true;
            }
            if let Some(last) = page.last() {
                self.after = Some(key(last));
            }
            self.read += page.len() as u64;
            self.buf.extend(page);
        }
        Ok(self.buf.front().map(key))
    }

    fn pop(&mut self) -> Option<Read<T>> {
        self.buf.pop_front()
    }
}

/// One step of a merge-join.
enum Step<T> {
    Both(String, Read<T>, Read<T>),
    Left(String, Read<T>),
    Right(String, Read<T>),
}

/// A merge-join of two keyset-paged sides.
struct Merge<T, F, G> {
    left: F,
    right: G,
    l: Pager<T>,
    r: Pager<T>,
    key: fn(&Read<T>) -> String,
}

impl<T, F, Fut, G, Gut> Merge<T, F, G>
where
    F: Fn(Option<String>) -> Fut,
    Fut: Future<Output = Result<Vec<Read<T>>>>,
    G: Fn(Option<String>) -> Gut,
    Gut: Future<Output = Result<Vec<Read<T>>>>,
{
    fn new(left: F, right: G, key: fn(&Read<T>) -> String) -> Self {
        Merge {
            left,
            right,
            l: Pager::new(),
            r: Pager::new(),
            key,
        }
    }

    async fn next(&mut self) -> Result<Option<Step<T>>> {
        let a = self.l.head(&self.left, self.key).await?;
        let b = self.r.head(&self.right, self.key).await?;
        Ok(Some(match (a, b) {
            (None, None) => return Ok(None),
            (Some(a), None) => Step::Left(a, pop(&mut self.l)?),
            (None, Some(b)) => Step::Right(b, pop(&mut self.r)?),
            (Some(a), Some(b)) => match a.as_bytes().cmp(b.as_bytes()) {
                std::cmp::Ordering::Less => Step::Left(a, pop(&mut self.l)?),
                std::cmp::Ordering::Greater => Step::Right(b, pop(&mut self.r)?),
                std::cmp::Ordering::Equal => Step::Both(a, pop(&mut self.l)?, pop(&mut self.r)?),
            },
        }))
    }

    fn counts(&self) -> (u64, u64) {
        (self.l.read, self.r.read)
    }
}

fn pop<T>(p: &mut Pager<T>) -> Result<Read<T>> {
    p.pop()
        .ok_or_else(|| chatstore_core::Error::backend_msg("verification lost its place in a page"))
}

impl Keyed for chatstore_core::User {
    fn key(&self) -> String {
        self.id.clone()
    }
}
impl Keyed for Chat {
    fn key(&self) -> String {
        self.id.clone()
    }
}
impl Keyed for chatstore_core::FileMeta {
    fn key(&self) -> String {
        self.id.clone()
    }
}
impl Keyed for Tag {
    fn key(&self) -> String {
        format!("{}\u{0}{}", self.user_id, self.id)
    }
}
/// A row with its merge key (its table's primary key values).
struct KeyedRow(String, Row);

impl Keyed for KeyedRow {
    fn key(&self) -> String {
        self.0.clone()
    }
}

impl Keyed for chatstore_core::VectorItem {
    fn key(&self) -> String {
        self.id.clone()
    }
}

fn tag_cursor(after: Option<String>) -> Option<TagKey> {
    after.map(|a| {
        let (user_id, id) = a.split_once('\u{0}').unwrap_or((a.as_str(), ""));
        TagKey {
            user_id: user_id.to_owned(),
            id: id.to_owned(),
        }
    })
}

fn shown(key: &str) -> String {
    key.replace('\u{0}', "/")
}

/// Compares `source` and `target` in `groups` (in [`ModelGroup::ALL`] order).
pub async fn verify(
    source: &Store,
    target: &Store,
    groups: &[ModelGroup],
    progress: &dyn Progress,
) -> Result<VerifyReport> {
    let mut groups = groups.to_vec();
    groups.sort();
    groups.dedup();
    let mut report = VerifyReport {
        groups: Vec::new(),
        equal: true,
    };
    for group in groups {
        let mut g = GroupReport::new(group);
        let unsupported = |e: &chatstore_core::Error| e.kind() == ErrorKind::Unsupported;
        let result = match group {
            ModelGroup::Users => users(source, target, &mut g).await,
            ModelGroup::Chats => chats(source, target, &mut g).await,
            ModelGroup::Files => files(source, target, &mut g).await,
            ModelGroup::Workspace => workspace(source, target, &mut g).await,
            ModelGroup::Vectors => vectors(source, target, &mut g).await,
        };
        match result {
            Ok(()) => {}
            Err(e) if unsupported(&e) => {
                g = GroupReport::new(group);
                g.skipped = Some(e.to_string());
                if let Some(why) = unstorable(source, target, group).await? {
                    g.count();
                    g.skipped = Some(why);
                }
            }
            Err(e) => return Err(e),
        }
        progress.note(&format!(
            "verify {group}: {} in the source, {} in the target, {} equal, {} differences",
            g.source, g.target, g.equal, g.differences
        ));
        report.equal &= g.is_equal();
        report.groups.push(g);
    }
    Ok(report)
}

/// Why a group that could not be compared is still a difference: the source holds records of
/// it that the target cannot store (what a migration refuses before it starts). A group the
/// source does not store, or holds nothing of, is only not compared.
async fn unstorable(source: &Store, target: &Store, group: ModelGroup) -> Result<Option<String>> {
    if !supports(source, group).await?
        || supports(target, group).await?
        || !has_records(source, group).await?
    {
        return Ok(None);
    }
    Ok(Some(format!(
        "the target ({}) cannot store {group}, which the source holds",
        target.backend_name()
    )))
}

async fn users(source: &Store, target: &Store, g: &mut GroupReport) -> Result<()> {
    let side = |s: &Store| {
        let repo = s.users.clone();
        move |after: Option<String>| {
            let repo = repo.clone();
            async move {
                page(
                    "reading users",
                    || repo.scan(after.as_deref(), PAGE),
                    || repo.scan_ids(after.as_deref(), PAGE),
                    |id| {
                        let repo = repo.clone();
                        async move { repo.get(&id).await }
                    },
                )
                .await
            }
        }
    };
    let mut m = Merge::new(side(source), side(target), read_key);
    while let Some(step) = m.next().await? {
        pair(g, "user", step, hashed)?;
    }
    (g.source, g.target) = m.counts();
    Ok(())
}

/// Records a merge step whose records compare as `record(x)`.
fn pair<T>(
    g: &mut GroupReport,
    entity: &str,
    step: Step<T>,
    record: impl Fn(&T) -> Result<(String, Value)>,
) -> Result<()> {
    pair_within(g, entity, step, record, Precision::Float)
}

/// [`pair`], numbers compared at `precision`.
fn pair_within<T>(
    g: &mut GroupReport,
    entity: &str,
    step: Step<T>,
    record: impl Fn(&T) -> Result<(String, Value)>,
    precision: Precision,
) -> Result<()> {
    match step {
        // A record deleted while verify read it (see `Read`) is held by neither side.
        Step::Left(_, a) if gone(&a) => {}
        Step::Right(_, b) if gone(&b) => {}
        Step::Left(k, _) => g.only_source(shown(&k)),
        Step::Right(k, _) => g.only_target(shown(&k)),
        Step::Both(k, a, b) => match (a, b) {
            (Ok(a), Ok(b)) => {
                let (ha, va) = record(&a)?;
                let (hb, vb) = record(&b)?;
                if ha == hb {
                    g.equal += 1;
                } else {
                    g.compare_within(entity, shown(&k), &va, &vb, precision);
                }
            }
            // Deleted while verify read it (see `Read`): that side does not hold it.
            (a, b) if gone(&a) || gone(&b) => match (gone(&a), gone(&b)) {
                (true, true) => {}
                (true, false) => g.only_target(shown(&k)),
                _ => g.only_source(shown(&k)),
            },
            (Err((id, e)), _) => g.unreadable("source", id, e.to_string()),
            (_, Err((id, e))) => g.unreadable("target", id, e.to_string()),
        },
    }
    Ok(())
}

/// A chat as verification compares it: the blob without `history` (and a legacy `messages`
/// list), the title mirrored, the current message, the messages (the listed ones and the
/// blob's entries without a row, as Open WebUI reads them: [`with_blob_only`]), and the keys of
/// the blob's message entries that the messages do not carry ([`client_keys`]).
pub fn chat_record(chat: &Chat, listed: &[Message]) -> Value {
    let messages = &with_blob_only(chat, listed);
    let own_keys = client_keys(&chat.chat);
    let mut c = chat.clone();
    if let Value::Object(map) = &mut c.chat {
        map.remove("history");
        map.remove("messages");
    }
    let title = c.title.clone();
    set_title(&mut c.chat, &title);
    json!({
        "chat": c,
        "current_id": current_id(chat, messages),
        "messages": messages,
        "client_keys": own_keys,
    })
}

async fn chat_side(s: &Store, after: Option<String>) -> Result<Vec<Read<Chat>>> {
    let repo = &s.chats;
    page(
        "reading chats",
        || repo.scan(after.as_deref(), PAGE),
        || repo.scan_ids(after.as_deref(), PAGE),
        |id| async move { repo.get(&id).await },
    )
    .await
}

async fn chats(source: &Store, target: &Store, g: &mut GroupReport) -> Result<()> {
    let mut m = Merge::new(
        |after| chat_side(source, after),
        |after| chat_side(target, after),
        read_key,
    );
    // The (user, tag) pairs source chats carry: a tag row only the target holds is one of
    // these when the source kept the tag only in `meta.tags` (one entry per tag, not per chat).
    let mut carried = HashSet::new();
    while let Some(step) = m.next().await? {
        if let Step::Both(_, Ok(a), _) | Step::Left(_, Ok(a)) = &step {
            for t in &a.tags {
                carried.insert((a.user_id.clone(), t.clone()));
            }
        }
        let Step::Both(k, Ok(a), Ok(b)) = step else {
            pair(g, "chat", step, |_| Ok((String::new(), Value::Null)))?;
            continue;
        };
        let ma = retrying("reading messages", || source.messages.list(&a.id)).await;
        let mb = retrying("reading messages", || target.messages.list(&b.id)).await;
        match (ma, mb) {
            (Ok(ma), Ok(mb)) => {
                let (ha, va) = hashed(&chat_record(&a, &ma))?;
                let (hb, vb) = hashed(&chat_record(&b, &mb))?;
                if ha == hb {
                    g.equal += 1;
                } else {
                    g.compare("chat", k, &va, &vb);
                }
            }
            (Err(e), _) => g.unreadable("source", k, e.to_string()),
            (_, Err(e)) => g.unreadable("target", k, e.to_string()),
        }
    }
    (g.source, g.target) = m.counts();
    tags(source, target, &carried, g).await
}

async fn tag_side(s: &Store, after: Option<String>) -> Result<Vec<Read<Tag>>> {
    let after = tag_cursor(after);
    Ok(
        retrying("reading tags", || s.tags.scan(after.as_ref(), PAGE))
            .await?
            .into_iter()
            .map(Ok)
            .collect(),
    )
}

async fn tags(
    source: &Store,
    target: &Store,
    carried: &HashSet<(String, String)>,
    g: &mut GroupReport,
) -> Result<()> {
    let mut m = Merge::new(
        |after| tag_side(source, after),
        |after| tag_side(target, after),
        read_key,
    );
    while let Some(step) = m.next().await? {
        match step {
            Step::Right(k, Ok(t)) => {
                if carried.contains(&(t.user_id.clone(), t.id.clone())) {
                    g.equal += 1;
                } else {
                    g.only_target(format!("tag {}", shown(&k)));
                }
            }
            Step::Left(k, _) => g.only_source(format!("tag {}", shown(&k))),
            other => pair(g, "tag", other, hashed)?,
        }
    }
    Ok(())
}

async fn file_side(
    s: &Store,
    after: Option<String>,
) -> Result<Vec<Read<chatstore_core::FileMeta>>> {
    let repo = &s.files;
    page(
        "reading files",
        || repo.scan(after.as_deref(), PAGE),
        || repo.scan_ids(after.as_deref(), PAGE),
        |id| async move { repo.get(&id).await },
    )
    .await
}

async fn files(source: &Store, target: &Store, g: &mut GroupReport) -> Result<()> {
    let mut m = Merge::new(
        |after| file_side(source, after),
        |after| file_side(target, after),
        read_key,
    );
    while let Some(step) = m.next().await? {
        let Step::Both(k, Ok(a), Ok(b)) = step else {
            pair(g, "file", step, hashed)?;
            continue;
        };
        let (ha, va) = hashed(&a)?;
        let (hb, vb) = hashed(&b)?;
        if ha != hb {
            g.compare("file", k, &va, &vb);
            continue;
        }
        // Streamed and checked against its sha256 as it passes: a file of gigabytes is read
        // in the memory of one chunk, as the copy wrote it.
        let read_through = || async {
            let stream = target.files.read_stream(&b.id, None).await?;
            stream.drain().await
        };
        match retrying("reading a file's bytes", read_through).await {
            Ok(_) => g.equal += 1,
            Err(e) => g.unreadable("target", k, e.to_string()),
        }
    }
    (g.source, g.target) = m.counts();
    Ok(())
}

async fn vectors(source: &Store, target: &Store, g: &mut GroupReport) -> Result<()> {
    // A store keeping vectors in half precision reads them back rounded.
    let precision = Precision::between(&source.capabilities(), &target.capabilities());
    let mut names = retrying("listing collections", || source.vectors.collections()).await?;
    names.extend(retrying("listing collections", || target.vectors.collections()).await?);
    names.sort();
    names.dedup();
    for c in names {
        let side = |s: &Store| {
            let repo = s.vectors.clone();
            let c = c.clone();
            move |after: Option<String>| {
                let repo = repo.clone();
                let c = c.clone();
                async move {
                    Ok(
                        retrying("reading vectors", || repo.scan(&c, after.as_deref(), PAGE))
                            .await?
                            .into_iter()
                            .map(Ok)
                            .collect(),
                    )
                }
            }
        };
        let mut m = Merge::new(side(source), side(target), read_key);
        while let Some(step) = m.next().await? {
            let step = match step {
                Step::Both(k, a, b) => Step::Both(format!("{c}/{k}"), a, b),
                Step::Left(k, a) => Step::Left(format!("{c}/{k}"), a),
                Step::Right(k, b) => Step::Right(format!("{c}/{k}"), b),
            };
            pair_within(g, "vector", step, hashed, precision)?;
        }
        let (s, t) = m.counts();
        g.source += s;
        g.target += t;
    }
    Ok(())
}

/// One side's page of `table` after the merge key `after`.
async fn row_side(
    s: &Store,
    table: &'static Table,
    after: Option<String>,
) -> Result<Vec<Read<KeyedRow>>> {
    let rows = s.rows()?;
    let cursor = after.map(|a| {
        let values = a.split('\u{0}').map(|v| Value::String(v.to_owned()));
        Value::Object(
            table
                .primary_key
                .iter()
                .map(|k| (*k).to_owned())
                .zip(values)
                .collect(),
        )
    });
    let query = page_after(table, cursor.as_ref(), PAGE)?;
    let what = format!("reading {}", table.name);
    let keyed = |rows: Vec<Row>| -> Vec<Read<KeyedRow>> {
        rows.into_iter()
            .map(|r| Ok(KeyedRow(merge_key(table, &r), r)))
            .collect()
    };
    match retrying(&what, || rows.select(table, &query)).await {
        Ok(page) => return Ok(keyed(page)),
        Err(e) if e.is_retryable() => return Err(e),
        Err(_) => {}
    }
    // A row of this page cannot be read: the next row alone, or its key and the error.
    let one = page_after(table, cursor.as_ref(), 1)?;
    let error = match retrying(&what, || rows.select(table, &one)).await {
        Ok(page) => return Ok(keyed(page)),
        Err(e) if e.is_retryable() => return Err(e),
        Err(e) => e,
    };
    let mut filter = one.filter.clone();
    let mut key = Vec::new();
    for column in table.primary_key {
        let Some(value) = min_text(&*rows, table, &filter, column).await? else {
            return Err(error);
        };
        filter.push(Cond::Eq(column, Value::String(value.clone())));
        key.push(value);
    }
    Ok(vec![Err((key.join("\u{0}"), error))])
}

async fn workspace(source: &Store, target: &Store, g: &mut GroupReport) -> Result<()> {
    // Both sides must have rows: `Unsupported` leaves the group out of the comparison.
    source.rows()?;
    target.rows()?;
    for table in ALL_TABLES.iter().copied() {
        let mut m = Merge::new(
            |after| row_side(source, table, after),
            |after| row_side(target, table, after),
            read_key,
        );
        while let Some(step) = m.next().await? {
            let named = |k: String| format!("{}:{k}", table.name);
            let step = match step {
                Step::Both(k, a, b) => Step::Both(named(k), a, b),
                Step::Left(k, a) => Step::Left(named(k), a),
                Step::Right(k, b) => Step::Right(named(k), b),
            };
            pair(g, table.name, step, |r: &KeyedRow| {
                hashed(&normalised(table, &r.1))
            })?;
        }
        let (s, t) = m.counts();
        g.source += s;
        g.target += t;
    }
    Ok(())
}
