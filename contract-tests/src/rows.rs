//! Contracts of the [`RowStore`] under Open WebUI's remaining tables: whole rows, every
//! condition, ordering with nulls, pagination ties, conflicts, atomic writes, and the one check
//! that refuses bad column names and values. A store without rows fails these: rows are not
//! optional for an app-data backend.

use std::sync::Arc;

use chatstore_core::rows::tables::{MEMORY, MODEL, NOTE, PROMPT};
use chatstore_core::rows::{Cond, Dir, Row, RowOp, RowQuery, RowStore, Table, row};
use chatstore_core::{Result, Store};
use serde_json::{Value, json};

use crate::assert_kind;
use crate::fixtures::T0;

/// The store's row store; `Unsupported` (a failure) when it has none.
pub fn rows(store: &Store) -> Result<Arc<dyn RowStore>> {
    store.rows()
}

/// A `memory` row: id, owner, content, type, created/updated at `T0 + ts`.
pub fn memory_row(id: &str, user: &str, content: Option<&str>, ts: Option<i64>) -> Row {
    row([
        ("id", json!(id)),
        ("user_id", json!(user)),
        ("content", content.map_or(Value::Null, Value::from)),
        ("type", json!("context")),
        ("created_at", ts.map_or(Value::Null, |t| json!(T0 + t))),
        ("updated_at", ts.map_or(Value::Null, |t| json!(T0 + t))),
    ])
}

/// A `prompt` row with a command (unique) or none.
pub fn prompt_row(id: &str, command: Option<&str>) -> Row {
    row([
        ("id", json!(id)),
        ("command", command.map_or(Value::Null, Value::from)),
        ("user_id", json!("u1")),
        ("name", json!(format!("Prompt {id}"))),
        ("content", json!("Say hi")),
        ("is_active", json!(true)),
        ("created_at", json!(T0)),
        ("updated_at", json!(T0)),
    ])
}

async fn insert(rows: &Arc<dyn RowStore>, table: &'static Table, list: Vec<Row>) -> Result<()> {
    let ops = list
        .into_iter()
        .map(|row| RowOp::Insert { table, row })
        .collect();
    rows.write(ops).await?;
    Ok(())
}

async fn ids(
    rows: &Arc<dyn RowStore>,
    table: &'static Table,
    query: RowQuery,
) -> Result<Vec<String>> {
    Ok(rows
        .select(table, &query)
        .await?
        .into_iter()
        .map(|r| {
            r.get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        })
        .collect())
}

async fn memory_ids(rows: &Arc<dyn RowStore>, filter: Vec<Cond>) -> Result<Vec<String>> {
    ids(rows, &MEMORY, RowQuery::filter(filter)).await
}

/// Five memories with content `Alpha`, `alpha beta`, `ÉTÉ`, null, `100%_x` and times 3, 1, 2,
/// null, 1.
async fn five_memories(rows: &Arc<dyn RowStore>) -> Result<()> {
    insert(
        rows,
        &MEMORY,
        vec![
            memory_row("m1", "u1", Some("Alpha"), Some(3)),
            memory_row("m2", "u1", Some("alpha beta"), Some(1)),
            memory_row("m3", "u2", Some("ÉTÉ"), Some(2)),
            memory_row("m4", "u2", None, None),
            memory_row("m5", "u1", Some("100%_x"), Some(1)),
        ],
    )
    .await
}

/// An inserted row reads back whole: every column of the table, missing nullable ones null.
pub async fn inserted_rows_read_back_whole(store: &Store) -> Result<()> {
    let rows = rows(store)?;
    insert(
        &rows,
        &MEMORY,
        vec![memory_row("m1", "u1", Some("hi"), Some(1))],
    )
    .await?;
    let got = rows.select(&MEMORY, &RowQuery::default()).await?;
    assert_eq!(got.len(), 1);
    let got = &got[0];
    for column in MEMORY.columns {
        assert!(
            got.contains_key(column.name),
            "column {} is missing",
            column.name
        );
    }
    assert_eq!(got["content"], json!("hi"));
    assert_eq!(got["created_at"], json!(T0 + 1));
    assert_eq!(got["path"], Value::Null);
    assert_eq!(got["meta"], Value::Null);
    Ok(())
}

/// Values of every kind round-trip: text (Unicode), integers (nanoseconds), booleans, JSON of
/// any shape in JSON and JSON-in-text columns.
pub async fn values_of_every_kind_round_trip(store: &Store) -> Result<()> {
    let rows = rows(store)?;
    let ns = 1_735_689_600_123_456_789_i64;
    let note = row([
        ("id", json!("n1")),
        ("user_id", json!("u1")),
        ("title", json!("Ünïcødé ✓ \"quoted\" 'x' \\ 100%")),
        (
            "data",
            json!({"content": {"md": "# hi", "html": "<h1>hi</h1>"}, "n": [1, 2.5, null]}),
        ),
        ("meta", json!(["a", {"b": false}])),
        ("created_at", json!(ns)),
        ("updated_at", json!(ns + 1)),
    ]);
    insert(&rows, &NOTE, vec![note.clone()]).await?;
    let model = row([
        ("id", json!("llama3.1:8b")),
        ("user_id", json!("u1")),
        ("base_model_id", Value::Null),
        ("name", json!("Llama")),
        ("params", json!({"temperature": 0.5, "stop": ["</s>"]})),
        ("meta", json!("just text")),
        ("is_active", json!(false)),
        ("created_at", json!(T0)),
        ("updated_at", json!(T0)),
    ]);
    insert(&rows, &MODEL, vec![model.clone()]).await?;
    let got = rows.select(&NOTE, &RowQuery::default()).await?;
    for (k, v) in &note {
        assert_eq!(&got[0][k], v, "note.{k}");
    }
    let got = rows.select(&MODEL, &RowQuery::default()).await?;
    for (k, v) in &model {
        assert_eq!(&got[0][k], v, "model.{k}");
    }
    Ok(())
}

/// Inserting a row whose primary key is taken is a `Conflict` and changes nothing.
pub async fn inserting_a_taken_key_is_a_conflict(store: &Store) -> Result<()> {
    let rows = rows(store)?;
    insert(
        &rows,
        &MEMORY,
        vec![memory_row("m1", "u1", Some("first"), Some(1))],
    )
    .await?;
    assert_kind!(
        insert(
            &rows,
            &MEMORY,
            vec![memory_row("m1", "u2", Some("second"), Some(2))]
        )
        .await,
        Conflict
    );
    let got = rows.select(&MEMORY, &RowQuery::default()).await?;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["content"], json!("first"));
    Ok(())
}

/// Inserting a row whose unique value is taken is a `Conflict`; nulls in a unique column never
/// clash.
pub async fn unique_values_clash_but_nulls_do_not(store: &Store) -> Result<()> {
    let rows = rows(store)?;
    insert(&rows, &PROMPT, vec![prompt_row("p1", Some("/hi"))]).await?;
    assert_kind!(
        insert(&rows, &PROMPT, vec![prompt_row("p2", Some("/hi"))]).await,
        Conflict
    );
    insert(
        &rows,
        &PROMPT,
        vec![prompt_row("p3", None), prompt_row("p4", None)],
    )
    .await?;
    assert_eq!(rows.count(&PROMPT, &[]).await?, 3);
    Ok(())
}

/// An upsert replaces the whole row with the same key (columns it leaves out become null) and
/// inserts a new one otherwise.
pub async fn upsert_replaces_the_whole_row(store: &Store) -> Result<()> {
    let rows = rows(store)?;
    let mut first = memory_row("m1", "u1", Some("first"), Some(1));
    first.insert("path".into(), json!("a/b"));
    insert(&rows, &MEMORY, vec![first]).await?;
    let counts = rows
        .write(vec![
            RowOp::Upsert {
                table: &MEMORY,
                row: memory_row("m1", "u1", Some("second"), Some(2)),
            },
            RowOp::Upsert {
                table: &MEMORY,
                row: memory_row("m2", "u1", Some("new"), Some(3)),
            },
        ])
        .await?;
    assert_eq!(counts, vec![1, 1]);
    let got = rows
        .select(&MEMORY, &RowQuery::default().order_by("id", Dir::Asc))
        .await?;
    assert_eq!(got.len(), 2);
    assert_eq!(got[0]["content"], json!("second"));
    assert_eq!(got[0]["path"], Value::Null);
    assert_eq!(got[1]["content"], json!("new"));
    Ok(())
}

/// An upsert taking another row's unique value is a `Conflict` and changes nothing.
pub async fn upsert_onto_another_rows_unique_is_a_conflict(store: &Store) -> Result<()> {
    let rows = rows(store)?;
    insert(
        &rows,
        &PROMPT,
        vec![prompt_row("p1", Some("/a")), prompt_row("p2", Some("/b"))],
    )
    .await?;
    assert_kind!(
        rows.write(vec![RowOp::Upsert {
            table: &PROMPT,
            row: prompt_row("p2", Some("/a")),
        }])
        .await,
        Conflict
    );
    let got = rows
        .select(
            &PROMPT,
            &RowQuery::filter(vec![Cond::Eq("id", json!("p2"))]),
        )
        .await?;
    assert_eq!(got[0]["command"], json!("/b"));
    Ok(())
}

/// An update sets the given columns on every matching row, leaves the others, and counts them.
pub async fn update_sets_columns_on_matching_rows(store: &Store) -> Result<()> {
    let rows = rows(store)?;
    five_memories(&rows).await?;
    let counts = rows
        .write(vec![RowOp::Update {
            table: &MEMORY,
            filter: vec![Cond::Eq("user_id", json!("u1"))],
            set: row([("path", json!("p")), ("meta", json!({"k": 1}))]),
        }])
        .await?;
    assert_eq!(counts, vec![3]);
    let got = rows
        .select(
            &MEMORY,
            &RowQuery::filter(vec![Cond::Eq("path", json!("p"))]),
        )
        .await?;
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|r| r["meta"] == json!({"k": 1})));
    assert_eq!(got[0]["content"], json!("Alpha"));
    assert_eq!(
        memory_ids(&rows, vec![Cond::IsNull("path")]).await?,
        vec!["m3", "m4"]
    );
    Ok(())
}

/// An update giving a row another row's unique value is a `Conflict` and changes nothing.
pub async fn update_to_a_taken_unique_is_a_conflict(store: &Store) -> Result<()> {
    let rows = rows(store)?;
    insert(
        &rows,
        &PROMPT,
        vec![prompt_row("p1", Some("/a")), prompt_row("p2", Some("/b"))],
    )
    .await?;
    assert_kind!(
        rows.write(vec![RowOp::Update {
            table: &PROMPT,
            filter: vec![Cond::Eq("id", json!("p2"))],
            set: row([("command", json!("/a"))]),
        }])
        .await,
        Conflict
    );
    assert_eq!(
        rows.count(&PROMPT, &[Cond::Eq("command", json!("/b"))])
            .await?,
        1
    );
    Ok(())
}

/// A delete removes every matching row and counts them; a delete matching nothing counts 0.
pub async fn delete_removes_matching_rows(store: &Store) -> Result<()> {
    let rows = rows(store)?;
    five_memories(&rows).await?;
    let counts = rows
        .write(vec![
            RowOp::Delete {
                table: &MEMORY,
                filter: vec![Cond::Eq("user_id", json!("u2"))],
            },
            RowOp::Delete {
                table: &MEMORY,
                filter: vec![Cond::Eq("user_id", json!("nobody"))],
            },
        ])
        .await?;
    assert_eq!(counts, vec![2, 0]);
    assert_eq!(memory_ids(&rows, vec![]).await?, vec!["m1", "m2", "m5"]);
    Ok(())
}

/// A batch of writes is all or nothing: when one op fails, the ops before it are undone.
pub async fn a_failing_batch_changes_nothing(store: &Store) -> Result<()> {
    let rows = rows(store)?;
    insert(&rows, &PROMPT, vec![prompt_row("p1", Some("/a"))]).await?;
    insert(
        &rows,
        &MEMORY,
        vec![memory_row("m1", "u1", Some("keep"), Some(1))],
    )
    .await?;
    let batch = vec![
        RowOp::Insert {
            table: &MEMORY,
            row: memory_row("m2", "u1", Some("new"), Some(2)),
        },
        RowOp::Update {
            table: &MEMORY,
            filter: vec![Cond::Eq("id", json!("m1"))],
            set: row([("content", json!("changed"))]),
        },
        RowOp::Delete {
            table: &PROMPT,
            filter: vec![Cond::Eq("id", json!("p1"))],
        },
        RowOp::Insert {
            table: &MEMORY,
            row: memory_row("m1", "u1", Some("clash"), Some(3)),
        },
    ];
    assert_kind!(rows.write(batch).await, Conflict);
    assert_eq!(memory_ids(&rows, vec![]).await?, vec!["m1"]);
    let got = rows.select(&MEMORY, &RowQuery::default()).await?;
    assert_eq!(got[0]["content"], json!("keep"));
    assert_eq!(rows.count(&PROMPT, &[]).await?, 1);
    Ok(())
}

/// `Eq` matches equal values (`null` matches null); `Ne` matches different values and nulls.
pub async fn eq_and_ne_treat_null_as_a_value(store: &Store) -> Result<()> {
    let rows = rows(store)?;
    five_memories(&rows).await?;
    assert_eq!(
        memory_ids(&rows, vec![Cond::Eq("content", json!("Alpha"))]).await?,
        vec!["m1"]
    );
    assert!(
        memory_ids(&rows, vec![Cond::Eq("content", json!("alpha"))])
            .await?
            .is_empty(),
        "Eq is case-sensitive"
    );
    assert_eq!(
        memory_ids(&rows, vec![Cond::Eq("content", Value::Null)]).await?,
        vec!["m4"]
    );
    assert_eq!(
        memory_ids(&rows, vec![Cond::Ne("content", json!("Alpha"))]).await?,
        vec!["m2", "m3", "m4", "m5"]
    );
    assert_eq!(
        memory_ids(&rows, vec![Cond::Ne("content", Value::Null)]).await?,
        vec!["m1", "m2", "m3", "m5"]
    );
    Ok(())
}

/// `In` matches any listed value, never null, and an empty list matches nothing.
pub async fn in_matches_listed_values(store: &Store) -> Result<()> {
    let rows = rows(store)?;
    five_memories(&rows).await?;
    assert_eq!(
        memory_ids(
            &rows,
            vec![Cond::In("id", vec![json!("m5"), json!("m1"), json!("zz")])]
        )
        .await?,
        vec!["m1", "m5"]
    );
    assert!(
        memory_ids(&rows, vec![Cond::In("id", vec![])])
            .await?
            .is_empty()
    );
    assert_eq!(
        memory_ids(
            &rows,
            vec![Cond::In("created_at", vec![json!(T0 + 1), json!(T0 + 3)])]
        )
        .await?,
        vec!["m1", "m2", "m5"]
    );
    Ok(())
}

/// `IsNull` / `NotNull` split rows by whether the column is null.
pub async fn null_checks_split_rows(store: &Store) -> Result<()> {
    let rows = rows(store)?;
    five_memories(&rows).await?;
    assert_eq!(
        memory_ids(&rows, vec![Cond::IsNull("created_at")]).await?,
        vec!["m4"]
    );
    assert_eq!(
        memory_ids(&rows, vec![Cond::NotNull("content")]).await?,
        vec!["m1", "m2", "m3", "m5"]
    );
    assert_eq!(
        memory_ids(&rows, vec![Cond::IsNull("meta")]).await?.len(),
        5
    );
    Ok(())
}

/// Range conditions compare integers numerically and text by bytes, and never match null.
pub async fn ranges_compare_numbers_and_text_bytes(store: &Store) -> Result<()> {
    let rows = rows(store)?;
    five_memories(&rows).await?;
    assert_eq!(
        memory_ids(&rows, vec![Cond::Gt("created_at", json!(T0 + 1))]).await?,
        vec!["m1", "m3"]
    );
    assert_eq!(
        memory_ids(&rows, vec![Cond::Ge("created_at", json!(T0 + 2))]).await?,
        vec!["m1", "m3"]
    );
    assert_eq!(
        memory_ids(&rows, vec![Cond::Lt("created_at", json!(T0 + 2))]).await?,
        vec!["m2", "m5"]
    );
    assert_eq!(
        memory_ids(&rows, vec![Cond::Le("created_at", json!(T0 + 2))]).await?,
        vec!["m2", "m3", "m5"]
    );
    // Bytes: '1' < 'A' < 'a' < 'É' (UTF-8 0xC3).
    assert_eq!(
        memory_ids(&rows, vec![Cond::Gt("content", json!("a"))]).await?,
        vec!["m2", "m3"]
    );
    assert_eq!(
        memory_ids(&rows, vec![Cond::Lt("content", json!("B"))]).await?,
        vec!["m1", "m5"]
    );
    Ok(())
}

/// `ContainsCi` finds text anywhere ignoring ASCII case only, and treats `%` and `_` literally.
pub async fn contains_ci_ignores_ascii_case_only(store: &Store) -> Result<()> {
    let rows = rows(store)?;
    five_memories(&rows).await?;
    assert_eq!(
        memory_ids(&rows, vec![Cond::ContainsCi("content", "ALPHA".into())]).await?,
        vec!["m1", "m2"]
    );
    assert_eq!(
        memory_ids(&rows, vec![Cond::ContainsCi("content", "ÉTÉ".into())]).await?,
        vec!["m3"]
    );
    assert!(
        memory_ids(&rows, vec![Cond::ContainsCi("content", "été".into())])
            .await?
            .is_empty(),
        "non-ASCII letters must match exactly"
    );
    assert_eq!(
        memory_ids(&rows, vec![Cond::ContainsCi("content", "%_".into())]).await?,
        vec!["m5"]
    );
    assert!(
        memory_ids(&rows, vec![Cond::ContainsCi("content", "a_b".into())])
            .await?
            .is_empty(),
        "_ is not a wildcard"
    );
    assert_eq!(
        memory_ids(&rows, vec![Cond::ContainsCi("content", String::new())]).await?,
        vec!["m1", "m2", "m3", "m5"]
    );
    Ok(())
}

/// `Any` is an OR of AND-lists, combined with the other conditions by AND.
pub async fn any_is_an_or_of_ands(store: &Store) -> Result<()> {
    let rows = rows(store)?;
    five_memories(&rows).await?;
    let filter = vec![
        Cond::Any(vec![
            vec![
                Cond::Eq("user_id", json!("u1")),
                Cond::Eq("created_at", json!(T0 + 1)),
            ],
            vec![Cond::IsNull("content")],
        ]),
        Cond::Ne("id", json!("m5")),
    ];
    assert_eq!(memory_ids(&rows, filter.clone()).await?, vec!["m2", "m4"]);
    assert_eq!(rows.count(&MEMORY, &filter).await?, 2);
    Ok(())
}

/// Nulls sort first ascending and last descending; ties break on the primary key ascending.
pub async fn order_puts_nulls_first_ascending_and_breaks_ties_by_key(store: &Store) -> Result<()> {
    let rows = rows(store)?;
    five_memories(&rows).await?;
    let asc = RowQuery::default().order_by("created_at", Dir::Asc);
    assert_eq!(
        ids(&rows, &MEMORY, asc).await?,
        vec!["m4", "m2", "m5", "m3", "m1"]
    );
    let desc = RowQuery::default().order_by("created_at", Dir::Desc);
    assert_eq!(
        ids(&rows, &MEMORY, desc).await?,
        vec!["m1", "m3", "m2", "m5", "m4"]
    );
    let two_keys = RowQuery::default()
        .order_by("user_id", Dir::Desc)
        .order_by("content", Dir::Asc);
    assert_eq!(
        ids(&rows, &MEMORY, two_keys).await?,
        vec!["m4", "m3", "m5", "m1", "m2"]
    );
    let by_key = RowQuery::default();
    assert_eq!(
        ids(&rows, &MEMORY, by_key).await?,
        vec!["m1", "m2", "m3", "m4", "m5"]
    );
    Ok(())
}

/// Offset pages of a sorted select with ties never skip or repeat a row.
pub async fn pages_over_ties_neither_skip_nor_repeat(store: &Store) -> Result<()> {
    let rows = rows(store)?;
    let list = (0..7)
        .map(|i| memory_row(&format!("m{i}"), "u1", Some("same"), Some(i % 2)))
        .collect();
    insert(&rows, &MEMORY, list).await?;
    let mut seen = Vec::new();
    for offset in (0..8).step_by(3) {
        let page = RowQuery::default()
            .order_by("created_at", Dir::Desc)
            .page(offset, Some(3));
        seen.extend(ids(&rows, &MEMORY, page).await?);
    }
    assert_eq!(seen, vec!["m1", "m3", "m5", "m0", "m2", "m4", "m6"]);
    let past_the_end = RowQuery::default().page(10, Some(3));
    assert!(ids(&rows, &MEMORY, past_the_end).await?.is_empty());
    let unlimited = RowQuery::default().page(5, None);
    assert_eq!(ids(&rows, &MEMORY, unlimited).await?, vec!["m5", "m6"]);
    Ok(())
}

/// Unknown tables' columns are refused with `InvalidInput`, in selects, counts and every write,
/// and nothing changes.
pub async fn unknown_columns_are_refused(store: &Store) -> Result<()> {
    let rows = rows(store)?;
    five_memories(&rows).await?;
    assert_kind!(
        rows.select(&MEMORY, &RowQuery::filter(vec![Cond::Eq("nope", json!(1))]))
            .await,
        InvalidInput
    );
    assert_kind!(
        rows.select(&MEMORY, &RowQuery::default().order_by("nope", Dir::Asc))
            .await,
        InvalidInput
    );
    assert_kind!(
        rows.count(&MEMORY, &[Cond::IsNull("nope")]).await,
        InvalidInput
    );
    let mut extra = memory_row("m9", "u1", Some("x"), Some(1));
    extra.insert("nope".into(), json!(1));
    assert_kind!(insert(&rows, &MEMORY, vec![extra]).await, InvalidInput);
    assert_kind!(
        rows.write(vec![RowOp::Update {
            table: &MEMORY,
            filter: vec![Cond::Eq("id", json!("m1"))],
            set: row([("nope", json!(1))]),
        }])
        .await,
        InvalidInput
    );
    assert_eq!(rows.count(&MEMORY, &[]).await?, 5);
    Ok(())
}

/// Values of the wrong kind, nulls in required columns, missing required columns and NUL in
/// text are refused with `InvalidInput`, and nothing changes.
pub async fn values_that_do_not_fit_are_refused(store: &Store) -> Result<()> {
    let rows = rows(store)?;
    let mut bad = Vec::new();
    let mut wrong_kind = memory_row("m1", "u1", Some("x"), Some(1));
    wrong_kind.insert("created_at".into(), json!("yesterday"));
    bad.push(wrong_kind);
    let mut float = memory_row("m1", "u1", Some("x"), Some(1));
    float.insert("created_at".into(), json!(1.5));
    bad.push(float);
    let mut null_required = memory_row("m1", "u1", Some("x"), Some(1));
    null_required.insert("type".into(), Value::Null);
    bad.push(null_required);
    let mut missing = memory_row("m1", "u1", Some("x"), Some(1));
    missing.remove("type");
    bad.push(missing);
    bad.push(memory_row("m1", "u1", Some("nul\0byte"), Some(1)));
    for row in bad {
        let shown = format!("{row:?}");
        match insert(&rows, &MEMORY, vec![row]).await {
            Err(e) if e.kind() == chatstore_core::ErrorKind::InvalidInput => {}
            other => panic!("{shown} should be InvalidInput, got {other:?}"),
        }
    }
    assert_kind!(
        rows.write(vec![RowOp::Update {
            table: &PROMPT,
            filter: vec![Cond::Eq("id", json!("p1"))],
            set: row([("is_active", json!(1))]),
        }])
        .await,
        InvalidInput
    );
    assert_eq!(rows.count(&MEMORY, &[]).await?, 0);
    Ok(())
}

/// Conditions that cannot apply are refused: comparing or sorting JSON columns, a range
/// against null, `ContainsCi` on a non-text column, an empty `Any`, a value of the wrong kind.
pub async fn conditions_that_cannot_apply_are_refused(store: &Store) -> Result<()> {
    let rows = rows(store)?;
    let bad: Vec<RowQuery> = vec![
        RowQuery::filter(vec![Cond::Eq("meta", json!({"a": 1}))]),
        RowQuery::default().order_by("meta", Dir::Asc),
        RowQuery::filter(vec![Cond::Gt("created_at", Value::Null)]),
        RowQuery::filter(vec![Cond::ContainsCi("created_at", "1".into())]),
        RowQuery::filter(vec![Cond::Any(vec![])]),
        RowQuery::filter(vec![Cond::Eq("created_at", json!("soon"))]),
    ];
    for query in bad {
        let shown = format!("{query:?}");
        match rows.select(&MEMORY, &query).await {
            Err(e) if e.kind() == chatstore_core::ErrorKind::InvalidInput => {}
            other => panic!("{shown} should be InvalidInput, got {other:?}"),
        }
    }
    Ok(())
}

/// Updates and deletes without a filter, updates setting nothing or a key column, are refused.
pub async fn unfiltered_or_key_changing_writes_are_refused(store: &Store) -> Result<()> {
    let rows = rows(store)?;
    five_memories(&rows).await?;
    let bad = vec![
        RowOp::Delete {
            table: &MEMORY,
            filter: vec![],
        },
        RowOp::Update {
            table: &MEMORY,
            filter: vec![],
            set: row([("path", json!("x"))]),
        },
        RowOp::Update {
            table: &MEMORY,
            filter: vec![Cond::Eq("id", json!("m1"))],
            set: Row::new(),
        },
        RowOp::Update {
            table: &MEMORY,
            filter: vec![Cond::Eq("id", json!("m1"))],
            set: row([("id", json!("m9"))]),
        },
    ];
    for op in bad {
        let shown = format!("{op:?}");
        match rows.write(vec![op]).await {
            Err(e) if e.kind() == chatstore_core::ErrorKind::InvalidInput => {}
            other => panic!("{shown} should be InvalidInput, got {other:?}"),
        }
    }
    assert_eq!(rows.count(&MEMORY, &[]).await?, 5);
    assert_eq!(rows.write(vec![]).await?, Vec::<u64>::new());
    Ok(())
}

/// Rows of one table never show in another, and counts follow every filter.
pub async fn tables_are_separate_and_counts_follow_filters(store: &Store) -> Result<()> {
    let rows = rows(store)?;
    five_memories(&rows).await?;
    insert(&rows, &PROMPT, vec![prompt_row("m1", Some("/m1"))]).await?;
    assert_eq!(rows.count(&MEMORY, &[]).await?, 5);
    assert_eq!(rows.count(&PROMPT, &[]).await?, 1);
    assert_eq!(
        rows.count(&MEMORY, &[Cond::Eq("user_id", json!("u1"))])
            .await?,
        3
    );
    assert_eq!(rows.count(&NOTE, &[]).await?, 0);
    Ok(())
}
