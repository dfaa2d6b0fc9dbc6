//! The property test: random sequences of operations applied to a backend and to the memory
//! reference model at once; every result must agree (values equal, errors of the same kind),
//! and so must everything an export scan sees at the end.
//!
//! Inputs carry explicit ids and timestamps, so both stores receive exactly the same data.
//! The number of cases comes from `CHATSTORE_PROPTEST_CASES` (default 16).

use std::future::Future;

use chatstore_core::{
    ChatCursor, ChatOrder, ChatPatch, ChatQuery, ErrorKind, FileQuery, NewChat, NewFile,
    NewMessage, NewUser, PageRequest, Store, TagFilter, UserPatch, VectorFilter, VectorItem,
    memory,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde::Serialize;
use serde_json::{Value, json};

use crate::fixtures::T0;

const TAG_NAMES: [&str; 7] = ["work", "Work", "deep work", "Deep_Work", "ÉTÉ", "été", "x"];
const TITLES: [&str; 5] = ["Alpha", "alpha beta", "ÉCOLE", "100%", "snake_case"];
const TITLE_FILTERS: [&str; 5] = ["alpha", "école", "%", "_", "zzz"];
const ROLES: [&str; 4] = ["user", "assistant", "system", "robot"];

/// One operation of a generated sequence.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub enum Op {
    CreateUser {
        n: u8,
        email: u8,
        upper: bool,
        ts: u8,
    },
    UpdateUserEmail {
        n: u8,
        email: u8,
        upper: bool,
        ts: u8,
    },
    GetUserByEmail {
        email: u8,
        upper: bool,
    },
    ListUsers {
        offset: u8,
        limit: u8,
    },
    DeleteUser {
        n: u8,
    },
    CreateChat {
        c: u8,
        u: u8,
        tags: Vec<u8>,
        archived: bool,
        pinned: bool,
        internal: bool,
        folder: Option<u8>,
        title: u8,
        ts: u8,
    },
    UpdateChat {
        c: u8,
        title: Option<u8>,
        archived: Option<bool>,
        pinned: Option<bool>,
        ts: u8,
    },
    DeleteChat {
        c: u8,
    },
    GetChat {
        c: u8,
    },
    AddTag {
        c: u8,
        t: u8,
    },
    RemoveTag {
        c: u8,
        t: u8,
    },
    SetTags {
        c: u8,
        tags: Vec<u8>,
    },
    DeleteTag {
        u: u8,
        t: u8,
    },
    TagUsage {
        u: u8,
    },
    ListChats {
        u: u8,
        tags: Option<Vec<u8>>,
        archived: Option<bool>,
        pinned: Option<bool>,
        title: Option<u8>,
        order: u8,
        offset: u8,
        limit: u8,
        /// A cursor: the chat `c{0}`, the time `ts({1})`, the title `TITLES[{2}]`.
        after: Option<(u8, u8, u8)>,
    },
    UpsertMessage {
        c: u8,
        m: u8,
        parent: Option<u8>,
        role: u8,
        text: u8,
        ts: u8,
    },
    DeleteMessage {
        c: u8,
        m: u8,
    },
    ListMessages {
        c: u8,
    },
    PutFile {
        f: u8,
        u: u8,
        len: u8,
        ts: u8,
    },
    DeleteFile {
        f: u8,
    },
    ReadFile {
        f: u8,
    },
    ListFiles {
        u: Option<u8>,
        offset: u8,
        limit: u8,
    },
    InsertVectors {
        coll: u8,
        items: Vec<(u8, [i8; 3], u8, bool)>,
    },
    UpsertVectors {
        coll: u8,
        items: Vec<(u8, [i8; 3], u8, bool)>,
    },
    Search {
        coll: u8,
        q: [i8; 3],
        filter: Option<u8>,
        limit: u8,
    },
    QueryVectors {
        coll: u8,
        filter: u8,
    },
    DeleteVectors {
        coll: u8,
        ids: Vec<u8>,
    },
    DeleteCollection {
        coll: u8,
    },
    Rows(crate::model_rows::RowsOp),
}

fn op_strategy(groups: &[&str]) -> BoxedStrategy<Op> {
    let has = |g: &str| groups.contains(&g);
    let mut options: Vec<BoxedStrategy<Op>> = Vec::new();
    let small = || 0u8..4;
    let ts = || 0u8..12;
    if has("users") {
        options.push(
            (small(), small(), any::<bool>(), ts())
                .prop_map(|(n, email, upper, ts)| Op::CreateUser {
                    n,
                    email,
                    upper,
                    ts,
                })
                .boxed(),
        );
        options.push(
            (small(), small(), any::<bool>(), ts())
                .prop_map(|(n, email, upper, ts)| Op::UpdateUserEmail {
                    n,
                    email,
                    upper,
                    ts,
                })
                .boxed(),
        );
        options.push(
            (small(), any::<bool>())
                .prop_map(|(email, upper)| Op::GetUserByEmail { email, upper })
                .boxed(),
        );
        options.push(
            (0u8..5, 0u8..4)
                .prop_map(|(offset, limit)| Op::ListUsers { offset, limit })
                .boxed(),
        );
    }
    if has("chats") || has("tags") || has("messages") {
        let tags = || proptest::collection::vec(0u8..TAG_NAMES.len() as u8, 0..3);
        options.push(
            (
                0u8..6,
                0u8..2,
                tags(),
                any::<bool>(),
                any::<bool>(),
                prop::bool::weighted(0.2),
                prop::option::of(0u8..2),
                0u8..TITLES.len() as u8,
                ts(),
            )
                .prop_map(
                    |(c, u, tags, archived, pinned, internal, folder, title, ts)| Op::CreateChat {
                        c,
                        u,
                        tags,
                        archived,
                        pinned,
                        internal,
                        folder,
                        title,
                        ts,
                    },
                )
                .boxed(),
        );
        options.push(
            (
                0u8..6,
                prop::option::of(0u8..TITLES.len() as u8),
                prop::option::of(any::<bool>()),
                prop::option::of(any::<bool>()),
                ts(),
            )
                .prop_map(|(c, title, archived, pinned, ts)| Op::UpdateChat {
                    c,
                    title,
                    archived,
                    pinned,
                    ts,
                })
                .boxed(),
        );
        options.push((0u8..6).prop_map(|c| Op::DeleteChat { c }).boxed());
        options.push((0u8..6).prop_map(|c| Op::GetChat { c }).boxed());
        options.push(
            (0u8..6, 0u8..TAG_NAMES.len() as u8)
                .prop_map(|(c, t)| Op::AddTag { c, t })
                .boxed(),
        );
        options.push(
            (0u8..6, 0u8..TAG_NAMES.len() as u8)
                .prop_map(|(c, t)| Op::RemoveTag { c, t })
                .boxed(),
        );
        options.push(
            (0u8..6, tags())
                .prop_map(|(c, tags)| Op::SetTags { c, tags })
                .boxed(),
        );
        options.push(
            (0u8..2, 0u8..TAG_NAMES.len() as u8)
                .prop_map(|(u, t)| Op::DeleteTag { u, t })
                .boxed(),
        );
        options.push((0u8..2).prop_map(|u| Op::TagUsage { u }).boxed());
        options.push(
            (
                0u8..2,
                prop::option::of(proptest::collection::vec(0u8..TAG_NAMES.len() as u8, 0..3)),
                prop::option::of(any::<bool>()),
                prop::option::of(any::<bool>()),
                prop::option::of(0u8..TITLE_FILTERS.len() as u8),
                0u8..3,
                0u8..4,
                0u8..5,
                prop::option::of((0u8..6, ts(), 0u8..TITLES.len() as u8)),
            )
                .prop_map(
                    |(u, tags, archived, pinned, title, order, offset, limit, after)| {
                        Op::ListChats {
                            u,
                            tags,
                            archived,
                            pinned,
                            title,
                            order,
                            offset,
                            limit,
                            after,
                        }
                    },
                )
                .boxed(),
        );
        options.push(
            (
                0u8..6,
                0u8..4,
                prop::option::of(0u8..4),
                0u8..ROLES.len() as u8,
                0u8..3,
                ts(),
            )
                .prop_map(|(c, m, parent, role, text, ts)| Op::UpsertMessage {
                    c,
                    m,
                    parent,
                    role,
                    text,
                    ts,
                })
                .boxed(),
        );
        options.push(
            (0u8..6, 0u8..4)
                .prop_map(|(c, m)| Op::DeleteMessage { c, m })
                .boxed(),
        );
        options.push((0u8..6).prop_map(|c| Op::ListMessages { c }).boxed());
    }
    if has("files") {
        options.push(
            (0u8..4, 0u8..2, 0u8..40, ts())
                .prop_map(|(f, u, len, ts)| Op::PutFile { f, u, len, ts })
                .boxed(),
        );
        options.push((0u8..4).prop_map(|f| Op::DeleteFile { f }).boxed());
        options.push((0u8..4).prop_map(|f| Op::ReadFile { f }).boxed());
        options.push(
            (prop::option::of(0u8..2), 0u8..3, 0u8..4)
                .prop_map(|(u, offset, limit)| Op::ListFiles { u, offset, limit })
                .boxed(),
        );
    }
    if has("store") && has("users") && has("chats") && has("files") {
        options.push((0u8..4).prop_map(|n| Op::DeleteUser { n }).boxed());
    }
    if has("vectors") {
        let items = || {
            proptest::collection::vec(
                (
                    0u8..8,
                    [-2i8..3, -2i8..3, -2i8..3],
                    0u8..3,
                    prop::bool::weighted(0.1),
                ),
                0..4,
            )
        };
        options.push(
            (0u8..2, items())
                .prop_map(|(coll, items)| Op::InsertVectors { coll, items })
                .boxed(),
        );
        options.push(
            (0u8..2, items())
                .prop_map(|(coll, items)| Op::UpsertVectors { coll, items })
                .boxed(),
        );
        options.push(
            (
                0u8..2,
                [-2i8..3, -2i8..3, -2i8..3],
                prop::option::of(0u8..3),
                0u8..6,
            )
                .prop_map(|(coll, q, filter, limit)| Op::Search {
                    coll,
                    q,
                    filter,
                    limit,
                })
                .boxed(),
        );
        options.push(
            (0u8..2, 0u8..3)
                .prop_map(|(coll, filter)| Op::QueryVectors { coll, filter })
                .boxed(),
        );
        options.push(
            (0u8..2, proptest::collection::vec(0u8..8, 0..3))
                .prop_map(|(coll, ids)| Op::DeleteVectors { coll, ids })
                .boxed(),
        );
        options.push(
            (0u8..2)
                .prop_map(|coll| Op::DeleteCollection { coll })
                .boxed(),
        );
    }
    options.extend(
        crate::model_rows::strategies(groups)
            .into_iter()
            .map(|s| s.prop_map(Op::Rows).boxed()),
    );
    proptest::strategy::Union::new(options).boxed()
}

/// A result as the property test compares it: the value as JSON, or the error's kind.
pub type Outcome = Result<Value, ErrorKind>;

fn out<T: Serialize>(result: chatstore_core::Result<T>) -> Outcome {
    match result {
        Ok(v) => Ok(serde_json::to_value(v).unwrap_or(Value::Null)),
        Err(e) => Err(e.kind()),
    }
}

fn email(n: u8, upper: bool) -> String {
    let e = format!("person-{n}@example.com");
    if upper { e.to_uppercase() } else { e }
}

fn ts(t: u8) -> i64 {
    T0 + i64::from(t)
}

fn tag_names(tags: &[u8]) -> Vec<String> {
    tags.iter()
        .map(|t| TAG_NAMES[*t as usize].to_owned())
        .collect()
}

fn vector_items(items: &[(u8, [i8; 3], u8, bool)]) -> Vec<VectorItem> {
    items
        .iter()
        .map(|(id, v, meta, short)| {
            let mut vector: Vec<f32> = v.iter().map(|x| f32::from(*x)).collect();
            if *short {
                vector.truncate(2);
            }
            VectorItem {
                id: format!("v{id}"),
                text: format!("text {id}"),
                vector,
                metadata: json!({"file_id": format!("f{meta}"), "n": meta})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            }
        })
        .collect()
}

fn vector_filter(f: u8) -> VectorFilter {
    match f {
        0 => VectorFilter::eq("file_id", "f0"),
        1 => VectorFilter::default().and_in("n", vec![json!(1), json!("2")]),
        _ => VectorFilter::eq("file_id", "f2").and_eq("n", 2),
    }
}

/// Applies one operation and describes its result.
pub async fn apply(store: &Store, op: &Op) -> Outcome {
    match op {
        Op::CreateUser {
            n,
            email: e,
            upper,
            ts: t,
        } => out(store
            .users
            .create(NewUser {
                id: Some(format!("u{n}")),
                email: email(*e, *upper),
                name: format!("User {n}"),
                created_at: Some(ts(*t)),
                ..NewUser::default()
            })
            .await),
        Op::UpdateUserEmail {
            n,
            email: e,
            upper,
            ts: t,
        } => out(store
            .users
            .update(
                &format!("u{n}"),
                UserPatch {
                    email: Some(email(*e, *upper)),
                    updated_at: Some(ts(*t)),
                    ..UserPatch::default()
                },
            )
            .await),
        Op::GetUserByEmail { email: e, upper } => {
            out(store.users.get_by_email(&email(*e, *upper)).await)
        }
        Op::ListUsers { offset, limit } => out(store
            .users
            .list(PageRequest::new(u64::from(*offset), u64::from(*limit)))
            .await),
        Op::DeleteUser { n } => out(store.delete_user(&format!("u{n}")).await),
        Op::CreateChat {
            c,
            u,
            tags,
            archived,
            pinned,
            internal,
            folder,
            title,
            ts: t,
        } => {
            let mut meta = serde_json::Map::new();
            if *internal {
                meta.insert("internal".into(), Value::Bool(true));
            }
            out(store
                .chats
                .create(NewChat {
                    id: Some(format!("c{c}")),
                    user_id: format!("u{u}"),
                    title: Some(TITLES[*title as usize].to_owned()),
                    chat: Some(json!({"models": ["m"]})),
                    meta: Some(meta),
                    tags: tag_names(tags),
                    archived: *archived,
                    pinned: *pinned,
                    folder_id: folder.map(|f| format!("folder{f}")),
                    share_id: None,
                    created_at: Some(ts(*t)),
                    updated_at: Some(ts(*t)),
                })
                .await)
        }
        Op::UpdateChat {
            c,
            title,
            archived,
            pinned,
            ts: t,
        } => out(store
            .chats
            .update(
                &format!("c{c}"),
                ChatPatch {
                    title: title.map(|i| TITLES[i as usize].to_owned()),
                    archived: *archived,
                    pinned: *pinned,
                    updated_at: Some(ts(*t)),
                    ..ChatPatch::default()
                },
            )
            .await),
        Op::DeleteChat { c } => out(store.chats.delete(&format!("c{c}")).await),
        Op::GetChat { c } => out(store.chats.get(&format!("c{c}")).await),
        Op::AddTag { c, t } => out(store
            .chats
            .add_tag(&format!("c{c}"), TAG_NAMES[*t as usize])
            .await),
        Op::RemoveTag { c, t } => out(store
            .chats
            .remove_tag(&format!("c{c}"), TAG_NAMES[*t as usize])
            .await),
        Op::SetTags { c, tags } => out(store
            .chats
            .set_tags(&format!("c{c}"), &tag_names(tags))
            .await),
        Op::DeleteTag { u, t } => out(store
            .tags
            .delete(&format!("u{u}"), TAG_NAMES[*t as usize])
            .await),
        Op::TagUsage { u } => out(store.tags.usage(&format!("u{u}")).await),
        Op::ListChats {
            u,
            tags,
            archived,
            pinned,
            title,
            order,
            offset,
            limit,
            after,
        } => {
            let mut q = ChatQuery::for_user(format!("u{u}"))
                .archived(*archived)
                .pinned(*pinned)
                .order(match order {
                    0 => ChatOrder::UpdatedDesc,
                    1 => ChatOrder::CreatedDesc,
                    _ => ChatOrder::TitleAsc,
                })
                .page(PageRequest {
                    offset: u64::from(*offset),
                    limit: if *limit == 4 {
                        None
                    } else {
                        Some(u64::from(*limit))
                    },
                });
            q.tags = match tags {
                None => TagFilter::Any,
                Some(t) if t.is_empty() => TagFilter::Untagged,
                Some(t) => TagFilter::AllOf(tag_names(t)),
            };
            q.title = title.map(|i| TITLE_FILTERS[i as usize].to_owned());
            q.after = after.map(|(c, t, title)| {
                let id = format!("c{c}");
                match q.order {
                    ChatOrder::UpdatedDesc => ChatCursor::Updated {
                        updated_at: ts(t),
                        id,
                    },
                    ChatOrder::CreatedDesc => ChatCursor::Created {
                        created_at: ts(t),
                        id,
                    },
                    ChatOrder::TitleAsc => ChatCursor::Title {
                        title: TITLES[title as usize].to_owned(),
                        id,
                    },
                }
            });
            // Both list calls: the page with its total, and the items without one.
            let listed = match store.chats.list(&q).await {
                Ok(page) => store.chats.list_items(&q).await.map(|items| (page, items)),
                Err(e) => Err(e),
            };
            out(listed)
        }
        Op::UpsertMessage {
            c,
            m,
            parent,
            role,
            text,
            ts: t,
        } => {
            let mut message = NewMessage::text(
                format!("c{c}"),
                format!("m{m}"),
                ROLES[*role as usize],
                format!("text {text}"),
            )
            .at(ts(*t));
            message.parent_id = parent.map(|p| format!("m{p}"));
            out(store.messages.upsert(message).await)
        }
        Op::DeleteMessage { c, m } => out(store
            .messages
            .delete(&format!("c{c}"), &format!("m{m}"))
            .await),
        Op::ListMessages { c } => out(store.messages.list(&format!("c{c}")).await),
        Op::PutFile { f, u, len, ts: t } => out(store
            .files
            .put(NewFile {
                id: Some(format!("f{f}")),
                user_id: format!("u{u}"),
                filename: format!("file {f}.bin"),
                content_type: None,
                bytes: (0..*len).map(|i| i.wrapping_mul(37)).collect(),
                created_at: Some(ts(*t)),
                ..NewFile::default()
            })
            .await),
        Op::DeleteFile { f } => out(store.files.delete(&format!("f{f}")).await),
        Op::ReadFile { f } => out(store.files.read(&format!("f{f}")).await),
        Op::ListFiles { u, offset, limit } => out(store
            .files
            .list(&FileQuery {
                user_id: u.map(|u| format!("u{u}")),
                page: PageRequest::new(u64::from(*offset), u64::from(*limit)),
            })
            .await),
        Op::InsertVectors { coll, items } => out(store
            .vectors
            .insert(&format!("coll{coll}"), vector_items(items))
            .await),
        Op::UpsertVectors { coll, items } => out(store
            .vectors
            .upsert(&format!("coll{coll}"), vector_items(items))
            .await),
        Op::Search {
            coll,
            q,
            filter,
            limit,
        } => {
            let query: Vec<f32> = q.iter().map(|x| f32::from(*x)).collect();
            let filter = filter.map(vector_filter);
            out(store
                .vectors
                .search(
                    &format!("coll{coll}"),
                    &[query],
                    filter.as_ref(),
                    u32::from(*limit),
                )
                .await)
        }
        Op::QueryVectors { coll, filter } => out(store
            .vectors
            .query(&format!("coll{coll}"), &vector_filter(*filter), None)
            .await),
        Op::DeleteVectors { coll, ids } => {
            let ids: Vec<String> = ids.iter().map(|i| format!("v{i}")).collect();
            out(store
                .vectors
                .delete(&format!("coll{coll}"), Some(&ids), None)
                .await)
        }
        Op::DeleteCollection { coll } => out(store
            .vectors
            .delete_collection(&format!("coll{coll}"))
            .await),
        Op::Rows(op) => crate::model_rows::apply(store, op).await,
    }
}

/// Everything an export sees, for the final comparison.
pub async fn snapshot(store: &Store, groups: &[&str]) -> Vec<(&'static str, Outcome)> {
    let has = |g: &str| groups.contains(&g);
    let mut out_list = Vec::new();
    if has("users") {
        out_list.push(("users", out(store.users.scan(None, 1000).await)));
    }
    if has("chats") || has("tags") || has("messages") {
        out_list.push(("chats", out(store.chats.scan(None, 1000).await)));
        out_list.push(("messages", out(store.messages.scan(None, 1000).await)));
        out_list.push(("tags", out(store.tags.scan(None, 1000).await)));
    }
    if has("files") {
        out_list.push(("files", out(store.files.scan(None, 1000).await)));
    }
    if has("vectors") {
        out_list.push(("collections", out(store.vectors.collections().await)));
        for c in 0..2 {
            out_list.push(("vectors", out(store.vectors.get(&format!("coll{c}")).await)));
        }
    }
    out_list.extend(crate::model_rows::snapshot(store, groups).await);
    out_list
}

fn same_outcome(a: &Outcome, b: &Outcome) -> bool {
    match (a, b) {
        (Ok(x), Ok(y)) => chatstore_core::compare::same(x, y),
        (Err(x), Err(y)) => x == y,
        _ => false,
    }
}

/// Whether a backend's search answers the model's, ties aside. Two distances a rounding
/// apart are a tie: pgvector computes cosine distance in single precision, so hits the model
/// finds at exactly the same distance can come back a unit in the last place apart, in either
/// order. Within a run of tied hits the order is free; a run cut by the limit may hold other
/// items tied with them, so there a hit is compared only where both sides hold it. Ties are
/// distances within the comparison's float tolerance.
fn same_search(got: &Outcome, want: &Outcome) -> bool {
    const TIE: f64 = chatstore_core::compare::FLOAT_TOLERANCE;
    let (Ok(Value::Array(got)), Ok(Value::Array(want))) = (got, want) else {
        return same_outcome(got, want);
    };
    let distance = |hit: &Value| hit.get("distance").and_then(Value::as_f64);
    let id = |hit: &Value| hit.get("id").and_then(Value::as_str).map(str::to_owned);
    got.len() == want.len()
        && got.iter().zip(want).all(|(got, want)| {
            let (Some(got), Some(want)) = (got.as_array(), want.as_array()) else {
                return chatstore_core::compare::same(got, want);
            };
            let mut ids: Vec<Option<String>> = got.iter().map(id).collect();
            ids.sort();
            ids.dedup();
            if got.len() != want.len() || ids.len() != got.len() {
                return false;
            }
            let mut start = 0;
            while start < want.len() {
                let Some(first) = distance(&want[start]) else {
                    return false;
                };
                let mut end = start + 1;
                while end < want.len()
                    && distance(&want[end]).is_some_and(|d| (d - first).abs() <= TIE)
                {
                    end += 1;
                }
                let tied = start..end;
                let distances_agree = tied.clone().all(|i| {
                    matches!((distance(&got[i]), distance(&want[i])), (Some(g), Some(w)) if (g - w).abs() <= TIE)
                });
                if !distances_agree {
                    return false;
                }
                let want_run = &want[tied.clone()];
                let got_run = &got[tied];
                // A hit both hold is the same hit; inside the answer the run holds the same
                // hits (in any order), while the last run may hold other items tied with them.
                let inside = end < want.len();
                let all_found = got_run.iter().all(|g| {
                    match want_run.iter().find(|w| id(w) == id(g)) {
                        Some(w) => chatstore_core::compare::same(g, w),
                        None => !inside,
                    }
                });
                if !all_found {
                    return false;
                }
                start = end;
            }
            true
        })
}

/// The number of generated cases: `CHATSTORE_PROPTEST_CASES`, default 16.
pub fn cases() -> u32 {
    std::env::var("CHATSTORE_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16)
}

/// Runs the property test: `factory` gives a fresh backend store per case (or `None` when its
/// server is not configured, which skips loudly); `groups` limits the operations to the
/// aggregates the backend's suite covers.
pub fn check_against_memory<F, Fut>(factory: F, groups: &[&str])
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<Store>>,
{
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("cannot start a tokio runtime: {e}"),
    };
    if rt.block_on(factory()).is_none() {
        return;
    }
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        max_shrink_iters: 200,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = proptest::collection::vec(op_strategy(groups), 1..40);
    let result = runner.run(&strategy, |ops| {
        rt.block_on(async {
            let Some(store) = factory().await else {
                return Err(TestCaseError::fail("the backend's server went away"));
            };
            let model = memory::store();
            for (i, op) in ops.iter().enumerate() {
                let got = apply(&store, op).await;
                let want = apply(&model, op).await;
                let same = match op {
                    Op::Search { .. } => same_search(&got, &want),
                    _ => same_outcome(&got, &want),
                };
                if !same {
                    return Err(TestCaseError::fail(format!(
                        "operation {i} {op:?}\n  backend: {got:?}\n  model:   {want:?}"
                    )));
                }
            }
            let got = snapshot(&store, groups).await;
            let want = snapshot(&model, groups).await;
            for ((name, g), (_, w)) in got.iter().zip(&want) {
                if !same_outcome(g, w) {
                    return Err(TestCaseError::fail(format!(
                        "final {name} differ\n  backend: {g:?}\n  model:   {w:?}"
                    )));
                }
            }
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("the backend disagrees with the memory model: {e}");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::{Outcome, same_search};

    fn hits(list: &[(&str, f64)]) -> Outcome {
        let hits: Vec<Value> = list
            .iter()
            .map(|(id, d)| json!({"id": id, "text": id, "metadata": {}, "distance": d, "score": (2.0 - d) / 2.0}))
            .collect();
        Ok(json!([hits]))
    }

    /// The tie seen on pgvector: [1,0,0] and [2,-1,2] against [2,-2,0] are at the same cosine
    /// distance, computed a unit in the last place apart.
    #[test]
    fn tied_hits_may_come_in_either_order_and_a_cut_run_may_hold_any_tied_item() {
        let d = 1.0 - std::f64::consts::FRAC_1_SQRT_2;
        let model = hits(&[("v0", d), ("v1", d), ("v2", 0.9)]);
        let swapped = hits(&[("v1", d - 1e-9), ("v0", d), ("v2", 0.9)]);
        assert!(same_search(&swapped, &model));
        // Cut by the limit: the one tied item returned may be either.
        assert!(same_search(&hits(&[("v1", d)]), &hits(&[("v0", d)])));
        // Not ties: another item, a different distance, a doubled hit.
        assert!(!same_search(
            &hits(&[("v0", d), ("v3", d), ("v2", 0.9)]),
            &model
        ));
        assert!(!same_search(
            &hits(&[("v0", d), ("v1", d), ("v2", 0.8)]),
            &model
        ));
        assert!(!same_search(
            &hits(&[("v0", d), ("v0", d), ("v2", 0.9)]),
            &model
        ));
        assert!(!same_search(
            &hits(&[("v2", 0.9), ("v0", d), ("v1", d)]),
            &model
        ));
    }
}
