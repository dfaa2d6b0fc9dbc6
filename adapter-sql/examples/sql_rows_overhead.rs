//! The row store's overhead over raw sqlx: a user's notes (first page of 50, newest first) and a
//! note by id, through `Store::rows()` (core's check, dynamic dispatch, the statement built from
//! the table spec, every cell decoded into a JSON row) against raw sqlx running the same
//! statement with the same binds and decoding every column into a typed struct (JSON columns
//! parsed). Prints the median time per call of each and their ratio, per engine.
//!
//! `cargo run --release -p chatstore-sql --example sql_rows_overhead -- [postgres://USER@HOST/DB]`
//! (SQLite always, in a temporary file; PostgreSQL on a fresh database created on that server
//! and dropped afterwards; the URL defaults to `CHATSTORE_TEST_POSTGRES_URL`).

use std::time::{Duration, Instant};

use chatstore_core::rows::tables::NOTE;
use chatstore_core::rows::{Cond, Dir, RowOp, RowQuery};
use chatstore_sql::{SqlOptions, connect};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, Row as _};

const USERS: usize = 20;
const NOTES_PER_USER: usize = 200;
const ROUNDS: usize = 60;
const CALLS: usize = 20;

const COLUMNS: &str =
    r#""id", "user_id", "title", "data", "meta", "created_at", "updated_at" FROM "note""#;

/// What a hand-written repository would decode a note into.
#[allow(dead_code)]
#[derive(Debug)]
struct Note {
    id: String,
    user_id: Option<String>,
    title: Option<String>,
    data: Value,
    meta: Value,
    created_at: Option<i64>,
    updated_at: Option<i64>,
}

enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

fn parse(text: Option<String>) -> Value {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

impl Raw {
    async fn list(&self, user: &str) -> Vec<Note> {
        match self {
            Raw::Sqlite(p) => {
                let sql = format!(
                    r#"SELECT {COLUMNS} WHERE "user_id" = ? ORDER BY "updated_at" DESC NULLS LAST, "id" LIMIT ?"#
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(user)
                    .bind(50i64)
                    .fetch_all(p)
                    .await
                    .expect("raw list")
                    .iter()
                    .map(sqlite_note)
                    .collect()
            }
            Raw::Postgres(p) => {
                let sql = format!(
                    r#"SELECT {COLUMNS} WHERE "user_id" = $1 ORDER BY "updated_at" DESC NULLS LAST, "id" COLLATE "C" LIMIT $2"#
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(user)
                    .bind(50i64)
                    .fetch_all(p)
                    .await
                    .expect("raw list")
                    .iter()
                    .map(pg_note)
                    .collect()
            }
        }
    }

    async fn get(&self, id: &str) -> Vec<Note> {
        match self {
            Raw::Sqlite(p) => {
                let sql = format!(r#"SELECT {COLUMNS} WHERE "id" = ? ORDER BY "id""#);
                sqlx::query(AssertSqlSafe(sql))
                    .bind(id)
                    .fetch_all(p)
                    .await
                    .expect("raw get")
                    .iter()
                    .map(sqlite_note)
                    .collect()
            }
            Raw::Postgres(p) => {
                let sql = format!(r#"SELECT {COLUMNS} WHERE "id" = $1 ORDER BY "id" COLLATE "C""#);
                sqlx::query(AssertSqlSafe(sql))
                    .bind(id)
                    .fetch_all(p)
                    .await
                    .expect("raw get")
                    .iter()
                    .map(pg_note)
                    .collect()
            }
        }
    }
}

fn sqlite_note(r: &sqlx::sqlite::SqliteRow) -> Note {
    Note {
        id: r.get(0),
        user_id: r.get(1),
        title: r.get(2),
        data: parse(r.get(3)),
        meta: parse(r.get(4)),
        created_at: r.get(5),
        updated_at: r.get(6),
    }
}

fn pg_note(r: &sqlx::postgres::PgRow) -> Note {
    let json = |i: usize| {
        r.get::<Option<sqlx::types::Json<Value>>, _>(i)
            .map_or(Value::Null, |j| j.0)
    };
    Note {
        id: r.get(0),
        user_id: r.get(1),
        title: r.get(2),
        data: json(3),
        meta: json(4),
        created_at: r.get(5),
        updated_at: r.get(6),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn measure(name: &str, url: &str, raw: Raw) -> Result<(), Box<dyn std::error::Error>> {
    let store = connect(url, SqlOptions::default().max_connections(4)).await?;
    let rows = store.rows()?;
    let mut ops = Vec::new();
    for u in 0..USERS {
        for n in 0..NOTES_PER_USER {
            ops.push(RowOp::Upsert {
                table: &NOTE,
                row: chatstore_core::rows::row([
                    ("id", json!(format!("note-{u:02}-{n:04}"))),
                    ("user_id", json!(format!("user-{u:02}"))),
                    ("title", json!(format!("Note {n} of user {u}"))),
                    (
                        "data",
                        json!({"content": {"md": "# title\nsome text", "html": "<h1>title</h1>"}}),
                    ),
                    (
                        "meta",
                        if n % 3 == 0 {
                            Value::Null
                        } else {
                            json!({"tags": ["a"]})
                        },
                    ),
                    ("created_at", json!(1_700_000_000_000_000_000i64 + n as i64)),
                    (
                        "updated_at",
                        json!(1_700_000_000_000_000_000i64 + (n % 50) as i64),
                    ),
                ]),
            });
        }
    }
    rows.write(ops).await?;
    let list_query = |user: &str| {
        RowQuery::filter(vec![Cond::Eq("user_id", json!(user))])
            .order_by("updated_at", Dir::Desc)
            .page(0, Some(50))
    };
    // Same answers first.
    let adapter_page = rows.select(&NOTE, &list_query("user-07")).await?;
    let raw_page = raw.list("user-07").await;
    assert_eq!(adapter_page.len(), raw_page.len());
    for (a, r) in adapter_page.iter().zip(&raw_page) {
        assert_eq!(a["id"], json!(r.id));
    }
    for op in ["list 50 of a user", "get by id"] {
        let (mut ours, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            let user = format!("user-{:02}", round % USERS);
            let id = format!(
                "note-{:02}-{:04}",
                round % USERS,
                round * 7 % NOTES_PER_USER
            );
            let mut a = Duration::ZERO;
            let mut r = Duration::ZERO;
            // Alternate which side goes first, so drift on the shared machine hits both.
            for side in [round % 2, 1 - round % 2] {
                let t = Instant::now();
                for _ in 0..CALLS {
                    if side == 0 {
                        let found = if op == "get by id" {
                            rows.select(&NOTE, &RowQuery::filter(vec![Cond::Eq("id", json!(id))]))
                                .await?
                        } else {
                            rows.select(&NOTE, &list_query(&user)).await?
                        };
                        std::hint::black_box(found);
                    } else {
                        let found = if op == "get by id" {
                            raw.get(&id).await
                        } else {
                            raw.list(&user).await
                        };
                        std::hint::black_box(found);
                    }
                }
                if side == 0 {
                    a = t.elapsed() / CALLS as u32;
                } else {
                    r = t.elapsed() / CALLS as u32;
                }
            }
            ours.push(a);
            theirs.push(r);
            ratios.push(a.as_secs_f64() / r.as_secs_f64());
        }
        ratios.sort_by(f64::total_cmp);
        println!(
            "{name:<10} {op:<18} rows {:>9.1?}  raw sqlx {:>9.1?}  median per-round ratio {:.3}",
            median(ours),
            median(theirs),
            ratios[ratios.len() / 2]
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("rows-overhead-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let url = format!("sqlite://{}", dir.join("webui.db").display());
    let pool = sqlx::SqlitePool::connect(&format!("{url}?mode=rwc")).await?;
    measure("SQLite", &url, Raw::Sqlite(pool)).await?;
    let _ = std::fs::remove_dir_all(&dir);

    let server = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("CHATSTORE_TEST_POSTGRES_URL").ok());
    let Some(server) = server else {
        println!("PostgreSQL: skipped (give a postgres:// URL)");
        return Ok(());
    };
    let name = format!("rows_overhead_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&server).await?;
    // The name is a generated uuid, not input.
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await?;
    let mut db = url::Url::parse(&server)?;
    db.set_path(&name);
    let pool = sqlx::PgPool::connect(db.as_str()).await?;
    let result = measure("PostgreSQL", db.as_str(), Raw::Postgres(pool.clone())).await;
    pool.close().await;
    sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)")))
        .execute(&mut admin)
        .await?;
    result
}
