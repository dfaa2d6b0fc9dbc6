//! Rows (Open WebUI's remaining tables) on PocketBase: what this adapter adds to the row
//! contracts of chatstore-contract. Values of every kind come back exactly (nanosecond
//! integers beyond 2^53, text `""` apart from null, ids PocketBase would refuse), every
//! condition and order answers what the memory model answers (user text full of filter
//! syntax), pages never skip or repeat, and a write is all or nothing.

mod common;

use std::sync::Arc;

use chatstore_core::rows::tables::{CHANNEL, CHANNEL_MEMBER, FOLDER, KNOWLEDGE_DIRECTORY, PROMPT};
use chatstore_core::rows::{Cond, Dir, Row, RowOp, RowQuery, RowStore, Table, row};
use chatstore_core::{ErrorKind, memory};
use serde_json::{Value, json};

/// The PocketBase row store (behind the store's check) and the memory model's.
async fn stores() -> Option<(
    chatstore_pocketbase::PocketBase,
    Arc<dyn RowStore>,
    Arc<dyn RowStore>,
)> {
    let pb = common::backend().await?;
    let rows = pb.store().rows().expect("PocketBase stores have rows");
    let model = memory::store().rows().expect("the memory model has rows");
    Some((pb, rows, model))
}

const NASTY: [&str; 8] = [
    "x\" || id != \"",
    "50%_off",
    "a\\",
    "back\\\\slash\\\"q",
    "it's && ok",
    "%",
    "_",
    "Ünï AbC",
];

fn channel(i: usize) -> Row {
    let name = match i % 5 {
        0 => Value::Null,
        1 => json!(""),
        _ => json!(format!("{} {i}", NASTY[i % NASTY.len()])),
    };
    row([
        ("id", json!(format!("ch/{:02}.x:{}", i % 7, i))),
        (
            "user_id",
            if i.is_multiple_of(4) {
                Value::Null
            } else {
                json!(format!("u{}", i % 3))
            },
        ),
        ("name", name),
        ("description", json!(NASTY[(i + 3) % NASTY.len()])),
        (
            "data",
            if i.is_multiple_of(2) {
                Value::Null
            } else {
                json!({"n": i, "big": 1_764_000_000_123_456_789_i64})
            },
        ),
        ("meta", json!([i, "x", null, 1.5])),
        (
            "created_at",
            json!(1_764_000_000_123_456_789_i64 + (i % 4) as i64),
        ),
        (
            "updated_at",
            if i.is_multiple_of(3) {
                Value::Null
            } else {
                json!(-(i as i64) * 1_000_000_007)
            },
        ),
        ("type", json!(["group", "dm", "GROUP"][i % 3])),
        (
            "is_private",
            match i % 3 {
                0 => Value::Null,
                1 => json!(false),
                _ => json!(true),
            },
        ),
        ("archived_at", Value::Null),
        ("archived_by", Value::Null),
        ("deleted_at", Value::Null),
        ("deleted_by", Value::Null),
        ("updated_by", json!("")),
    ])
}

async fn fill(store: &Arc<dyn RowStore>, n: usize) {
    let ops = (0..n)
        .map(|i| RowOp::Insert {
            table: &CHANNEL,
            row: channel(i),
        })
        .collect();
    store.write(ops).await.expect("insert channels");
}

async fn same(
    pb: &Arc<dyn RowStore>,
    model: &Arc<dyn RowStore>,
    table: &'static Table,
    q: &RowQuery,
) {
    let got = pb
        .select(table, q)
        .await
        .unwrap_or_else(|e| panic!("{q:?}: {e}"));
    let want = model.select(table, q).await.expect("model select");
    assert_eq!(got, want, "{q:?}");
    let count = pb.count(table, &q.filter).await.expect("count");
    assert_eq!(
        count,
        model.count(table, &q.filter).await.expect("model count"),
        "count {q:?}"
    );
}

/// Every kind reads back exactly as written: i64 nanoseconds beyond 2^53, negative integers,
/// `""` apart from null for text and false apart from null for booleans, JSON of any shape,
/// and ids with characters PocketBase forbids in record ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_round_trips_exactly() {
    let Some((_pb, rows, _)) = stores().await else {
        return;
    };
    let written: Vec<Row> = (0..6).map(channel).collect();
    rows.write(
        written
            .iter()
            .cloned()
            .map(|row| RowOp::Insert {
                table: &CHANNEL,
                row,
            })
            .collect(),
    )
    .await
    .expect("insert");
    let read = rows
        .select(&CHANNEL, &RowQuery::default().order_by("id", Dir::Asc))
        .await
        .expect("select");
    let mut want = written.clone();
    want.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    assert_eq!(read, want);
    let exact = rows
        .select(
            &CHANNEL,
            &RowQuery::filter(vec![Cond::Eq(
                "created_at",
                json!(1_764_000_000_123_456_789_i64),
            )]),
        )
        .await
        .expect("by nanosecond");
    assert!(!exact.is_empty());
    assert!(
        exact
            .iter()
            .all(|r| r["created_at"] == json!(1_764_000_000_123_456_789_i64))
    );
}

/// Every condition, nulls and user text full of filter syntax included, selects and counts
/// exactly what the memory model does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_condition_answers_like_the_memory_model() {
    let Some((_pb, rows, model)) = stores().await else {
        return;
    };
    fill(&rows, 40).await;
    fill(&model, 40).await;
    let ns = 1_764_000_000_123_456_789_i64;
    let mut conds = vec![
        vec![Cond::Eq("name", Value::Null)],
        vec![Cond::Eq("name", json!(""))],
        vec![Cond::Ne("name", json!(""))],
        vec![Cond::Ne("name", Value::Null)],
        vec![Cond::Eq("is_private", json!(false))],
        vec![Cond::Ne("is_private", json!(false))],
        vec![Cond::Ne("is_private", json!(true))],
        vec![Cond::IsNull("is_private")],
        vec![Cond::Gt("is_private", json!(false))],
        vec![Cond::Le("is_private", json!(true))],
        vec![Cond::In("is_private", vec![json!(false), Value::Null])],
        vec![Cond::Ne("updated_by", json!(""))],
        vec![Cond::Eq("updated_by", json!(""))],
        vec![Cond::In(
            "id",
            vec![json!("ch/01.x:1"), json!("ch/02.x:9"), json!("nope")],
        )],
        vec![Cond::NotNull("updated_at")],
        vec![Cond::IsNull("data")],
        vec![Cond::NotNull("data")],
        vec![Cond::In(
            "user_id",
            vec![json!("u1"), Value::Null, json!("u2")],
        )],
        vec![Cond::In("user_id", vec![])],
        vec![Cond::Gt("created_at", json!(ns + 1))],
        vec![Cond::Ge("created_at", json!(ns + 1))],
        vec![Cond::Lt("updated_at", json!(-20_000_000_140_i64))],
        vec![Cond::Le("updated_at", json!(0))],
        vec![Cond::Lt("name", json!("b"))],
        vec![Cond::Ge("name", json!(""))],
        vec![Cond::Gt("id", json!("ch/03"))],
        vec![Cond::Eq("id", json!("ch/05.x:12"))],
        vec![Cond::ContainsCi("type", "group".into())],
        vec![Cond::ContainsCi("name", String::new())],
        vec![Cond::ContainsCi("id", "/01.X:".into())],
        vec![Cond::Any(vec![
            vec![Cond::Eq("type", json!("dm")), Cond::IsNull("user_id")],
            vec![Cond::ContainsCi("name", "ünï abc".into())],
        ])],
        vec![
            Cond::Eq("user_id", json!("u1")),
            Cond::NotNull("is_private"),
            Cond::Le("created_at", json!(ns + 2)),
        ],
    ];
    for text in NASTY {
        conds.push(vec![Cond::Eq("description", json!(text))]);
        conds.push(vec![Cond::Ne("description", json!(text))]);
        conds.push(vec![Cond::ContainsCi("name", text.to_owned())]);
        conds.push(vec![Cond::ContainsCi("description", text.to_uppercase())]);
        conds.push(vec![Cond::Lt("description", json!(text))]);
    }
    for filter in conds {
        same(&rows, &model, &CHANNEL, &RowQuery::filter(filter)).await;
    }
}

/// Orders put nulls first ascending and last descending, ties go by id, and pages of any
/// offset and limit neither skip nor repeat a row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_and_pages_match_the_memory_model() {
    let Some((_pb, rows, model)) = stores().await else {
        return;
    };
    fill(&rows, 30).await;
    fill(&model, 30).await;
    let orders: [&[(&'static str, Dir)]; 6] = [
        &[("name", Dir::Asc)],
        &[("name", Dir::Desc)],
        &[("updated_at", Dir::Asc)],
        &[("is_private", Dir::Desc), ("created_at", Dir::Asc)],
        &[("created_at", Dir::Desc)],
        &[("user_id", Dir::Asc), ("updated_at", Dir::Desc)],
    ];
    for order in orders {
        let q = RowQuery {
            order: order.to_vec(),
            ..RowQuery::default()
        };
        same(&rows, &model, &CHANNEL, &q).await;
        let mut paged = Vec::new();
        for start in (0..31).step_by(7) {
            let page = rows
                .select(&CHANNEL, &q.clone().page(start, Some(7)))
                .await
                .expect("page");
            paged.extend(page);
        }
        let all = model.select(&CHANNEL, &q).await.expect("model");
        assert_eq!(paged, all, "{order:?}");
        for (offset, limit) in [(3, Some(5)), (29, None), (31, Some(2)), (0, Some(0))] {
            same(&rows, &model, &CHANNEL, &q.clone().page(offset, limit)).await;
        }
    }
}

/// A write is all or nothing: a failing op (a taken key) undoes the ops before it; updates
/// and deletes count what they change, earlier ops of the same write included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_all_or_nothing_and_count_what_they_change() {
    let Some((_pb, rows, _)) = stores().await else {
        return;
    };
    fill(&rows, 3).await;
    let before = rows.count(&CHANNEL, &[]).await.expect("count");
    let err = rows
        .write(vec![
            RowOp::Insert {
                table: &CHANNEL,
                row: channel(10),
            },
            RowOp::Delete {
                table: &CHANNEL,
                filter: vec![Cond::Eq("id", channel(1)["id"].clone())],
            },
            RowOp::Insert {
                table: &CHANNEL,
                row: channel(2),
            },
        ])
        .await
        .expect_err("the last insert takes an existing id");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert_eq!(
        rows.count(&CHANNEL, &[]).await.expect("count"),
        before,
        "nothing changed"
    );

    let counts = rows
        .write(vec![
            RowOp::Insert {
                table: &CHANNEL,
                row: channel(10),
            },
            RowOp::Update {
                table: &CHANNEL,
                filter: vec![Cond::NotNull("created_at")],
                set: row([("name", json!("renamed")), ("is_private", Value::Null)]),
            },
            RowOp::Upsert {
                table: &CHANNEL,
                row: channel(0),
            },
            RowOp::Delete {
                table: &CHANNEL,
                filter: vec![Cond::Eq("name", json!("renamed"))],
            },
        ])
        .await
        .expect("write");
    assert_eq!(counts, vec![1, 4, 1, 3]);
    let left = rows
        .select(&CHANNEL, &RowQuery::default())
        .await
        .expect("select");
    assert_eq!(
        left,
        vec![channel(0)],
        "the upsert replaced the renamed row whole"
    );
}

/// Inserts conflict on a taken key and on a taken unique value, upserts on another row's
/// unique value; NULLs in a unique never clash (SQL), and `""` is not NULL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_uniques_conflict_but_nulls_never_clash() {
    let Some((_pb, rows, _)) = stores().await else {
        return;
    };
    let prompt = |id: &str, command: Value| {
        row([
            ("id", json!(id)),
            ("command", command),
            ("user_id", json!("u1")),
            ("name", json!("n")),
            ("content", json!("c")),
            ("data", Value::Null),
            ("meta", Value::Null),
            ("is_active", json!(true)),
            ("version_id", Value::Null),
            ("tags", json!([])),
            ("created_at", json!(1)),
            ("updated_at", json!(2)),
        ])
    };
    let insert = |row: Row| {
        vec![RowOp::Insert {
            table: &PROMPT,
            row,
        }]
    };
    rows.write(insert(prompt("p1", json!("/hi"))))
        .await
        .expect("first");
    for row in [prompt("p1", json!("/other")), prompt("p2", json!("/hi"))] {
        let err = rows.write(insert(row)).await.expect_err("taken");
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    }
    let err = rows
        .write(vec![RowOp::Upsert {
            table: &PROMPT,
            row: prompt("p9", json!("/hi")),
        }])
        .await
        .expect_err("another row's unique");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    for id in ["n1", "n2", "n3"] {
        rows.write(insert(prompt(id, Value::Null)))
            .await
            .expect("null commands never clash");
    }
    rows.write(insert(prompt("e1", json!(""))))
        .await
        .expect("one empty command");
    let err = rows
        .write(insert(prompt("e2", json!(""))))
        .await
        .expect_err("\"\" is a value");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    // Ids differing only in case are different rows (PocketBase compares record ids ignoring case).
    rows.write(insert(prompt("Case", json!("/a"))))
        .await
        .expect("Case");
    rows.write(insert(prompt("case", json!("/b"))))
        .await
        .expect("case");

    // Several nullable columns in one unique: a NULL parent never clashes.
    let dir = |id: &str, parent: Value| {
        row([
            ("id", json!(id)),
            ("knowledge_id", json!("k")),
            ("parent_id", parent),
            ("name", json!("docs")),
            ("user_id", json!("u1")),
            ("created_at", json!(1)),
            ("updated_at", json!(1)),
        ])
    };
    for (id, parent) in [
        ("d1", Value::Null),
        ("d2", Value::Null),
        ("d3", json!("d1")),
    ] {
        rows.write(vec![RowOp::Insert {
            table: &KNOWLEDGE_DIRECTORY,
            row: dir(id, parent),
        }])
        .await
        .expect("distinct or null parents");
    }
    let err = rows
        .write(vec![RowOp::Insert {
            table: &KNOWLEDGE_DIRECTORY,
            row: dir("d4", json!("d1")),
        }])
        .await
        .expect_err("same parent and name");
    assert_eq!(err.kind(), ErrorKind::Conflict);
}

/// An `In` of hundreds of values (beyond PocketBase's filter limits) is answered exactly, and
/// a write of more records than one batch takes is still one transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_in_lists_and_big_writes_work() {
    let Some((_pb, rows, model)) = stores().await else {
        return;
    };
    let member = |i: usize| {
        row([
            ("id", json!(format!("m{i:05}"))),
            ("channel_id", json!(format!("c{}", i % 3))),
            ("user_id", json!(format!("user-{i}"))),
            ("created_at", Value::Null),
            ("status", Value::Null),
            ("is_active", json!(true)),
            ("is_channel_muted", json!(false)),
            ("is_channel_pinned", json!(false)),
            (
                "data",
                json!({"i": i, "at": 1_764_000_000_123_456_789_i64, "f": 1.5}),
            ),
            (
                "meta",
                if i.is_multiple_of(2) {
                    json!("text")
                } else {
                    Value::Null
                },
            ),
            ("joined_at", json!(i)),
            ("left_at", Value::Null),
            ("last_read_at", Value::Null),
            ("updated_at", Value::Null),
            ("role", Value::Null),
            ("invited_by", Value::Null),
            ("invited_at", Value::Null),
            ("app_id", Value::Null),
        ])
    };
    let mut ops: Vec<RowOp> = (0..1001)
        .map(|i| RowOp::Insert {
            table: &CHANNEL_MEMBER,
            row: member(i),
        })
        .collect();
    ops.push(RowOp::Insert {
        table: &CHANNEL_MEMBER,
        row: member(7),
    });
    let err = rows
        .write(ops.clone())
        .await
        .expect_err("the last insert repeats an id");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert_eq!(
        rows.count(&CHANNEL_MEMBER, &[]).await.expect("count"),
        0,
        "nothing written"
    );
    ops.pop();
    rows.write(ops.clone())
        .await
        .expect("1001 inserts in one transaction");
    model.write(ops).await.expect("model");
    // More than one batch takes, through the tx route: updates and upserts too.
    let more = vec![
        RowOp::Update {
            table: &CHANNEL_MEMBER,
            filter: vec![Cond::NotNull("joined_at")],
            set: row([("data", json!([1, {"x": null}])), ("role", json!("admin"))]),
        },
        RowOp::Upsert {
            table: &CHANNEL_MEMBER,
            row: member(3),
        },
        RowOp::Upsert {
            table: &CHANNEL_MEMBER,
            row: member(5000),
        },
    ];
    assert_eq!(
        rows.write(more.clone())
            .await
            .expect("upserts and an update"),
        model.write(more).await.expect("model")
    );
    same(
        &rows,
        &model,
        &CHANNEL_MEMBER,
        &RowQuery::default().page(0, Some(40)),
    )
    .await;
    let admins = RowQuery::filter(vec![Cond::Eq("role", json!("admin"))]).page(900, Some(40));
    same(&rows, &model, &CHANNEL_MEMBER, &admins).await;
    let users: Vec<Value> = (0..1100)
        .step_by(3)
        .map(|i| json!(format!("user-{i}")))
        .collect();
    let q = RowQuery::filter(vec![
        Cond::In("user_id", users.clone()),
        Cond::Ne("channel_id", json!("c1")),
    ])
    .order_by("joined_at", Dir::Desc)
    .page(10, Some(50));
    same(&rows, &model, &CHANNEL_MEMBER, &q).await;
    let q = RowQuery::filter(vec![Cond::Any(
        users
            .iter()
            .map(|u| vec![Cond::Eq("user_id", u.clone())])
            .collect(),
    )])
    .order_by("joined_at", Dir::Asc)
    .page(0, Some(20));
    same(&rows, &model, &CHANNEL_MEMBER, &q).await;
}

/// Folders are keyed by (id, user_id) in Open WebUI; here by id (unique everywhere), and a
/// root folder's NULL parent is told apart from a parent `""`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folder_parents_tell_null_from_empty() {
    let Some((_pb, rows, _)) = stores().await else {
        return;
    };
    let folder = |id: &str, parent: Value| {
        let mut folder = user_folder(id, "u1", id);
        folder.insert("parent_id".to_owned(), parent);
        folder
    };
    rows.write(vec![
        RowOp::Insert {
            table: &FOLDER,
            row: folder("root", Value::Null),
        },
        RowOp::Insert {
            table: &FOLDER,
            row: folder("odd", json!("")),
        },
        RowOp::Insert {
            table: &FOLDER,
            row: folder("child", json!("root")),
        },
    ])
    .await
    .expect("folders");
    let roots = rows
        .select(
            &FOLDER,
            &RowQuery::filter(vec![
                Cond::Eq("user_id", json!("u1")),
                Cond::IsNull("parent_id"),
            ]),
        )
        .await
        .expect("roots");
    assert_eq!(roots, vec![folder("root", Value::Null)]);
}

/// Deletes racing over the same rows all succeed and delete each row once: a write whose
/// rows another writer deleted after it read them is planned again, not failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_deletes_each_remove_a_row_once() {
    let Some((_pb, rows, _)) = stores().await else {
        return;
    };
    fill(&rows, 24).await;
    let racers = (0..3).map(|_| {
        let rows = rows.clone();
        tokio::spawn(async move {
            rows.write(vec![
                RowOp::Update {
                    table: &CHANNEL,
                    filter: vec![Cond::NotNull("created_at")],
                    set: row([("description", json!("raced"))]),
                },
                RowOp::Delete {
                    table: &CHANNEL,
                    filter: vec![Cond::NotNull("created_at")],
                },
            ])
            .await
        })
    });
    let mut deleted = 0;
    for racer in racers {
        let counts = racer
            .await
            .expect("joins")
            .expect("a racing write succeeds");
        assert_eq!(counts[0], counts[1], "it updated what it then deleted");
        deleted += counts[1];
    }
    assert_eq!(deleted, 24, "every row deleted exactly once");
    assert_eq!(rows.count(&CHANNEL, &[]).await.expect("count"), 0);
}

fn user_folder(id: &str, user: &str, name: &str) -> Row {
    row([
        ("id", json!(id)),
        ("parent_id", Value::Null),
        ("user_id", json!(user)),
        ("name", json!(name)),
        ("items", Value::Null),
        ("meta", json!({})),
        ("data", Value::Null),
        ("is_expanded", json!(false)),
        ("created_at", json!(1_700_000_000)),
        ("updated_at", json!(1_700_000_000)),
    ])
}

/// Open WebUI keys a folder by `(id, user_id)`: two users' folders with one id are two rows,
/// read, updated and deleted apart, as in the memory model; the same key twice conflicts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_folders_may_share_an_id() {
    let Some((_pb, rows, model)) = stores().await else {
        return;
    };
    for store in [&rows, &model] {
        store
            .write(vec![
                RowOp::Insert {
                    table: &FOLDER,
                    row: user_folder("f.1", "u2", "theirs"),
                },
                RowOp::Insert {
                    table: &FOLDER,
                    row: user_folder("f.1", "u1", "mine"),
                },
            ])
            .await
            .expect("one id, two users");
        let err = store
            .write(vec![RowOp::Insert {
                table: &FOLDER,
                row: user_folder("f.1", "u1", "again"),
            }])
            .await
            .expect_err("the same key");
        assert_eq!(err.kind(), ErrorKind::Conflict);
        let set = row([("name", json!("renamed"))]);
        let filter = vec![
            Cond::Eq("id", json!("f.1")),
            Cond::Eq("user_id", json!("u2")),
        ];
        let counts = store
            .write(vec![RowOp::Update {
                table: &FOLDER,
                filter: filter.clone(),
                set,
            }])
            .await
            .expect("update one user's");
        assert_eq!(counts, vec![1]);
        store
            .write(vec![RowOp::Upsert {
                table: &FOLDER,
                row: user_folder("f.1", "u1", "upserted"),
            }])
            .await
            .expect("upsert one user's");
    }
    let all = RowQuery::filter(vec![Cond::Eq("id", json!("f.1"))]);
    let got = rows.select(&FOLDER, &all).await.expect("select");
    assert_eq!(got, model.select(&FOLDER, &all).await.expect("model"));
    assert_eq!(got.len(), 2);
    assert_eq!(got[0]["user_id"], "u1", "ties on id break on user_id");
    assert_eq!(got[0]["name"], "upserted");
    assert_eq!(got[1]["name"], "renamed");
    let mine = vec![
        Cond::Eq("id", json!("f.1")),
        Cond::Eq("user_id", json!("u1")),
    ];
    for store in [&rows, &model] {
        let counts = store
            .write(vec![RowOp::Delete {
                table: &FOLDER,
                filter: mine.clone(),
            }])
            .await
            .expect("delete one user's");
        assert_eq!(counts, vec![1]);
    }
    let got = rows.select(&FOLDER, &all).await.expect("select");
    assert_eq!(got, model.select(&FOLDER, &all).await.expect("model"));
    assert_eq!(got.len(), 1);
}

/// A folder an earlier version stored under its id alone (record id `old~2E1`) is stored under
/// its whole key (`old~2E1~~u1`) once the adapter starts again, and reads as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_stored_under_their_id_alone_are_rekeyed_at_start() {
    let Some(config) = common::config() else {
        return;
    };
    let first = chatstore_pocketbase::PocketBase::connect(config.clone())
        .await
        .expect("connect");
    let collection = chatstore_pocketbase::Collections::new(&config.collection_prefix)
        .expect("prefix")
        .rows(&FOLDER);
    let folder = user_folder("old.1", "u1", "kept");
    let mut body = chatstore_pocketbase::rows::codec::record_of(&FOLDER, &folder).expect("encodes");
    body["id"] = json!("old~2E1");
    let subject = chatstore_pocketbase::error::Subject::new("folder", "old.1");
    first
        .client()
        .create_record(&collection, &body, subject)
        .await
        .expect("an old-style record");
    let again = chatstore_pocketbase::PocketBase::connect(config)
        .await
        .expect("connect again");
    let client = again.client();
    assert!(
        client
            .find_record(&collection, "old~2E1", None, subject)
            .await
            .expect("read")
            .is_none(),
        "the old record is gone"
    );
    assert!(
        client
            .find_record(&collection, "old~2E1~~u1", None, subject)
            .await
            .expect("read")
            .is_some(),
        "the record is under its whole key"
    );
    let rows = again.store().rows().expect("rows");
    let read = rows
        .select(&FOLDER, &RowQuery::default())
        .await
        .expect("select");
    assert_eq!(read, vec![folder]);
    rows.write(vec![RowOp::Insert {
        table: &FOLDER,
        row: user_folder("old.1", "u2", "another user's"),
    }])
    .await
    .expect("the id is free for another user");
    drop(first);
}

/// A read of every match (a select without a limit, a write's targets) spans pages of 1,000
/// records; another writer deleting records before them meanwhile must not make it skip any
/// (read by page number, the next page started that many records later). Rows `a-…`, sorted
/// first, are deleted one by one while rows `b-…` are read whole again and again: every read
/// holds every `b` row, and a delete of every `b` row beside it leaves none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_of_every_match_skip_nothing_while_rows_before_them_go() {
    const DOOMED: usize = 600;
    const KEPT: usize = 2_100;
    let Some((_pb, rows, _)) = stores().await else {
        return;
    };
    let of = |prefix: &str, i: usize| {
        let mut r = channel(i);
        r.insert("id".into(), json!(format!("{prefix}-{i:05}")));
        r.insert("user_id".into(), json!("u1"));
        r
    };
    let all: Vec<Row> = (0..DOOMED)
        .map(|i| of("a", i))
        .chain((0..KEPT).map(|i| of("b", i)))
        .collect();
    for chunk in all.chunks(500) {
        let ops = chunk
            .iter()
            .map(|r| RowOp::Insert {
                table: &CHANNEL,
                row: r.clone(),
            })
            .collect();
        rows.write(ops).await.expect("insert channels");
    }
    let deleter = {
        let rows = rows.clone();
        tokio::spawn(async move {
            for i in 0..DOOMED {
                let id = json!(format!("a-{i:05}"));
                rows.write(vec![RowOp::Delete {
                    table: &CHANNEL,
                    filter: vec![Cond::Eq("id", id)],
                }])
                .await
                .expect("delete an a row");
            }
        })
    };
    let of_u1 = RowQuery::filter(vec![Cond::Eq("user_id", json!("u1"))]);
    let mut reads = 0;
    while !deleter.is_finished() {
        let got = rows.select(&CHANNEL, &of_u1).await.expect("select");
        let kept = got
            .iter()
            .filter(|r| r["id"].as_str().is_some_and(|id| id.starts_with("b-")))
            .count();
        assert_eq!(kept, KEPT, "read {reads} skipped rows");
        reads += 1;
    }
    deleter.await.expect("deleter");
    assert!(reads > 0);
    let gone = rows
        .write(vec![RowOp::Delete {
            table: &CHANNEL,
            filter: vec![Cond::Eq("user_id", json!("u1"))],
        }])
        .await
        .expect("delete every b row");
    assert_eq!(gone, vec![KEPT as u64]);
    assert_eq!(rows.count(&CHANNEL, &[]).await.expect("count"), 0);
}
