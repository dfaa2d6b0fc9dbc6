//! The property test's operations on rows and the models over them: random row writes and
//! selects (every condition, orders with nulls and ties, pages) on the `memory` table, and
//! folder, prompt and grant operations through the workspace. Results that hold generated ids
//! or the current time are compared through stable projections (ids, names, counts).

use chatstore_core::models::{
    FolderChats, FolderPatch, Grant, NewFolder, NewPrompt, Permission, PromptPatch, Search, SortBy,
};
use chatstore_core::rows::tables::{MEMORY, PROMPT_HISTORY};
use chatstore_core::rows::{Cond, Dir, Row, RowOp, RowQuery, row};
use chatstore_core::{PageRequest, Store};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::fixtures::T0;
use crate::model::Outcome;

const USERS: [&str; 3] = ["u0", "u1", "U1"];
const CONTENTS: [&str; 6] = ["Alpha", "alpha beta", "ÉTÉ", "été", "100%_x", ""];
const NEEDLES: [&str; 5] = ["alp", "ÉT", "%_", "_", "x"];
const COLUMNS: [&str; 5] = ["user_id", "content", "created_at", "type", "path"];
const FOLDER_NAMES: [&str; 4] = ["Work", "work", "Home", "Ünï"];

/// A condition on the `memory` table.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub enum CondSpec {
    User { ne: bool, u: u8 },
    Content { op: u8, c: u8 },
    Created { op: u8, ts: u8 },
    InUsers(Vec<u8>),
    Null { column: u8, not: bool },
    Contains(u8),
    Any(Box<CondSpec>, Box<CondSpec>),
}

/// One row or model operation.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub enum RowsOp {
    Write(Vec<WriteSpec>),
    Select {
        filter: Vec<CondSpec>,
        order: Vec<(u8, bool)>,
        offset: u8,
        limit: Option<u8>,
    },
    Count(Vec<CondSpec>),
    CreateFolder {
        u: u8,
        f: u8,
        parent: Option<u8>,
        name: u8,
    },
    RenameFolder {
        u: u8,
        f: u8,
        name: u8,
    },
    MoveFolder {
        u: u8,
        f: u8,
        parent: Option<u8>,
    },
    DeleteFolder {
        u: u8,
        f: u8,
        detach: bool,
    },
    ListFolders {
        u: u8,
    },
    CreatePrompt {
        p: u8,
        u: u8,
        command: u8,
        public: bool,
    },
    UpdatePrompt {
        p: u8,
        command: Option<u8>,
        content: u8,
    },
    DeletePrompt {
        p: u8,
    },
    GrantPrompt {
        p: u8,
        u: u8,
        write: bool,
    },
    SearchPrompts {
        u: Option<u8>,
        write: bool,
        sort: u8,
        offset: u8,
    },
}

/// One write of a batch.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub enum WriteSpec {
    Insert {
        id: u8,
        u: u8,
        c: Option<u8>,
        ts: Option<u8>,
    },
    Upsert {
        id: u8,
        u: u8,
        c: Option<u8>,
        ts: Option<u8>,
    },
    Update {
        filter: CondSpec,
        c: Option<u8>,
        path: Option<u8>,
    },
    Delete {
        filter: CondSpec,
    },
}

fn cond_strategy() -> impl Strategy<Value = CondSpec> {
    let leaf = prop_oneof![
        (any::<bool>(), 0u8..3).prop_map(|(ne, u)| CondSpec::User { ne, u }),
        (0u8..6, 0u8..6).prop_map(|(op, c)| CondSpec::Content { op, c }),
        (0u8..6, 0u8..5).prop_map(|(op, ts)| CondSpec::Created { op, ts }),
        proptest::collection::vec(0u8..3, 0..3).prop_map(CondSpec::InUsers),
        (0u8..5, any::<bool>()).prop_map(|(column, not)| CondSpec::Null { column, not }),
        (0u8..5).prop_map(CondSpec::Contains),
    ];
    leaf.prop_recursive(1, 4, 2, |inner| {
        (inner.clone(), inner).prop_map(|(a, b)| CondSpec::Any(Box::new(a), Box::new(b)))
    })
}

fn write_strategy() -> impl Strategy<Value = WriteSpec> {
    let row = || {
        (
            0u8..6,
            0u8..3,
            prop::option::of(0u8..6),
            prop::option::of(0u8..5),
        )
    };
    prop_oneof![
        row().prop_map(|(id, u, c, ts)| WriteSpec::Insert { id, u, c, ts }),
        row().prop_map(|(id, u, c, ts)| WriteSpec::Upsert { id, u, c, ts }),
        (
            cond_strategy(),
            prop::option::of(0u8..6),
            prop::option::of(0u8..3)
        )
            .prop_map(|(filter, c, path)| WriteSpec::Update { filter, c, path }),
        cond_strategy().prop_map(|filter| WriteSpec::Delete { filter }),
    ]
}

/// The strategies of the row and model operations, for the groups the backend covers.
pub fn strategies(groups: &[&str]) -> Vec<BoxedStrategy<RowsOp>> {
    let has = |g: &str| groups.contains(&g);
    let mut options: Vec<BoxedStrategy<RowsOp>> = Vec::new();
    if has("rows") {
        options.push(
            proptest::collection::vec(write_strategy(), 1..4)
                .prop_map(RowsOp::Write)
                .boxed(),
        );
        options.push(
            (
                proptest::collection::vec(cond_strategy(), 0..3),
                proptest::collection::vec((0u8..5, any::<bool>()), 0..3),
                0u8..4,
                prop::option::of(1u8..4),
            )
                .prop_map(|(filter, order, offset, limit)| RowsOp::Select {
                    filter,
                    order,
                    offset,
                    limit,
                })
                .boxed(),
        );
        options.push(
            proptest::collection::vec(cond_strategy(), 0..3)
                .prop_map(RowsOp::Count)
                .boxed(),
        );
    }
    if has("folders") {
        options.push(
            (0u8..2, 0u8..5, prop::option::of(0u8..5), 0u8..4)
                .prop_map(|(u, f, parent, name)| RowsOp::CreateFolder { u, f, parent, name })
                .boxed(),
        );
        options.push(
            (0u8..2, 0u8..5, 0u8..4)
                .prop_map(|(u, f, name)| RowsOp::RenameFolder { u, f, name })
                .boxed(),
        );
        options.push(
            (0u8..2, 0u8..5, prop::option::of(0u8..5))
                .prop_map(|(u, f, parent)| RowsOp::MoveFolder { u, f, parent })
                .boxed(),
        );
        options.push(
            (0u8..2, 0u8..5, any::<bool>())
                .prop_map(|(u, f, detach)| RowsOp::DeleteFolder { u, f, detach })
                .boxed(),
        );
        options.push((0u8..2).prop_map(|u| RowsOp::ListFolders { u }).boxed());
    }
    if has("prompts") {
        options.push(
            (0u8..4, 0u8..2, 0u8..3, any::<bool>())
                .prop_map(|(p, u, command, public)| RowsOp::CreatePrompt {
                    p,
                    u,
                    command,
                    public,
                })
                .boxed(),
        );
        options.push(
            (0u8..4, prop::option::of(0u8..3), 0u8..3)
                .prop_map(|(p, command, content)| RowsOp::UpdatePrompt {
                    p,
                    command,
                    content,
                })
                .boxed(),
        );
        options.push((0u8..4).prop_map(|p| RowsOp::DeletePrompt { p }).boxed());
        options.push(
            (0u8..4, 0u8..2, any::<bool>())
                .prop_map(|(p, u, write)| RowsOp::GrantPrompt { p, u, write })
                .boxed(),
        );
        options.push(
            (prop::option::of(0u8..2), any::<bool>(), 0u8..3, 0u8..3)
                .prop_map(|(u, write, sort, offset)| RowsOp::SearchPrompts {
                    u,
                    write,
                    sort,
                    offset,
                })
                .boxed(),
        );
    }
    options
}

/// Folder ids match the folders the chat operations put chats in (`folder0`, `folder1`), and
/// both users use the same ones: Open WebUI keys a folder by `(id, user_id)`, so two users'
/// folders may share an id, and every backend must keep them apart.
fn folder(f: u8) -> String {
    format!("folder{f}")
}

fn memory_row(id: u8, u: u8, c: Option<u8>, ts: Option<u8>) -> Row {
    row([
        ("id", json!(format!("m{id}"))),
        ("user_id", json!(USERS[u as usize])),
        (
            "content",
            c.map_or(Value::Null, |c| json!(CONTENTS[c as usize])),
        ),
        ("type", json!("context")),
        (
            "created_at",
            ts.map_or(Value::Null, |t| json!(T0 + i64::from(t))),
        ),
    ])
}

fn cond(spec: &CondSpec) -> Cond {
    let cmp = |op: u8, column: &'static str, v: Value| match op {
        0 => Cond::Eq(column, v),
        1 => Cond::Ne(column, v),
        2 => Cond::Gt(column, v),
        3 => Cond::Ge(column, v),
        4 => Cond::Lt(column, v),
        _ => Cond::Le(column, v),
    };
    match spec {
        CondSpec::User { ne: false, u } => Cond::Eq("user_id", json!(USERS[*u as usize])),
        CondSpec::User { ne: true, u } => Cond::Ne("user_id", json!(USERS[*u as usize])),
        CondSpec::Content { op, c } => cmp(*op, "content", json!(CONTENTS[*c as usize])),
        CondSpec::Created { op, ts } => cmp(*op, "created_at", json!(T0 + i64::from(*ts))),
        CondSpec::InUsers(us) => Cond::In(
            "user_id",
            us.iter().map(|u| json!(USERS[*u as usize])).collect(),
        ),
        CondSpec::Null { column, not: false } => Cond::IsNull(COLUMNS[*column as usize]),
        CondSpec::Null { column, not: true } => Cond::NotNull(COLUMNS[*column as usize]),
        CondSpec::Contains(n) => Cond::ContainsCi("content", NEEDLES[*n as usize].to_owned()),
        CondSpec::Any(a, b) => Cond::Any(vec![vec![cond(a)], vec![cond(b)]]),
    }
}

fn write(spec: &WriteSpec) -> RowOp {
    match spec {
        WriteSpec::Insert { id, u, c, ts } => RowOp::Insert {
            table: &MEMORY,
            row: memory_row(*id, *u, *c, *ts),
        },
        WriteSpec::Upsert { id, u, c, ts } => RowOp::Upsert {
            table: &MEMORY,
            row: memory_row(*id, *u, *c, *ts),
        },
        WriteSpec::Update { filter, c, path } => {
            let mut set = Row::new();
            set.insert(
                "content".into(),
                c.map_or(Value::Null, |c| json!(CONTENTS[c as usize])),
            );
            if let Some(p) = path {
                set.insert("path".into(), json!(format!("p/{p}")));
            }
            RowOp::Update {
                table: &MEMORY,
                filter: vec![cond(filter)],
                set,
            }
        }
        WriteSpec::Delete { filter } => RowOp::Delete {
            table: &MEMORY,
            filter: vec![cond(filter)],
        },
    }
}

fn out<T: serde::Serialize>(result: chatstore_core::Result<T>) -> Outcome {
    match result {
        Ok(v) => Ok(serde_json::to_value(v).unwrap_or(Value::Null)),
        Err(e) => Err(e.kind()),
    }
}

/// Applies one row or model operation and describes its result (stable projections only).
pub async fn apply(store: &Store, op: &RowsOp) -> Outcome {
    let rows = match store.rows() {
        Ok(rows) => rows,
        Err(e) => return Err(e.kind()),
    };
    let ws = match store.workspace() {
        Ok(ws) => ws,
        Err(e) => return Err(e.kind()),
    };
    let user = |u: &u8| format!("u{u}");
    match op {
        RowsOp::Write(specs) => out(rows.write(specs.iter().map(write).collect()).await),
        RowsOp::Select {
            filter,
            order,
            offset,
            limit,
        } => {
            let mut query = RowQuery::filter(filter.iter().map(cond).collect())
                .page(u64::from(*offset), limit.map(u64::from));
            for (column, desc) in order {
                let dir = if *desc { Dir::Desc } else { Dir::Asc };
                query = query.order_by(COLUMNS[*column as usize], dir);
            }
            out(rows.select(&MEMORY, &query).await)
        }
        RowsOp::Count(filter) => {
            let filter: Vec<Cond> = filter.iter().map(cond).collect();
            out(rows.count(&MEMORY, &filter).await)
        }
        RowsOp::CreateFolder { u, f, parent, name } => out(ws
            .folders()
            .create(NewFolder {
                id: Some(folder(*f)),
                parent_id: parent.map(folder),
                created_at: Some(T0 + i64::from(*f)),
                ..NewFolder::new(user(u), FOLDER_NAMES[*name as usize])
            })
            .await),
        RowsOp::RenameFolder { u, f, name } => out(ws
            .folders()
            .update(
                &user(u),
                &folder(*f),
                FolderPatch {
                    name: Some(FOLDER_NAMES[*name as usize].into()),
                    ..FolderPatch::default()
                },
            )
            .await
            .map(|folder| (folder.id, folder.name, folder.parent_id))),
        RowsOp::MoveFolder { u, f, parent } => out(ws
            .folders()
            .update(
                &user(u),
                &folder(*f),
                FolderPatch {
                    parent_id: Some(parent.map(folder)),
                    ..FolderPatch::default()
                },
            )
            .await
            .map(|folder| (folder.id, folder.parent_id))),
        RowsOp::DeleteFolder { u, f, detach } => {
            let chats = if *detach {
                FolderChats::Detach
            } else {
                FolderChats::Delete
            };
            out(ws
                .folders()
                .delete(&user(u), &folder(*f), chats)
                .await
                .map(|mut ids| {
                    ids.sort();
                    ids
                }))
        }
        RowsOp::ListFolders { u } => out(ws.folders().list(&user(u)).await.map(|list| {
            let mut items: Vec<_> = list
                .into_iter()
                .map(|f| (f.id, f.name, f.parent_id))
                .collect();
            items.sort();
            items
        })),
        RowsOp::CreatePrompt {
            p,
            u,
            command,
            public,
        } => {
            let mut new = NewPrompt::new(
                user(u),
                format!("/cmd{command}"),
                format!("Prompt {p}"),
                "Say hello",
            );
            new.id = Some(format!("p{p}"));
            new.created_at = Some(T0 + i64::from(*p));
            if *public {
                new.access_grants = vec![Grant::public_read()];
            }
            out(ws
                .prompts()
                .create(new)
                .await
                .map(|p| (p.id, p.command, p.user_id)))
        }
        RowsOp::UpdatePrompt {
            p,
            command,
            content,
        } => {
            let prompts = ws.prompts();
            let id = format!("p{p}");
            let result = prompts
                .update(
                    &id,
                    "editor",
                    PromptPatch {
                        command: command.map(|c| format!("/cmd{c}")),
                        content: Some(format!("text {content}")),
                        ..PromptPatch::default()
                    },
                )
                .await;
            match result {
                Ok(prompt) => {
                    let versions = prompts.versions(&id, PageRequest::default()).await;
                    out(versions.map(|v| (prompt.command, prompt.content, v.total)))
                }
                Err(e) => Err(e.kind()),
            }
        }
        RowsOp::DeletePrompt { p } => out(ws.prompts().delete(&format!("p{p}")).await),
        RowsOp::GrantPrompt { p, u, write } => {
            let permission = if *write {
                Permission::Write
            } else {
                Permission::Read
            };
            out(ws
                .grants()
                .grant(
                    "prompt",
                    &format!("p{p}"),
                    &Grant::user(user(u), permission),
                )
                .await
                .map(|g| (g.resource_id, g.principal_id, g.permission)))
        }
        RowsOp::SearchPrompts {
            u,
            write,
            sort,
            offset,
        } => {
            let mut search = match u {
                Some(u) => Search::for_user(user(u)),
                None => Search::default(),
            };
            if *write {
                search = search.permission(Permission::Write);
            }
            // Updated times are "now" and differ between stores: sort by stable keys only.
            search = match sort {
                0 => search.sort(SortBy::Name, Dir::Asc),
                1 => search.sort(SortBy::CreatedAt, Dir::Desc),
                _ => search.sort(SortBy::Name, Dir::Desc),
            };
            search = search.page(PageRequest::new(u64::from(*offset), 2));
            out(ws.prompts().search(&search).await.map(|page| {
                (
                    page.total,
                    page.items.into_iter().map(|p| p.id).collect::<Vec<_>>(),
                )
            }))
        }
    }
}

/// What the row groups hold at the end: the `memory` table whole, the folders, prompts (ids,
/// commands, owners) and the number of versions and grants.
pub async fn snapshot(store: &Store, groups: &[&str]) -> Vec<(&'static str, Outcome)> {
    let has = |g: &str| groups.contains(&g);
    let mut list = Vec::new();
    let Ok(ws) = store.workspace() else {
        return list;
    };
    if has("rows") {
        list.push((
            "memory rows",
            out(ws.rows().select(&MEMORY, &RowQuery::default()).await),
        ));
    }
    if has("folders") {
        list.push((
            "folders",
            out(ws.folders().records().scan(None, 1000).await.map(|all| {
                all.into_iter()
                    .map(|f| (f.id, f.user_id, f.name, f.parent_id, f.is_expanded))
                    .collect::<Vec<_>>()
            })),
        ));
    }
    if has("prompts") {
        let prompts = ws.prompts();
        list.push((
            "prompts",
            out(prompts.records().scan(None, 1000).await.map(|all| {
                all.into_iter()
                    .map(|p| (p.id, p.command, p.user_id, p.content))
                    .collect::<Vec<_>>()
            })),
        ));
        list.push((
            "prompt versions",
            out(ws.rows().count(&PROMPT_HISTORY, &[]).await),
        ));
        list.push(("grants", out(ws.grants().records().count(vec![]).await)));
    }
    list
}
