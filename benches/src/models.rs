//! Open WebUI's remaining models in the workload: the rows the heavy user has in folders,
//! knowledge, notes, memories, prompts, models, groups, channels (with messages) and feedback,
//! created through the typed API ([`Store::workspace`]), and each model's main list and get,
//! read through it.
//!
//! A raw baseline of these reads replays a [`RowPlan`]: the row-store calls (select and count,
//! with their queries) the typed call made, recorded once per input before timing, so that the
//! baseline sends exactly the adapter's statements: raw sqlx runs the SQL adapter's own text
//! for each call with the same binds ([`chatstore_sql::rows::select_text`]) and decodes every
//! column; raw HTTP on PocketBase sends the row store's records-API lists (filter and sort
//! from `chatstore_pocketbase::rows::exact_list`, the same pages) and parses the JSON; what
//! they leave out is the typed layer (access filtering, records into structs), the
//! `Store`'s dispatch and the adapter's row layer.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chatstore_core::models::{
    Grant, NewChannel, NewChannelMessage, NewFeedback, NewFolder, NewGroup, NewKnowledge,
    NewMemory, NewModel, NewPrompt, Permission, Search, Workspace,
};
use chatstore_core::rows::{Cond, Row, RowOp, RowQuery, RowStore, Table};
use chatstore_core::{PageRequest, Result, Store};
use chatstore_sql::{Bound, Dialect};
use serde_json::json;

use crate::rng::Rng;
use crate::workload::{PAGE_SIZE, TOPICS, Workload, prose};

/// One of the models whose list and get the report measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Model {
    /// `folder`: the user's folders.
    Folders,
    /// `knowledge`: knowledge bases the user may read.
    Knowledge,
    /// `note`: notes the user may read.
    Notes,
    /// `memory`: the user's memories.
    Memories,
    /// `prompt`: prompts the user may read.
    Prompts,
    /// `model`: models the user may read.
    Models,
    /// `group`: the groups the user belongs to.
    Groups,
    /// `channel`: the channels the user is in.
    Channels,
    /// `channel_message`: a channel's messages.
    ChannelMessages,
    /// `feedback`: the user's ratings.
    Feedback,
}

impl Model {
    /// Every model, in report order.
    pub const ALL: [Model; 10] = [
        Model::Folders,
        Model::Knowledge,
        Model::Notes,
        Model::Memories,
        Model::Prompts,
        Model::Models,
        Model::Groups,
        Model::Channels,
        Model::ChannelMessages,
        Model::Feedback,
    ];

    /// Plural name for the list operation (`folders`).
    pub fn plural(self) -> &'static str {
        match self {
            Model::Folders => "folders",
            Model::Knowledge => "knowledge",
            Model::Notes => "notes",
            Model::Memories => "memories",
            Model::Prompts => "prompts",
            Model::Models => "models",
            Model::Groups => "groups",
            Model::Channels => "channels",
            Model::ChannelMessages => "channel messages",
            Model::Feedback => "feedback",
        }
    }

    /// Singular name for the get operation (`folder`).
    pub fn singular(self) -> &'static str {
        match self {
            Model::Folders => "folder",
            Model::Knowledge => "knowledge base",
            Model::Notes => "note",
            Model::Memories => "memory",
            Model::Prompts => "prompt",
            Model::Models => "model",
            Model::Groups => "group",
            Model::Channels => "channel",
            Model::ChannelMessages => "channel message",
            Model::Feedback => "feedback",
        }
    }

    /// Identifier part for slugs (`folder`).
    pub fn key(self) -> &'static str {
        match self {
            Model::Folders => "folder",
            Model::Knowledge => "knowledge",
            Model::Notes => "note",
            Model::Memories => "memory",
            Model::Prompts => "prompt",
            Model::Models => "model",
            Model::Groups => "group",
            Model::Channels => "channel",
            Model::ChannelMessages => "channel_message",
            Model::Feedback => "feedback",
        }
    }

    /// The list operation's name in the report (`list folders`).
    pub fn list_name(self) -> &'static str {
        match self {
            Model::Folders => "list folders",
            Model::Knowledge => "list knowledge",
            Model::Notes => "list notes",
            Model::Memories => "list memories",
            Model::Prompts => "list prompts",
            Model::Models => "list models",
            Model::Groups => "list groups",
            Model::Channels => "list channels",
            Model::ChannelMessages => "list channel messages",
            Model::Feedback => "list feedback",
        }
    }

    /// The get operation's name in the report (`get folder`).
    pub fn get_name(self) -> &'static str {
        match self {
            Model::Folders => "get folder",
            Model::Knowledge => "get knowledge base",
            Model::Notes => "get note",
            Model::Memories => "get memory",
            Model::Prompts => "get prompt",
            Model::Models => "get model",
            Model::Groups => "get group",
            Model::Channels => "get channel",
            Model::ChannelMessages => "get channel message",
            Model::Feedback => "get feedback",
        }
    }

    /// The list operation's slug (`list_folders`).
    pub fn list_slug(self) -> &'static str {
        match self {
            Model::Folders => "list_folders",
            Model::Knowledge => "list_knowledge",
            Model::Notes => "list_notes",
            Model::Memories => "list_memories",
            Model::Prompts => "list_prompts",
            Model::Models => "list_models",
            Model::Groups => "list_groups",
            Model::Channels => "list_channels",
            Model::ChannelMessages => "list_channel_messages",
            Model::Feedback => "list_feedback",
        }
    }

    /// The get operation's slug (`get_folder`).
    pub fn get_slug(self) -> &'static str {
        match self {
            Model::Folders => "get_folder",
            Model::Knowledge => "get_knowledge",
            Model::Notes => "get_note",
            Model::Memories => "get_memory",
            Model::Prompts => "get_prompt",
            Model::Models => "get_model",
            Model::Groups => "get_group",
            Model::Channels => "get_channel",
            Model::ChannelMessages => "get_channel_message",
            Model::Feedback => "get_feedback",
        }
    }

    /// What the list operation calls.
    pub fn list_call(self) -> &'static str {
        match self {
            Model::Folders => "`folders().list` of the heavy user (all their folders)",
            Model::Knowledge => {
                "`knowledge().search` for the heavy user (own, shared with a group of theirs, \
                 public), first page of 60"
            }
            Model::Notes => "`notes().search` for the heavy user (by access), first page of 60",
            Model::Memories => "`memories().list` of the heavy user, first page of 60",
            Model::Prompts => "`prompts().search` for the heavy user (by access), first page of 60",
            Model::Models => "`models().search` for the heavy user (by access), first page of 60",
            Model::Groups => "`groups().list` of the groups the heavy user belongs to",
            Model::Channels => "`channels().for_user` of the heavy user",
            Model::ChannelMessages => {
                "`channels().messages` of the heavy user's busiest channel, first page of 60"
            }
            Model::Feedback => "`feedback().for_user` of the heavy user, first page of 60",
        }
    }

    /// How many records of this model the workload creates at `w`'s scale.
    pub fn count(self, w: &Workload) -> u64 {
        let full = match self {
            Model::Folders => 24,
            Model::Knowledge => 16,
            Model::Notes => 0,
            Model::Memories => 60,
            Model::Prompts => 24,
            Model::Models => 16,
            Model::Groups => 6,
            Model::Channels => 4,
            Model::ChannelMessages => 150,
            Model::Feedback => 80,
        };
        full.min((w.chats() / 8).max(3))
    }

    /// The id of record `k` of this model (notes: the workload's notes).
    pub fn id(self, w: &Workload, k: u64) -> String {
        match self {
            Model::Notes => w.note_id(k),
            _ => Rng::for_item(w.seed, self.key(), k).uuid(),
        }
    }
}

/// Creates the models' records for the workload through the typed API: the heavy user's
/// folders (a quarter nested), memories, knowledge bases, prompts and models (with versions),
/// groups (the heavy user in most, one nested), channels with the heavy user as member and
/// messages in the first, and feedback; user 1 owns a few knowledge bases, prompts and models
/// shared with one of the heavy user's groups or with everyone, so lists by access have grants
/// to follow. Calls `progress` with the records written.
pub async fn load(w: &Workload, store: &Store, progress: &(dyn Fn(u64) + Sync)) -> Result<()> {
    let Ok(ws) = store.workspace() else {
        return Ok(());
    };
    let heavy = w.user_id(0);
    let other = w.user_id(1 % w.users().max(1));
    let n = |m: Model| m.count(w);
    let mut rng = Rng::for_item(w.seed, "models", 0);
    let topic = |rng: &mut Rng| TOPICS[rng.below(TOPICS.len() as u64) as usize];

    // Groups first: grants point at them.
    for k in 0..n(Model::Groups) {
        let mut g = NewGroup {
            id: Some(Model::Groups.id(w, k)),
            user_id: Some(other.clone()),
            name: format!("{} team {k}", topic(&mut rng)),
            description: Some(prose(&mut rng, 80)),
            ..NewGroup::default()
        };
        if k == n(Model::Groups) - 1 && k > 0 {
            g.parent_group_id = Some(Model::Groups.id(w, 0));
        }
        ws.groups().create(g).await?;
        // The heavy user is in every group but the last.
        let members: Vec<String> = if k + 1 < n(Model::Groups) {
            vec![heavy.clone(), other.clone()]
        } else {
            vec![other.clone()]
        };
        ws.groups()
            .add_users(&Model::Groups.id(w, k), &members)
            .await?;
    }
    progress(n(Model::Groups));
    let group0 = Model::Groups.id(w, 0);

    for k in 0..n(Model::Folders) {
        let mut f = NewFolder::new(&heavy, format!("{} {k}", topic(&mut rng)));
        f.id = Some(Model::Folders.id(w, k));
        if k % 4 == 3 {
            f = f.inside(Model::Folders.id(w, k - 3));
        }
        ws.folders().create(f).await?;
    }
    progress(n(Model::Folders));

    for k in 0..n(Model::Memories) {
        let len = rng.range(40, 300) as usize;
        let mut m = NewMemory::new(&heavy, prose(&mut rng, len));
        m.id = Some(Model::Memories.id(w, k));
        ws.memories().create(m).await?;
    }
    progress(n(Model::Memories));

    // A fifth of the shared models belong to user 1 and are shared with the heavy user's
    // group (even k) or with everyone (odd k).
    let owner = |k: u64| if k % 5 == 4 { &other } else { &heavy };
    let grants = |k: u64| -> Vec<Grant> {
        match (k % 5 == 4, k.is_multiple_of(2)) {
            (true, true) => vec![Grant::group(&group0, Permission::Read)],
            (true, false) => vec![Grant::public_read()],
            _ => Vec::new(),
        }
    };
    for k in 0..n(Model::Knowledge) {
        let mut kb = NewKnowledge::new(owner(k), format!("{} docs {k}", topic(&mut rng)));
        kb.id = Some(Model::Knowledge.id(w, k));
        kb.description = Some(prose(&mut rng, 120));
        kb.access_grants = grants(k);
        ws.knowledge().create(kb).await?;
    }
    progress(n(Model::Knowledge));

    for k in 0..n(Model::Prompts) {
        let len = rng.range(200, 1_200) as usize;
        let mut p = NewPrompt::new(
            owner(k),
            format!("bench-prompt-{k}"),
            format!("{} helper {k}", topic(&mut rng)),
            prose(&mut rng, len),
        );
        p.id = Some(Model::Prompts.id(w, k));
        p.tags = vec![topic(&mut rng).to_lowercase()];
        p.access_grants = grants(k);
        ws.prompts().create(p).await?;
    }
    progress(n(Model::Prompts));

    for k in 0..n(Model::Models) {
        let m = NewModel {
            id: Model::Models.id(w, k),
            user_id: owner(k).clone(),
            base_model_id: Some("llama3.1:8b".to_owned()),
            name: format!("{} assistant {k}", topic(&mut rng)),
            params: Some(json!({"temperature": 0.2, "num_ctx": 8192})),
            meta: Some(json!({
                "description": prose(&mut rng, 100),
                "tags": [{"name": topic(&mut rng).to_lowercase()}],
                "capabilities": {"vision": false, "citations": true},
            })),
            access_grants: grants(k),
            ..NewModel::default()
        };
        ws.models().create(m).await?;
    }
    progress(n(Model::Models));

    for k in 0..n(Model::Channels) {
        let c = NewChannel {
            id: Some(Model::Channels.id(w, k)),
            user_id: heavy.clone(),
            name: format!("{}-{k}", topic(&mut rng).to_lowercase()),
            description: Some(prose(&mut rng, 60)),
            member_ids: vec![heavy.clone(), other.clone()],
            ..NewChannel::default()
        };
        ws.channels().create(c).await?;
    }
    progress(n(Model::Channels));
    let channel0 = Model::Channels.id(w, 0);
    for k in 0..n(Model::ChannelMessages) {
        let len = rng.range(20, 400) as usize;
        let m = NewChannelMessage {
            id: Some(Model::ChannelMessages.id(w, k)),
            channel_id: channel0.clone(),
            user_id: if k % 3 == 0 {
                other.clone()
            } else {
                heavy.clone()
            },
            content: prose(&mut rng, len),
            // Every tenth message is a reply in the thread of the first.
            parent_id: (k % 10 == 9).then(|| Model::ChannelMessages.id(w, 0)),
            ..NewChannelMessage::default()
        };
        ws.channels().post(m).await?;
    }
    progress(n(Model::ChannelMessages));

    for k in 0..n(Model::Feedback) {
        let f = NewFeedback {
            id: Some(Model::Feedback.id(w, k)),
            user_id: heavy.clone(),
            kind: Some("rating".to_owned()),
            data: Some(json!({
                "rating": if k % 4 == 0 { -1 } else { 1 },
                "model_id": Model::Models.id(w, k % n(Model::Models).max(1)),
                "reason": prose(&mut rng, 60),
            })),
            meta: Some(json!({"chat_id": w.chat_id(k % w.chats().max(1)), "message_index": 1})),
            snapshot: Some(json!({"chat": {"title": format!("Chat {k}"), "messages": []}})),
            ..NewFeedback::default()
        };
        ws.feedback().create(f).await?;
    }
    progress(n(Model::Feedback));
    Ok(())
}

/// The records the model loads create (for progress bars).
pub fn records(w: &Workload) -> u64 {
    Model::ALL.iter().map(|m| m.count(w)).sum()
}

/// Lists the heavy user's first page (or all) of `model` through the typed API of `ws`.
pub async fn list(ws: &Workspace, w: &Workload, model: Model) -> Result<()> {
    let user = w.user_id(0);
    let page = PageRequest::first(PAGE_SIZE);
    let search = || Search::for_user(&user).page(page);
    match model {
        Model::Folders => ws.folders().list(&user).await.map(drop),
        Model::Knowledge => ws.knowledge().search(&search()).await.map(drop),
        Model::Notes => ws.notes().search(&search()).await.map(drop),
        Model::Memories => ws.memories().list(&user, page).await.map(drop),
        Model::Prompts => ws.prompts().search(&search()).await.map(drop),
        Model::Models => ws.models().search(&search()).await.map(drop),
        Model::Groups => ws.groups().list(None, Some(&user)).await.map(drop),
        Model::Channels => ws.channels().for_user(&user).await.map(drop),
        Model::ChannelMessages => ws
            .channels()
            .messages(&Model::Channels.id(w, 0), page)
            .await
            .map(drop),
        Model::Feedback => ws.feedback().for_user(&user, page).await.map(drop),
    }
}

/// Reads record `k` (modulo the model's count) of `model` through the typed API of `ws`.
pub async fn get(ws: &Workspace, w: &Workload, model: Model, k: u64) -> Result<()> {
    let count = match model {
        Model::Notes => w.notes(),
        _ => model.count(w),
    };
    let id = model.id(w, k % count.max(1));
    match model {
        Model::Folders => ws.folders().get(&w.user_id(0), &id).await.map(drop),
        Model::Knowledge => ws.knowledge().get(&id).await.map(drop),
        Model::Notes => ws.notes().get(&id).await.map(drop),
        Model::Memories => ws.memories().get(&id).await.map(drop),
        Model::Prompts => ws.prompts().get(&id).await.map(drop),
        Model::Models => ws.models().get(&id).await.map(drop),
        Model::Groups => ws.groups().get(&id).await.map(drop),
        Model::Channels => ws.channels().get(&id).await.map(drop),
        Model::ChannelMessages => ws.channels().message(&id).await.map(drop),
        Model::Feedback => ws.feedback().get(&id).await.map(drop),
    }
}

/// One row-store read a typed call made, with the SQL adapter's statement for it in both
/// dialects.
#[derive(Debug, Clone)]
pub struct RowCall {
    /// The table read.
    pub table: &'static Table,
    /// Whether it was a `count` (else a `select`).
    pub count: bool,
    /// The query of a select (a count's: its filter only), for baselines that build requests
    /// from it (raw HTTP on PocketBase, through the adapter's own filter builder).
    pub query: RowQuery,
    /// The statement chatstore-sql sends on SQLite: text and binds.
    pub sqlite: Option<(String, Vec<Bound>)>,
    /// The statement chatstore-sql sends on PostgreSQL: text and binds.
    pub postgres: Option<(String, Vec<Bound>)>,
}

impl RowCall {
    fn select(table: &'static Table, query: &RowQuery) -> Self {
        let text = |d| chatstore_sql::rows::select_text(table, query, d).ok();
        RowCall {
            table,
            count: false,
            query: query.clone(),
            sqlite: text(Dialect::Sqlite),
            postgres: text(Dialect::Postgres),
        }
    }

    fn count(table: &'static Table, filter: &[Cond]) -> Self {
        let text = |d| chatstore_sql::rows::count_text(table, filter, d).ok();
        RowCall {
            table,
            count: true,
            query: RowQuery::filter(filter.to_vec()),
            sqlite: text(Dialect::Sqlite),
            postgres: text(Dialect::Postgres),
        }
    }
}

/// The reads one typed call made, in order.
pub type RowPlan = Vec<RowCall>;

/// A row store that passes every call on and writes down the reads.
struct Recording {
    inner: Arc<dyn RowStore>,
    calls: Mutex<RowPlan>,
}

impl Recording {
    fn push(&self, call: RowCall) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(call);
        }
    }
}

#[async_trait]
impl RowStore for Recording {
    async fn select(&self, table: &'static Table, query: &RowQuery) -> Result<Vec<Row>> {
        self.push(RowCall::select(table, query));
        self.inner.select(table, query).await
    }

    async fn count(&self, table: &'static Table, filter: &[Cond]) -> Result<u64> {
        self.push(RowCall::count(table, filter));
        self.inner.count(table, filter).await
    }

    async fn write(&self, ops: Vec<RowOp>) -> Result<Vec<u64>> {
        self.inner.write(ops).await
    }
}

/// Runs `call` once on a workspace over a recording of `store`'s rows and gives the reads it
/// made (`None` when the store has no rows).
pub async fn record<F, Fut>(store: &Store, call: F) -> Result<Option<RowPlan>>
where
    F: FnOnce(Workspace) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let Ok(rows) = store.rows() else {
        return Ok(None);
    };
    let recording = Arc::new(Recording {
        inner: rows,
        calls: Mutex::new(Vec::new()),
    });
    let ws = Workspace::new(recording.clone(), store.chats.clone());
    call(ws).await?;
    let plan = recording
        .calls
        .lock()
        .map(|mut c| std::mem::take(&mut *c))
        .unwrap_or_default();
    Ok(Some(plan))
}
