//! Rows on Open WebUI's own tables ([`chatstore_core::rows`]), what is particular to SQL: values
//! of every column kind as both engines store them, rows Open WebUI wrote read back, conditions
//! and orders equal to the memory reference, pages under ties, atomic batches, conflicts,
//! foreign keys, and batches larger than one statement can bind. Each test runs on SQLite and,
//! when `CHATSTORE_TEST_POSTGRES_URL` is set, on PostgreSQL. The per-model contracts live in
//! chatstore-contract.

mod support;

use std::sync::Arc;

use chatstore_core::memory::MemoryRows;
use chatstore_core::models::{Channel, Note, Record, Records};
use chatstore_core::rows::tables::{
    CHANNEL, CHANNEL_MEMBER, FOLDER, GROUP, GROUP_MEMBER, KNOWLEDGE, KNOWLEDGE_FILE, MODEL, NOTE,
    PROMPT,
};
use chatstore_core::rows::{Cond, Dir, Row, RowOp, RowQuery, RowStore, Table, row};
use chatstore_core::{ErrorKind, Store};
use serde_json::{Value, json};
use support::{empty_databases, open_webui_databases};

fn obj(value: Value) -> Row {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// `row` with every column of `table` (missing ones null), as a select reads it back.
fn whole(table: &Table, partial: &Row) -> Row {
    table
        .columns
        .iter()
        .map(|c| {
            (
                c.name.to_owned(),
                partial.get(c.name).cloned().unwrap_or(Value::Null),
            )
        })
        .collect()
}

fn insert(table: &'static Table, value: Value) -> RowOp {
    RowOp::Insert {
        table,
        row: obj(value),
    }
}

fn upsert(table: &'static Table, value: Value) -> RowOp {
    RowOp::Upsert {
        table,
        row: obj(value),
    }
}

async fn rows_of(store: &Store) -> Arc<dyn RowStore> {
    store.rows().expect("SQL stores have rows")
}

async fn all(rows: &dyn RowStore, table: &'static Table) -> Vec<Row> {
    rows.select(table, &RowQuery::default())
        .await
        .expect("select every row")
}

/// Raw SQL for a user row (the parent of group members).
fn user_sql(id: &str) -> String {
    format!(
        "INSERT INTO \"user\" (id, name, email, role, profile_image_url, last_active_at, \
         updated_at, created_at) VALUES ('{id}', '{id}', '{id}@example.com', 'user', '', 1, 1, 1)"
    )
}

/// Every column kind is written and read back unchanged, JSON `null` included (stored as the
/// literal `null`, as Open WebUI stores Python's `None`).
#[tokio::test]
async fn every_column_kind_round_trips() {
    for db in empty_databases().await {
        let store = db.store().await;
        let rows = rows_of(&store).await;
        let member = json!({
            "id": "cm1", "channel_id": "ch1", "user_id": "u1", "created_at": 1_700_000_000_123_456_789i64,
            "status": "joined", "is_active": true, "is_channel_muted": false,
            "is_channel_pinned": true,
            "data": {"nested": {"list": [1, 2.5, "é", null, true]}, "empty": {}},
            "meta": null, "joined_at": i64::MAX, "left_at": null, "last_read_at": -5,
            "role": "admin", "app_id": null
        });
        let model = json!({
            "id": "m1", "user_id": "u1", "name": "Model \"quoted\" 'x'",
            "params": {"temperature": 0.5, "stop": ["\n"]}, "meta": null,
            "is_active": false, "created_at": 1, "updated_at": 2
        });
        let counts = rows
            .write(vec![
                insert(&CHANNEL_MEMBER, member.clone()),
                insert(&MODEL, model.clone()),
                insert(&NOTE, json!({"id": "n1", "data": 5, "meta": "text"})),
            ])
            .await
            .expect("insert one row of each kind");
        assert_eq!(counts, vec![1, 1, 1]);
        assert_eq!(
            all(&*rows, &CHANNEL_MEMBER).await,
            vec![whole(&CHANNEL_MEMBER, &obj(member))]
        );
        assert_eq!(all(&*rows, &MODEL).await, vec![whole(&MODEL, &obj(model))]);
        let note = &all(&*rows, &NOTE).await[0];
        assert_eq!((&note["data"], &note["meta"]), (&json!(5), &json!("text")));
        // Stored the way Open WebUI stores them.
        assert_eq!(
            db.text("SELECT CAST(meta AS TEXT) FROM channel_member")
                .await
                .as_deref(),
            Some("null")
        );
        assert_eq!(
            db.text("SELECT CAST(meta AS TEXT) FROM model")
                .await
                .as_deref(),
            Some("null")
        );
        assert_eq!(
            db.int("SELECT count(*) FROM channel_member WHERE is_channel_pinned AND NOT is_channel_muted")
                .await,
            1
        );
        drop(store);
        db.finish().await;
    }
}

/// Rows inserted with raw SQL exactly as Open WebUI 0.12.4 writes them read back as the right
/// values: JSON `null` and SQL `NULL` alike, booleans as `0`/`1`/`'1'`, JSON text with
/// Python's spaces, nanosecond timestamps as stored.
#[tokio::test]
async fn rows_open_webui_wrote_read_back() {
    for db in open_webui_databases().await {
        let (yes, no) = if db.is_postgres() {
            ("TRUE", "FALSE")
        } else {
            ("'1'", "0")
        };
        db.exec(&format!(
            r##"
            INSERT INTO folder (id, parent_id, user_id, name, items, meta, is_expanded, created_at,
                updated_at, data)
            VALUES ('f1', NULL, 'u1', 'Work', 'null', NULL, {no}, 1700000000, 1700000001,
                '{{"system_prompt":"Be brief"}}'),
                   ('f2', 'f1', 'u1', 'Sub', '{{"chats":[]}}', 'null', {yes}, 1700000002,
                1700000003, 'null');
            INSERT INTO model (id, user_id, base_model_id, name, params, meta, updated_at,
                created_at, is_active)
            VALUES ('gpt-x', 'u1', 'gpt-4o', 'X', '{{"temperature": 0.2, "seed": 42}}',
                '{{"profile_image_url": "/static/favicon.png", "description": null}}',
                1700000000, 1700000000, {yes});
            INSERT INTO note (id, user_id, title, data, meta, created_at, updated_at)
            VALUES ('n1', 'u1', 'Café', '{{"content":{{"md":"# hi"}}}}', 'null',
                1700000000123456789, 1700000000987654321);
            INSERT INTO channel (id, user_id, name, type, is_private, data, meta, created_at,
                updated_at)
            VALUES ('c1', 'u1', 'general', NULL, NULL, NULL, '{{}}', 1700000000000000000,
                1700000000000000001);
            "##
        ))
        .await;
        let store = db.store().await;
        let rows = rows_of(&store).await;
        let folders = rows
            .select(
                &FOLDER,
                &RowQuery::default().order_by("created_at", Dir::Asc),
            )
            .await
            .expect("folders");
        assert_eq!(
            folders,
            vec![
                obj(
                    json!({"id": "f1", "parent_id": null, "user_id": "u1", "name": "Work",
                    "items": null, "meta": null, "data": {"system_prompt": "Be brief"},
                    "is_expanded": false, "created_at": 1_700_000_000, "updated_at": 1_700_000_001})
                ),
                obj(
                    json!({"id": "f2", "parent_id": "f1", "user_id": "u1", "name": "Sub",
                    "items": {"chats": []}, "meta": null, "data": null, "is_expanded": true,
                    "created_at": 1_700_000_002, "updated_at": 1_700_000_003})
                ),
            ]
        );
        let models = all(&*rows, &MODEL).await;
        assert_eq!(models[0]["params"], json!({"temperature": 0.2, "seed": 42}));
        assert_eq!(models[0]["meta"]["description"], Value::Null);
        assert_eq!(models[0]["is_active"], json!(true));
        let notes = all(&*rows, &NOTE).await;
        assert_eq!(notes[0]["created_at"], json!(1_700_000_000_123_456_789i64));
        assert_eq!(notes[0]["meta"], Value::Null);
        let channels = all(&*rows, &CHANNEL).await;
        assert_eq!(channels[0]["is_private"], Value::Null);
        assert_eq!(channels[0]["meta"], json!({}));
        // JSON null and SQL NULL are both null to conditions.
        for (cond, expected) in [
            (Cond::IsNull("items"), vec!["f1"]),
            (Cond::IsNull("meta"), vec!["f1", "f2"]),
            (Cond::NotNull("data"), vec!["f1"]),
            (Cond::Eq("is_expanded", json!(true)), vec!["f2"]),
            (Cond::Ne("is_expanded", json!(true)), vec!["f1"]),
        ] {
            let found = ids(&*rows, &FOLDER, RowQuery::filter(vec![cond.clone()])).await;
            assert_eq!(found, expected, "{cond:?}");
        }
        drop(store);
        db.finish().await;
    }
}

async fn ids(rows: &dyn RowStore, table: &'static Table, query: RowQuery) -> Vec<String> {
    rows.select(table, &query)
        .await
        .unwrap_or_else(|e| panic!("{query:?}: {e}"))
        .iter()
        .map(|r| r["id"].as_str().expect("an id").to_owned())
        .collect()
}

/// Notes whose titles, owners and timestamps exercise every condition: `%`, `_`, quotes,
/// mixed case, non-ASCII letters, nulls and ties.
fn sample_notes() -> Vec<RowOp> {
    let titles: [Option<&str>; 12] = [
        Some("100% done"),
        Some("100 percent"),
        Some("snake_case"),
        Some("snakeXcase"),
        Some("It's \"quoted\""),
        Some("HELLO world"),
        Some("hello WORLD"),
        Some("Éclair"),
        Some("éclair"),
        None,
        Some(""),
        Some("back\\slash"),
    ];
    titles
        .iter()
        .enumerate()
        .map(|(i, title)| {
            upsert(
                &NOTE,
                json!({
                    "id": format!("n{:02}", 11 - i),
                    "user_id": if i % 3 == 0 { Value::Null } else { json!(format!("u{}", i % 3)) },
                    "title": title,
                    "data": if i % 2 == 0 { json!({"i": i}) } else { Value::Null },
                    "created_at": (i / 4) as i64,
                    "updated_at": if i % 5 == 0 { Value::Null } else { json!((i % 4) as i64) },
                }),
            )
        })
        .collect()
}

/// Every condition, order and page gives what the memory reference gives on the same rows.
#[tokio::test]
async fn conditions_orders_and_pages_match_the_memory_reference() {
    let reference = MemoryRows::new();
    reference
        .write(sample_notes())
        .await
        .expect("fill the reference");
    let filters: Vec<Vec<Cond>> = vec![
        vec![],
        vec![Cond::Eq("user_id", json!("u1"))],
        vec![Cond::Eq("user_id", Value::Null)],
        vec![Cond::Ne("user_id", json!("u1"))],
        vec![Cond::In(
            "user_id",
            vec![json!("u1"), json!("u2"), Value::Null],
        )],
        vec![Cond::In("id", vec![])],
        vec![Cond::In("created_at", vec![json!(0), json!(2)])],
        vec![Cond::IsNull("updated_at")],
        vec![Cond::NotNull("title")],
        vec![Cond::IsNull("data")],
        vec![Cond::Gt("updated_at", json!(1))],
        vec![
            Cond::Ge("updated_at", json!(1)),
            Cond::Lt("created_at", json!(2)),
        ],
        vec![Cond::Le("title", json!("hello"))],
        vec![Cond::Gt("id", json!("n05"))],
        vec![Cond::ContainsCi("title", "%".into())],
        vec![Cond::ContainsCi("title", "0%".into())],
        vec![Cond::ContainsCi("title", "_".into())],
        vec![Cond::ContainsCi("title", "e_c".into())],
        vec![Cond::ContainsCi("title", "it's \"QUOTED\"".into())],
        vec![Cond::ContainsCi("title", "hello world".into())],
        vec![Cond::ContainsCi("title", "ÉCLAIR".into())],
        vec![Cond::ContainsCi("title", "CLAIR".into())],
        vec![Cond::ContainsCi("title", "".into())],
        vec![Cond::ContainsCi("title", "\\".into())],
        vec![Cond::Any(vec![
            vec![Cond::Eq("user_id", json!("u2"))],
            vec![Cond::IsNull("updated_at"), Cond::NotNull("user_id")],
        ])],
        vec![Cond::Any(vec![vec![]])],
    ];
    let orders: Vec<Vec<(&'static str, Dir)>> = vec![
        vec![],
        vec![("updated_at", Dir::Desc)],
        vec![("updated_at", Dir::Asc)],
        vec![("user_id", Dir::Asc), ("created_at", Dir::Desc)],
        vec![("title", Dir::Asc)],
        vec![("title", Dir::Desc)],
    ];
    for db in empty_databases().await {
        let store = db.store().await;
        let rows = rows_of(&store).await;
        rows.write(sample_notes()).await.expect("fill the store");
        for filter in &filters {
            let expected = reference.count(&NOTE, filter).await.expect("count");
            let counted = rows.count(&NOTE, filter).await.expect("count");
            assert_eq!(counted, expected, "count {filter:?}");
            for order in &orders {
                for (offset, limit) in [(0, None), (0, Some(3)), (2, Some(4)), (5, None)] {
                    let query = RowQuery {
                        filter: filter.clone(),
                        order: order.clone(),
                        offset,
                        limit,
                    };
                    let want = reference.select(&NOTE, &query).await.expect("reference");
                    let got = rows
                        .select(&NOTE, &query)
                        .await
                        .unwrap_or_else(|e| panic!("{query:?}: {e}"));
                    assert_eq!(got, want, "{query:?} on {}", db.url);
                }
            }
        }
        drop(store);
        db.finish().await;
    }
}

/// Text conditions take user text literally: `%` and `_` are not wildcards, quotes and
/// backslashes are plain characters, and only ASCII letters fold.
#[tokio::test]
async fn contains_ci_takes_wildcards_and_quotes_literally() {
    for db in empty_databases().await {
        let store = db.store().await;
        let rows = rows_of(&store).await;
        rows.write(sample_notes()).await.expect("fill");
        for (needle, expected) in [
            ("%", vec!["n11"]),
            ("_", vec!["n09"]),
            ("e_c", vec!["n09"]),
            ("'S \"Q", vec!["n07"]),
            ("É", vec!["n04"]),
            ("\\S", vec!["n00"]),
            ("' OR 1=1 --", vec![]),
        ] {
            let query = RowQuery::filter(vec![Cond::ContainsCi("title", needle.into())]);
            assert_eq!(ids(&*rows, &NOTE, query).await, expected, "{needle:?}");
        }
        drop(store);
        db.finish().await;
    }
}

/// Paging through an order full of ties and nulls visits every row exactly once.
#[tokio::test]
async fn pages_under_ties_never_skip_or_repeat() {
    for db in empty_databases().await {
        let store = db.store().await;
        let rows = rows_of(&store).await;
        let ops = (0..37)
            .map(|i| {
                upsert(
                    &NOTE,
                    json!({"id": format!("k{}", (i * 7) % 37), "user_id": "u",
                        "updated_at": if i % 4 == 0 { Value::Null } else { json!(i % 3) }}),
                )
            })
            .collect();
        rows.write(ops).await.expect("fill");
        for dir in [Dir::Asc, Dir::Desc] {
            let mut seen = Vec::new();
            let mut offset = 0;
            loop {
                let query = RowQuery::filter(vec![Cond::Eq("user_id", json!("u"))])
                    .order_by("updated_at", dir)
                    .page(offset, Some(5));
                let page = ids(&*rows, &NOTE, query).await;
                if page.is_empty() {
                    break;
                }
                offset += page.len() as u64;
                seen.extend(page);
            }
            let whole = ids(
                &*rows,
                &NOTE,
                RowQuery::default().order_by("updated_at", dir),
            )
            .await;
            assert_eq!(seen, whole, "{dir:?}");
            let mut unique = seen.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), 37);
        }
        drop(store);
        db.finish().await;
    }
}

/// A batch is all or nothing: an op that fails undoes the inserts, upserts, updates and
/// deletes before it.
#[tokio::test]
async fn a_failing_batch_changes_nothing() {
    for db in empty_databases().await {
        let store = db.store().await;
        let rows = rows_of(&store).await;
        rows.write(vec![insert(
            &NOTE,
            json!({"id": "keep", "title": "before"}),
        )])
        .await
        .expect("seed");
        let err = rows
            .write(vec![
                insert(&NOTE, json!({"id": "a"})),
                upsert(&NOTE, json!({"id": "b"})),
                RowOp::Update {
                    table: &NOTE,
                    filter: vec![Cond::Eq("id", json!("keep"))],
                    set: row([("title", json!("after"))]),
                },
                RowOp::Delete {
                    table: &NOTE,
                    filter: vec![Cond::Eq("id", json!("keep"))],
                },
                insert(&NOTE, json!({"id": "keep"})),
                insert(&NOTE, json!({"id": "a"})),
            ])
            .await
            .expect_err("the duplicate id fails the batch");
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
        let left = all(&*rows, &NOTE).await;
        assert_eq!(left.len(), 1);
        assert_eq!(left[0]["title"], json!("before"));
        drop(store);
        db.finish().await;
    }
}

/// A taken primary key or unique value is a conflict, for inserts, upserts and updates; an
/// upsert of the same key replaces the row.
#[tokio::test]
async fn taken_keys_and_unique_values_are_conflicts() {
    for db in empty_databases().await {
        let store = db.store().await;
        let rows = rows_of(&store).await;
        db.exec(&user_sql("u1")).await;
        let prompt = |id: &str, command: &str| {
            json!({"id": id, "command": command, "user_id": "u1", "name": id, "content": "c",
                "is_active": true, "created_at": 1, "updated_at": 1})
        };
        rows.write(vec![
            insert(&PROMPT, prompt("p1", "/one")),
            insert(&PROMPT, prompt("p2", "/two")),
            insert(&GROUP, json!({"id": "g1", "name": "G"})),
            insert(
                &GROUP_MEMBER,
                json!({"id": "gm1", "group_id": "g1", "user_id": "u1"}),
            ),
        ])
        .await
        .expect("seed");
        let failing = [
            insert(&PROMPT, prompt("p1", "/other")),
            insert(&PROMPT, prompt("p3", "/one")),
            upsert(&PROMPT, prompt("p2", "/one")),
            RowOp::Update {
                table: &PROMPT,
                filter: vec![Cond::Eq("id", json!("p2"))],
                set: row([("command", json!("/one"))]),
            },
            insert(
                &GROUP_MEMBER,
                json!({"id": "gm2", "group_id": "g1", "user_id": "u1"}),
            ),
        ];
        for op in failing {
            let err = rows.write(vec![op.clone()]).await.expect_err("a taken key");
            assert_eq!(err.kind(), ErrorKind::Conflict, "{op:?}: {err}");
        }
        rows.write(vec![upsert(&PROMPT, prompt("p2", "/three"))])
            .await
            .expect("an upsert replaces its own row");
        let commands: Vec<Value> = rows
            .select(&PROMPT, &RowQuery::default())
            .await
            .expect("prompts")
            .into_iter()
            .map(|r| r["command"].clone())
            .collect();
        assert_eq!(commands, vec![json!("/one"), json!("/three")]);
        drop(store);
        db.finish().await;
    }
}

/// A row naming a parent that does not exist is refused as invalid input naming the table and
/// column, on both engines, and nothing of its batch is kept; deleting a parent deletes the
/// rows that name it, as Open WebUI's foreign keys say.
#[tokio::test]
async fn a_missing_parent_is_invalid_input_naming_the_column() {
    for db in empty_databases().await {
        let store = db.store().await;
        let rows = rows_of(&store).await;
        db.exec(&user_sql("u1")).await;
        db.exec("INSERT INTO file (id, user_id, filename, created_at, updated_at) VALUES ('f1', 'u1', 'a.txt', 1, 1)")
            .await;
        let link = |id: &str, file: &str| {
            json!({"id": id, "user_id": "u1", "knowledge_id": "k1", "file_id": file,
                "created_at": 1, "updated_at": 1})
        };
        let knowledge = json!({"id": "k1", "user_id": "u1", "name": "K", "created_at": 1});
        let err = rows
            .write(vec![
                insert(&KNOWLEDGE, knowledge.clone()),
                insert(&KNOWLEDGE_FILE, link("kf1", "f1")),
                insert(&KNOWLEDGE_FILE, link("kf2", "missing")),
            ])
            .await
            .expect_err("a missing file");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        let message = err.to_string();
        assert!(message.contains("knowledge_file.file_id"), "{message}");
        assert!(message.contains("missing"), "{message}");
        assert!(all(&*rows, &KNOWLEDGE).await.is_empty(), "rolled back");

        let err = rows
            .write(vec![
                insert(&GROUP, json!({"id": "g1"})),
                insert(
                    &GROUP_MEMBER,
                    json!({"id": "gm", "group_id": "g1", "user_id": "nobody"}),
                ),
            ])
            .await
            .expect_err("a missing user");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("group_member.user_id"), "{err}");

        let err = rows
            .write(vec![insert(
                &CHANNEL_MEMBER,
                json!({"id": "cm", "channel_id": "c", "user_id": null, "app_id": null,
                    "is_active": true, "is_channel_muted": false, "is_channel_pinned": false,
                    "joined_at": 1}),
            )])
            .await
            .expect_err("a member is a user or an app");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("channel_member"), "{err}");

        rows.write(vec![
            insert(&KNOWLEDGE, knowledge),
            insert(&KNOWLEDGE_FILE, link("kf1", "f1")),
        ])
        .await
        .expect("parents first");
        let deleted = rows
            .write(vec![RowOp::Delete {
                table: &KNOWLEDGE,
                filter: vec![Cond::Eq("id", json!("k1"))],
            }])
            .await
            .expect("delete the knowledge base");
        assert_eq!(deleted, vec![1]);
        assert!(all(&*rows, &KNOWLEDGE_FILE).await.is_empty(), "cascaded");
        drop(store);
        db.finish().await;
    }
}

/// Updates and deletes report the rows they changed; a batch of upserts larger than one
/// statement can bind is written whole, a key met twice keeping its last row.
#[tokio::test]
async fn large_batches_and_rows_affected() {
    const N: usize = 2_345;
    for db in empty_databases().await {
        let store = db.store().await;
        let rows = rows_of(&store).await;
        let member = |i: usize, status: &str| {
            upsert(
                &CHANNEL_MEMBER,
                json!({"id": format!("cm{i:05}"), "channel_id": "c", "user_id": format!("u{i}"),
                    "status": status, "is_active": i.is_multiple_of(2), "is_channel_muted": false,
                    "is_channel_pinned": false, "joined_at": i as i64, "data": {"i": i}}),
            )
        };
        let mut ops: Vec<RowOp> = (0..N).map(|i| member(i, "joined")).collect();
        ops.insert(1, member(3, "early"));
        ops.push(member(7, "last"));
        let counts = rows.write(ops).await.expect("a large batch");
        assert_eq!(counts.len(), N + 2);
        assert_eq!(
            rows.count(&CHANNEL_MEMBER, &[]).await.expect("count"),
            N as u64
        );
        let seventh = rows
            .select(
                &CHANNEL_MEMBER,
                &RowQuery::filter(vec![Cond::In(
                    "id",
                    vec![json!("cm00003"), json!("cm00007")],
                )]),
            )
            .await
            .expect("two rows");
        assert_eq!(seventh[0]["status"], json!("joined"));
        assert_eq!(seventh[1]["status"], json!("last"));
        let many: Vec<Value> = (0..N).step_by(2).map(|i| json!(format!("u{i}"))).collect();
        let changed = rows
            .write(vec![
                RowOp::Update {
                    table: &CHANNEL_MEMBER,
                    filter: vec![
                        Cond::In("user_id", many),
                        Cond::Eq("is_active", json!(true)),
                    ],
                    set: row([("status", json!("left")), ("left_at", json!(9))]),
                },
                RowOp::Delete {
                    table: &CHANNEL_MEMBER,
                    filter: vec![Cond::Lt("joined_at", json!(100))],
                },
                RowOp::Delete {
                    table: &CHANNEL_MEMBER,
                    filter: vec![Cond::Eq("id", json!("none"))],
                },
            ])
            .await
            .expect("update and delete");
        assert_eq!(changed, vec![(N as u64).div_ceil(2), 100, 0]);
        drop(store);
        db.finish().await;
    }
}

/// The adapter's list of foreign keys (used to name a missing parent) is the schema's.
#[tokio::test]
async fn foreign_key_list_is_the_schemas() {
    for db in open_webui_databases().await {
        let sql = if db.is_postgres() {
            "SELECT string_agg(line, ',' ORDER BY line) FROM (SELECT c.conrelid::regclass::text \
             || '.' || a.attname || '>' || c.confrelid::regclass::text AS line \
             FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid \
             AND a.attnum = c.conkey[1] WHERE c.contype = 'f') x"
        } else {
            "SELECT group_concat(line, ',') FROM (SELECT '\"' || m.name || '\"' || '.' || f.\"from\" \
             || '>' || '\"' || f.\"table\" || '\"' AS line FROM sqlite_master m, \
             pragma_foreign_key_list(m.name) f WHERE m.type = 'table' ORDER BY 1)"
        };
        let schema = db.text(sql).await.expect("foreign keys");
        let normal = |s: &str| s.replace('"', "");
        let tables: Vec<&str> = chatstore_core::rows::ALL_TABLES
            .iter()
            .map(|t| t.name)
            .collect();
        let mut from_schema: Vec<String> = schema
            .split(',')
            .map(normal)
            .filter(|l| tables.contains(&l.split('.').next().unwrap_or_default()))
            .collect();
        from_schema.sort();
        let mut ours: Vec<String> = chatstore_sql::rows::FOREIGN_KEYS
            .iter()
            .map(|k| format!("{}.{}>{}", k.table, k.column, k.parent))
            .collect();
        ours.sort();
        assert_eq!(ours, from_schema, "{}", db.url);
        db.finish().await;
    }
}

/// SQLite keeps a type per value: booleans written as text, JSON numbers kept as numbers and
/// integers written as whole reals read as their column's kind; a JSON column that does not
/// parse is a `Backend` error naming the table, column and row, never a panic.
#[tokio::test]
async fn odd_sqlite_values_read_as_their_kind_or_fail_clearly() {
    let db = support::sqlite_empty().await;
    let store = db.store().await;
    let rows = rows_of(&store).await;
    db.exec(
        "INSERT INTO channel (id, is_private, data, created_at) VALUES \
         ('c1', 'true', '12', 1700000000.0), ('c2', 'FALSE', '1.5', NULL), ('c3', 1, ' null ', 3)",
    )
    .await;
    let channels = all(&*rows, &CHANNEL).await;
    let seen: Vec<(Value, Value, Value)> = channels
        .iter()
        .map(|c| {
            (
                c["is_private"].clone(),
                c["data"].clone(),
                c["created_at"].clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (json!(true), json!(12), json!(1_700_000_000)),
            (json!(false), json!(1.5), Value::Null),
            (json!(true), Value::Null, json!(3)),
        ]
    );
    let nulls = ids(
        &*rows,
        &CHANNEL,
        RowQuery::filter(vec![Cond::IsNull("data")]),
    )
    .await;
    assert_eq!(nulls, vec!["c3"]);
    db.exec("INSERT INTO note (id, data) VALUES ('bad', '{not json')")
        .await;
    let err = rows
        .select(&NOTE, &RowQuery::default())
        .await
        .expect_err("a JSON column that does not parse");
    assert_eq!(err.kind(), ErrorKind::Backend);
    let message = err.to_string();
    assert!(
        message.contains("note.data") && message.contains("bad"),
        "{message}"
    );
    // Typed reads decode the same cells without a row map in between (JSON parsed into the
    // record): the same channels, and the same error for the note that does not parse.
    let typed = Records::<Channel>::new(rows.clone())
        .select(&RowQuery::default())
        .await
        .expect("typed channels");
    let from_rows = channels
        .into_iter()
        .map(Channel::from_row)
        .collect::<chatstore_core::Result<Vec<_>>>()
        .expect("channels from rows");
    assert_eq!(typed, from_rows);
    let err = Records::<Note>::new(rows.clone())
        .get("bad")
        .await
        .expect_err("a typed read of JSON that does not parse");
    assert_eq!(err.kind(), ErrorKind::Backend);
    let message = err.to_string();
    assert!(
        message.contains("note.data does not hold valid JSON") && message.contains("bad"),
        "{message}"
    );
    drop(store);
    db.finish().await;
}
