//! chatstore's own indexes (`chatstore_chat_list`, `chatstore_chat_internal`,
//! `chatstore_note_list`, `chatstore_user_email_not_ascii`, `chatstore_tag_scan`,
//! `chatstore_user_list`, and on PostgreSQL `chatstore_chat_tags` and the keyset scans'
//! `chatstore_*_scan`): there after every
//! open (an empty database and an existing Open WebUI one), valid on PostgreSQL, built once when
//! replicas open at once, and rebuilt when an interrupted `CREATE INDEX CONCURRENTLY` left one
//! `INVALID`; the orphan-tag check they split in two still sees internal chats.

mod support;

use std::time::Duration;

use chatstore_core::{ChatQuery, NewChat, NewUser};
use chatstore_sql::SqlStore;
use sqlx::{Connection, PgConnection};
use support::{Db, empty_databases, open_webui_databases};

/// The remaining models' tables keyed by `id` alone: each has a keyset scan index on
/// PostgreSQL, `chatstore_<table>_scan`.
const ROW_TABLES: [&str; 21] = [
    "group",
    "group_member",
    "access_grant",
    "knowledge",
    "knowledge_directory",
    "knowledge_file",
    "note",
    "pinned_note",
    "memory",
    "prompt",
    "prompt_history",
    "model",
    "model_history",
    "channel",
    "channel_member",
    "message",
    "message_reaction",
    "channel_file",
    "feedback",
    "shared_chat",
    "chat_file",
];

/// The indexes chatstore builds on `db`: PostgreSQL has one more for tags and one for the
/// keyset scans of each table.
fn own_index_names(db: &Db) -> Vec<String> {
    let mut names: Vec<String> = [
        "chatstore_chat_list",
        "chatstore_chat_internal",
        "chatstore_note_list",
        "chatstore_user_email_not_ascii",
        "chatstore_tag_scan",
        "chatstore_user_list",
    ]
    .map(str::to_owned)
    .to_vec();
    if db.is_postgres() {
        names.push("chatstore_chat_tags".to_owned());
        // The test server is PostgreSQL 18 (the index needs 16).
        names.push("chatstore_chat_message_changes".to_owned());
        names.push("chatstore_file_changes".to_owned());
        for table in ["chat", "chat_message", "user", "file", "folder"]
            .iter()
            .chain(&ROW_TABLES)
        {
            names.push(format!("chatstore_{table}_scan"));
        }
    }
    names
}

/// How many indexes chatstore builds on `db`.
fn own_indexes(db: &Db) -> i64 {
    own_index_names(db).len() as i64
}

/// How many of chatstore's indexes exist (and, on PostgreSQL, are valid).
async fn index_ready(db: &Db) -> i64 {
    let names = own_index_names(db)
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = if db.is_postgres() {
        format!(
            "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             WHERE i.indisvalid AND c.relname IN ({names})"
        )
    } else {
        format!("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN ({names})")
    };
    db.int(&sql).await
}

/// PostgreSQL's plan of `execute` (an `EXPLAIN EXECUTE`) of the statement `prepare` (a
/// `PREPARE`) makes on `conn`, a line per node.
async fn pg_plan(conn: &mut PgConnection, prepare: &str, execute: &str) -> String {
    sqlx::raw_sql(sqlx::AssertSqlSafe(prepare.to_owned()))
        .execute(&mut *conn)
        .await
        .expect("prepare");
    let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(execute.to_owned()))
        .fetch_all(&mut *conn)
        .await
        .expect("plan");
    plan.join("\n")
}

/// SQLite's plan of `statement` (`EXPLAIN QUERY PLAN`), its steps joined by ` | `.
async fn sqlite_plan(pool: &sqlx::SqlitePool, statement: &str) -> String {
    use sqlx::Row as _;
    let plan: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!(
        "EXPLAIN QUERY PLAN {statement}"
    )))
    .fetch_all(pool)
    .await
    .expect("plan")
    .iter()
    .map(|r| r.get::<String, _>("detail"))
    .collect();
    plan.join(" | ")
}

async fn index_definition(db: &Db) -> String {
    let sql = if db.is_postgres() {
        "SELECT pg_get_indexdef(to_regclass('chatstore_chat_list'))"
    } else {
        "SELECT sql FROM sqlite_master WHERE name = 'chatstore_chat_list'"
    };
    db.text(sql).await.unwrap_or_default()
}

/// A connection in an open transaction holding a writer's lock on `chat`: a concurrent index
/// build waits for it until it ends.
async fn hold_writer_lock(db: &Db) -> PgConnection {
    let mut writer = PgConnection::connect(&db.url).await.expect("connect");
    sqlx::raw_sql("BEGIN; LOCK TABLE chat IN ROW EXCLUSIVE MODE")
        .execute(&mut writer)
        .await
        .expect("hold a writer's lock");
    writer
}

/// Opening a database (empty or Open WebUI's) leaves the list index in place, and lists
/// answer as before.
#[tokio::test]
async fn the_list_index_exists_after_open() {
    let mut dbs = empty_databases().await;
    dbs.extend(open_webui_databases().await);
    for db in dbs {
        let sql = db.sql_store().await;
        sql.indexes_ready().await;
        let store = sql.store();
        assert_eq!(index_ready(&db).await, own_indexes(&db), "{}", db.url);
        let definition = index_definition(&db).await;
        assert!(definition.contains("updated_at DESC"), "{definition}");
        let user = store
            .users
            .create(NewUser::new("i@example.com", "I"))
            .await
            .expect("user");
        for title in ["b", "a"] {
            store
                .chats
                .create(NewChat::new(&user.id, title).with_tags(["x"]))
                .await
                .expect("chat");
        }
        let page = store
            .chats
            .list(&ChatQuery::for_user(&user.id).with_tags(["x"]))
            .await
            .expect("list");
        assert_eq!(page.total, 2);
        // Opening again finds it and changes nothing.
        db.sql_store().await.indexes_ready().await;
        assert_eq!(index_definition(&db).await, definition);
        db.finish().await;
    }
}

/// Replicas opening one database at once all open, and the index is built once, valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_opening_at_once_build_the_index_once() {
    for db in open_webui_databases().await {
        let opens = (0..3).map(|_| SqlStore::connect(&db.url, db.options().max_connections(2)));
        let stores: Vec<SqlStore> = futures::future::join_all(opens)
            .await
            .into_iter()
            .map(|store| store.expect("every replica opens"))
            .collect();
        // A replica that found another one building goes on without waiting; the builder's
        // own wait ends when its build does.
        for store in &stores {
            store.indexes_ready().await;
        }
        assert_eq!(index_ready(&db).await, own_indexes(&db), "{}", db.url);
        db.finish().await;
    }
}

/// An index an interrupted `CREATE INDEX CONCURRENTLY` left `INVALID` is dropped and built
/// again by the next open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_leftover_is_rebuilt() {
    let Some(db) = support::postgres_empty().await else {
        return;
    };
    db.exec(chatstore_sql::schema::POSTGRES_DDL).await;
    // A writer holds its lock on `chat`, so the concurrent build waits for it; cancelled
    // while it waits, the build leaves its index behind, INVALID.
    let mut writer = hold_writer_lock(&db).await;
    let mut builder = PgConnection::connect(&db.url).await.expect("connect");
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut builder)
        .await
        .expect("pid");
    let build = tokio::spawn(async move {
        sqlx::raw_sql("CREATE INDEX CONCURRENTLY chatstore_chat_list ON chat (user_id)")
            .execute(&mut builder)
            .await
    });
    let mut admin = PgConnection::connect(&db.url).await.expect("connect");
    let mut cancelled = false;
    for _ in 0..200 {
        let waiting: bool = sqlx::query_scalar(
            "SELECT count(*) > 0 FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'",
        )
        .bind(pid)
        .fetch_one(&mut admin)
        .await
        .expect("activity");
        if waiting {
            cancelled = sqlx::query_scalar("SELECT pg_cancel_backend($1)")
                .bind(pid)
                .fetch_one(&mut admin)
                .await
                .expect("cancel");
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        cancelled,
        "the concurrent build never waited for the writer"
    );
    let outcome = build.await.expect("the build task");
    assert!(outcome.is_err(), "the cancelled build must fail");
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut writer)
        .await
        .expect("rollback");
    assert_eq!(
        db.int(
            "SELECT count(*) FROM pg_index WHERE indexrelid = to_regclass('chatstore_chat_list') \
             AND NOT indisvalid"
        )
        .await,
        1,
        "the interrupted build left an INVALID index"
    );
    db.sql_store().await.indexes_ready().await;
    assert_eq!(index_ready(&db).await, own_indexes(&db));
    let definition = index_definition(&db).await;
    assert!(
        definition.contains("updated_at DESC"),
        "the leftover was replaced by chatstore's index: {definition}"
    );
    db.finish().await;
}

/// `CREATE INDEX CONCURRENTLY` waits for every older transaction that could write the table;
/// an open that found the indexes missing does not wait with it: it returns, reads and writes
/// work while the build waits, and the build finishes once the old transaction ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_does_not_wait_for_a_build_held_up_by_an_old_transaction() {
    let Some(db) = support::postgres_empty().await else {
        return;
    };
    db.exec(chatstore_sql::schema::POSTGRES_DDL).await;
    let mut writer = hold_writer_lock(&db).await;
    // A hang guard, not a timing: before, open waited for the writer for ever.
    let sql = tokio::time::timeout(Duration::from_secs(60), db.sql_store())
        .await
        .expect("open returns while the build waits for the old transaction");
    let store = sql.store();
    let user = store
        .users
        .create(NewUser::new("w@example.com", "W"))
        .await
        .expect("a write while the index is being built");
    store
        .chats
        .create(NewChat::new(&user.id, "during the build"))
        .await
        .expect("a chat write while the index is being built");
    let page = store
        .chats
        .list(&ChatQuery::for_user(&user.id))
        .await
        .expect("a list while the index is being built");
    assert_eq!(page.total, 1);
    assert_eq!(index_ready(&db).await, 0, "the build waits for the writer");
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut writer)
        .await
        .expect("rollback");
    tokio::time::timeout(Duration::from_secs(60), sql.indexes_ready())
        .await
        .expect("the build ends once the old transaction has");
    assert_eq!(index_ready(&db).await, own_indexes(&db));
    let page = store
        .chats
        .list(&ChatQuery::for_user(&user.id))
        .await
        .expect("list");
    assert_eq!(page.total, 1);
    db.finish().await;
}

/// A tag is deleted when the last chat of its user carrying it lets it go, and kept while an
/// internal chat (which lists and the list index leave out) still carries it.
#[tokio::test]
async fn an_orphan_tag_is_deleted_and_one_on_an_internal_chat_kept() {
    for db in empty_databases().await {
        let store = db.store().await;
        let user = store
            .users
            .create(NewUser::new("o@example.com", "O"))
            .await
            .expect("user");
        let listed = store
            .chats
            .create(NewChat::new(&user.id, "listed").with_tags(["kept", "gone", "a/b"]))
            .await
            .expect("chat");
        let mut internal = NewChat::new(&user.id, "internal").with_tags(["kept"]);
        internal.meta = Some(
            serde_json::json!({"internal": true})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        store.chats.create(internal).await.expect("internal chat");
        store.chats.set_tags(&listed.id, &[]).await.expect("untag");
        let left: Vec<String> = store
            .tags
            .list(&user.id)
            .await
            .expect("tags")
            .into_iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(left, vec!["kept".to_owned()], "{}", db.url);
        db.finish().await;
    }
}

/// The notes page (a user's notes, newest first) reads `chatstore_note_list` in its order: no
/// scan of every user's notes, no sort.
#[tokio::test]
async fn the_notes_page_reads_the_note_index() {
    use chatstore_core::rows::{Cond, Dir, RowQuery, tables::NOTE};
    use chatstore_sql::Dialect;

    let db = support::sqlite_empty().await;
    db.sql_store().await.indexes_ready().await;
    let mut query = RowQuery::filter(vec![Cond::Eq("user_id", "u1".into())]);
    query.order = vec![("updated_at", Dir::Desc)];
    query.limit = Some(60);
    let (text, _) =
        chatstore_sql::rows::select_text(&NOTE, &query, Dialect::Sqlite).expect("statement");
    let pool = sqlx::SqlitePool::connect(&db.url).await.expect("connect");
    let plan = sqlite_plan(&pool, &text).await;
    assert!(plan.contains("chatstore_note_list"), "{plan}");
    assert!(!plan.contains("TEMP B-TREE"), "{plan}");
}

/// Runs `update` five times in one transaction, binding 2 to 6 as `$1`, and answers how many
/// rows of `table` that transaction updated and how many of those updates were HOT (wrote no
/// index entry).
async fn updates_and_hot(conn: &mut PgConnection, table: &str, update: &'static str) -> (i64, i64) {
    let mut tx = conn.begin().await.expect("begin");
    for step in 2..7 {
        sqlx::query(update)
            .bind(step)
            .execute(&mut *tx)
            .await
            .expect("an update");
    }
    let counts = sqlx::query_as(
        "SELECT pg_stat_get_xact_tuples_updated($1::regclass), \
         pg_stat_get_xact_tuples_hot_updated($1::regclass)",
    )
    .bind(table)
    .fetch_one(&mut *tx)
    .await
    .expect("update counts");
    tx.commit().await.expect("commit");
    counts
}

/// On PostgreSQL, a user's activity (`set_last_active`: Open WebUI's update of
/// `last_active_at` on a signed-in user's requests) stays HOT with every index chatstore adds
/// to `user`.
#[tokio::test]
async fn user_activity_stays_hot() {
    let Some(db) = support::postgres_empty().await else {
        return;
    };
    db.sql_store().await.indexes_ready().await;
    let mut conn = PgConnection::connect(&db.url).await.expect("connect");
    sqlx::raw_sql(
        "INSERT INTO \"user\" (id, name, email, role, profile_image_url, last_active_at, \
         updated_at, created_at) VALUES ('u0', 'Ada', 'ada@example.com', 'user', '/user.png', \
         1, 1, 1)",
    )
    .execute(&mut conn)
    .await
    .expect("a user");
    let counts = updates_and_hot(
        &mut conn,
        "\"user\"",
        "UPDATE \"user\" SET last_active_at = $1 WHERE id = 'u0'",
    )
    .await;
    assert_eq!(counts, (5, 5), "activities that were not HOT");
}

/// On PostgreSQL, a streamed message's update (new content, usage and `updated_at`) stays HOT
/// with every index chatstore adds to `chat_message`: it writes no index entry. And the change
/// feed's catch-up reads the messages and files updated since a moment through
/// `chatstore_chat_message_changes` and `chatstore_file_changes`, not the whole tables.
#[tokio::test]
async fn message_updates_stay_hot_and_catch_up_reads_the_changes_indexes() {
    let Some(db) = support::postgres_empty().await else {
        return;
    };
    db.sql_store().await.indexes_ready().await;
    let mut conn = PgConnection::connect(&db.url).await.expect("connect");
    sqlx::raw_sql(
        "INSERT INTO chat (id, user_id, title, created_at, updated_at, archived, chat, pinned, \
         meta) VALUES ('c0', 'u0', 'chat', 1, 1, FALSE, '{}', FALSE, '{}'); \
         INSERT INTO chat_message (id, chat_id, user_id, role, content, done, created_at, \
         updated_at) VALUES ('c0-m0', 'c0', 'u0', 'assistant', to_json(''::text), FALSE, 1, 1)",
    )
    .execute(&mut conn)
    .await
    .expect("a message");
    let counts = updates_and_hot(
        &mut conn,
        "chat_message",
        "UPDATE chat_message SET content = to_json(repeat('word ', $1)), \
         usage = json_build_object('tokens', $1), updated_at = $1 WHERE id = 'c0-m0'",
    )
    .await;
    assert_eq!(counts, (5, 5), "streamed updates that were not HOT");

    db.exec(
        "INSERT INTO chat (id, user_id, title, created_at, updated_at, archived, chat, pinned, \
         meta) SELECT 'c' || g, 'u' || (g % 100), 'chat ' || g, g, g, FALSE, '{}', FALSE, \
         '{}' FROM generate_series(1, 2000) AS g; \
         INSERT INTO chat_message (id, chat_id, user_id, role, content, created_at, updated_at) \
         SELECT 'c' || (g / 10) || '-m' || g, 'c' || (g / 10), 'u' || ((g / 10) % 100), \
         'user', to_json(repeat('words ', 20)), g, g FROM generate_series(10, 20009) AS g; \
         INSERT INTO \"file\" (id, user_id, filename, created_at, updated_at) \
         SELECT 'f' || g, 'u' || (g % 100), 'f.txt', g, g FROM generate_series(1, 20000) AS g; \
         ANALYZE",
    )
    .await;
    use chatstore_sql::Dialect::Postgres;
    for (table, since, index) in [
        (
            "chat_message",
            chatstore_sql::messages_since_sql(Postgres),
            "chatstore_chat_message_changes",
        ),
        (
            "file",
            chatstore_sql::files_since_sql(Postgres),
            "chatstore_file_changes",
        ),
    ] {
        for (name, execute) in [
            ("everyone", "EXPLAIN EXECUTE since(19990, NULL)"),
            ("one user", "EXPLAIN EXECUTE since(19990, 'u5')"),
        ] {
            let plan = pg_plan(
                &mut conn,
                &format!("PREPARE since(bigint, text) AS {since}"),
                execute,
            )
            .await;
            sqlx::raw_sql("DEALLOCATE since")
                .execute(&mut conn)
                .await
                .expect("deallocate");
            assert!(plan.contains(index), "{table}, {name}:\n{plan}");
            assert!(
                !plan.contains(&format!("Seq Scan on {table}")),
                "{table}, {name}:\n{plan}"
            );
        }
    }
    db.finish().await;
}

/// On PostgreSQL, removing a tag from one chat of a user with many asks `chatstore_chat_tags`
/// whether another chat still carries it, instead of reading `meta` of each of the user's
/// chats (the plan of the adapter's own statement, for a tag no chat carries), and an Open
/// WebUI chat whose tag list is long still saves.
#[tokio::test]
async fn the_orphan_tag_check_reads_the_tag_index_on_postgres() {
    let Some(db) = support::postgres_empty().await else {
        return;
    };
    let sql = db.sql_store().await;
    sql.indexes_ready().await;
    // 60,000 chats, 10,000 of them the heavy user's, the rest spread over 100 users; each with
    // a short conversation and two common tags, written the way Open WebUI does.
    db.exec(
        "INSERT INTO chat (id, user_id, title, created_at, updated_at, archived, chat, pinned, \
         meta) SELECT 'c' || g, CASE WHEN g % 6 = 0 THEN 'heavy' ELSE 'u' || (g % 100) END, \
         'chat ' || g, g, g, FALSE, \
         json_build_object('messages', json_build_array(repeat('words ', 200))), FALSE, \
         json_build_object('tags', json_build_array('t' || (g % 7), 't' || (g % 11))) \
         FROM generate_series(1, 60000) AS g",
    )
    .await;
    let long: Vec<String> = (0..5000)
        .map(|i| format!("tag-{i}-{}", "x".repeat(20)))
        .collect();
    db.exec(&format!(
        "INSERT INTO chat (id, user_id, title, created_at, updated_at, chat, meta) VALUES \
         ('long', 'heavy', 'long', 1, 1, '{{}}'::json, '{}'::json)",
        serde_json::json!({ "tags": long })
    ))
    .await;
    db.exec("ANALYZE chat").await;
    let statement = chatstore_sql::delete_orphan_tag_sql(chatstore_sql::Dialect::Postgres);
    let mut conn = PgConnection::connect(&db.url).await.expect("connect");
    let plan = pg_plan(
        &mut conn,
        &format!("PREPARE orphan(text, text) AS {statement}"),
        "EXPLAIN EXECUTE orphan('not-carried', 'heavy')",
    )
    .await;
    assert!(plan.contains("chatstore_chat_tags"), "{plan}");
    db.finish().await;
}

/// The plans of the statements that find the users an email may belong to, for one email and
/// for several.
async fn email_plans(db: &Db) -> Vec<String> {
    use chatstore_sql::{Dialect, email_candidates_sql, emails_candidates_sql};

    if db.is_postgres() {
        let mut conn = PgConnection::connect(&db.url).await.expect("connect");
        let mut plans = Vec::new();
        for (prepare, explain) in [
            (
                format!(
                    "PREPARE one(text) AS {}",
                    email_candidates_sql(Dialect::Postgres)
                ),
                "EXPLAIN EXECUTE one('user7@example.org')",
            ),
            (
                format!(
                    "PREPARE many(text[]) AS {}",
                    emails_candidates_sql(Dialect::Postgres)
                ),
                "EXPLAIN EXECUTE many(ARRAY['user7@example.org', 'new@example.org'])",
            ),
        ] {
            plans.push(pg_plan(&mut conn, &prepare, explain).await);
        }
        let _ = conn.close().await;
        plans
    } else {
        let pool = sqlx::SqlitePool::connect(&db.url).await.expect("connect");
        let mut plans = Vec::new();
        for text in [
            email_candidates_sql(Dialect::Sqlite),
            emails_candidates_sql(Dialect::Sqlite),
        ] {
            plans.push(sqlite_plan(&pool, text).await);
        }
        pool.close().await;
        plans
    }
}

/// Finding the users an email may belong to (a sign-in, a new user) reads Open WebUI's
/// `uq_user_email_lower` and chatstore's `chatstore_user_email_not_ascii`, never the whole
/// table, on both engines, for one email or many, and on SQLite with or without statistics
/// (Open WebUI never runs `ANALYZE`); and the answers still fold case the Unicode way.
#[tokio::test]
async fn an_email_lookup_reads_the_email_indexes() {
    use chatstore_core::ErrorKind;

    let mut dbs = vec![support::sqlite_empty().await];
    dbs.extend(support::postgres_empty().await);
    for db in dbs {
        let sql = db.sql_store().await;
        sql.indexes_ready().await;
        let store = sql.store();
        // 20,000 users, one in 500 with a non-ASCII email, written the way Open WebUI does.
        let rows = if db.is_postgres() {
            "INSERT INTO \"user\" (id, name, email, role, profile_image_url, last_active_at, \
             updated_at, created_at) SELECT 'u' || g, 'User ' || g, CASE WHEN g % 500 = 0 \
             THEN 'Ülla' || g || '@example.org' ELSE 'user' || g || '@example.org' END, 'user', \
             '/user.png', g, g, g FROM generate_series(1, 20000) AS g"
        } else {
            "WITH RECURSIVE n(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM n WHERE g < 20000) \
             INSERT INTO \"user\" (id, name, email, role, profile_image_url, last_active_at, \
             updated_at, created_at) SELECT 'u' || g, 'User ' || g, CASE WHEN g % 500 = 0 \
             THEN 'Ülla' || g || '@example.org' ELSE 'user' || g || '@example.org' END, 'user', \
             '/user.png', g, g, g FROM n"
        };
        db.exec(rows).await;
        // PostgreSQL plans from statistics its autovacuum keeps; SQLite is asked both ways.
        let mut plans = Vec::new();
        if !db.is_postgres() {
            plans.extend(email_plans(&db).await);
        }
        db.exec(if db.is_postgres() {
            "ANALYZE \"user\""
        } else {
            "ANALYZE"
        })
        .await;
        plans.extend(email_plans(&db).await);
        for plan in plans {
            assert!(plan.contains("uq_user_email_lower"), "{}: {plan}", db.url);
            assert!(
                plan.contains("chatstore_user_email_not_ascii"),
                "{}: {plan}",
                db.url
            );
            assert!(!plan.contains("Seq Scan"), "{}: {plan}", db.url);
            assert!(!plan.contains("sqlite_autoindex"), "{}: {plan}", db.url);
        }

        // What the statements find: another case of an ASCII email, another case of a
        // non-ASCII one, and nothing for an email nobody has.
        let found = store
            .users
            .get_by_email("USER7@example.org")
            .await
            .expect("ASCII email in another case");
        assert_eq!(found.id, "u7");
        let found = store
            .users
            .get_by_email("ÜLLA1000@EXAMPLE.ORG")
            .await
            .expect("non-ASCII email in another case");
        assert_eq!(found.id, "u1000");
        let missing = store.users.get_by_email("nobody@example.org").await;
        assert_eq!(
            missing.map(|u| u.id).map_err(|e| e.kind()),
            Err(ErrorKind::NotFound)
        );
        // Several at once: a batch holding a taken email (in another Unicode case) is refused
        // whole; one without is written.
        let taken = store
            .users
            .create_many(vec![
                NewUser::new("fresh@example.org", "Fresh"),
                NewUser::new("üLLA500@example.org", "Taken"),
            ])
            .await;
        assert_eq!(
            taken.map(|u| u.len()).map_err(|e| e.kind()),
            Err(ErrorKind::Conflict)
        );
        let made = store
            .users
            .create_many(vec![
                NewUser::new("fresh@example.org", "Fresh"),
                NewUser::new("Ülla-new@example.org", "New"),
            ])
            .await
            .expect("new emails");
        assert_eq!(made.len(), 2);
        assert!(store.users.get_by_email("fresh@example.org").await.is_ok());
        db.finish().await;
    }
}

/// On PostgreSQL a keyset scan's page (a migration's, a verification's) reads its table's
/// `chatstore_*_scan` index from the cursor on, in bytes order, instead of reading and sorting
/// the whole table for every page.
#[tokio::test]
async fn keyset_scans_read_the_scan_indexes_on_postgres() {
    let Some(db) = support::postgres_empty().await else {
        return;
    };
    db.sql_store().await.indexes_ready().await;
    db.exec(
        "INSERT INTO \"user\" (id, name, email, role, profile_image_url, last_active_at, \
         updated_at, created_at) SELECT 'u' || g, 'User ' || g, 'user' || g || '@example.org', \
         'user', '/user.png', g, g, g FROM generate_series(1, 20000) AS g; \
         INSERT INTO chat (id, user_id, title, created_at, updated_at, archived, chat, pinned, \
         meta) SELECT md5(g::text), 'u' || (g % 100), 'chat ' || g, g, g, FALSE, \
         json_build_object('messages', json_build_array(repeat('words ', 100))), FALSE, \
         '{}'::json FROM generate_series(1, 20000) AS g; \
         INSERT INTO chat_message (id, chat_id, user_id, role, content, created_at, updated_at) \
         SELECT md5(g::text) || '-m', md5(g::text), 'u' || (g % 100), 'user', to_json('hi'::text), g, g \
         FROM generate_series(1, 20000) AS g; \
         INSERT INTO \"file\" (id, user_id, filename, created_at, updated_at) \
         SELECT 'f' || g, 'u' || (g % 100), 'f.txt', g, g FROM generate_series(1, 20000) AS g; \
         ANALYZE",
    )
    .await;
    let mut conn = PgConnection::connect(&db.url).await.expect("connect");
    for (k, (table, statement)) in chatstore_sql::scan_sql(chatstore_sql::Dialect::Postgres)
        .into_iter()
        .enumerate()
    {
        let plan = pg_plan(
            &mut conn,
            &format!("PREPARE scan{k}(text, bigint) AS {statement}"),
            &format!("EXPLAIN EXECUTE scan{k}('8', 500)"),
        )
        .await;
        let index = format!("chatstore_{table}_scan");
        assert!(plan.contains(&index), "{statement}:\n{plan}");
        assert!(!plan.contains("Seq Scan"), "{statement}:\n{plan}");
        assert!(!plan.contains("Sort"), "{statement}:\n{plan}");
    }
    db.finish().await;
}

/// Every user's tags, a remaining model's table keyed by `id` (`memory`) and one keyed by two
/// columns (`folder`, through the statement a migration's walk pages with) are walked from
/// their scan index on both engines, and the users page reads `chatstore_user_list`: on
/// PostgreSQL `chatstore_tag_scan`, `chatstore_memory_scan` and `chatstore_folder_scan` from
/// the cursor on, on SQLite `chatstore_tag_scan` and the tables' own keys, none sorting the
/// table for a page.
#[tokio::test]
async fn walks_and_the_users_page_read_their_indexes() {
    use chatstore_core::rows::{Cond, Dir, RowQuery};
    use chatstore_sql::Dialect;
    for db in empty_databases().await {
        db.sql_store().await.indexes_ready().await;
        let series = if db.is_postgres() {
            "generate_series(1, 20000) AS s(g)"
        } else {
            "(WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 20000) \
             SELECT g FROM s)"
        };
        db.exec(&format!(
            "INSERT INTO tag (id, name, user_id, meta) SELECT 'tag' || g, 'Tag ' || g, \
             'u' || (g % 300), '{{}}' FROM {series}; \
             INSERT INTO memory (id, user_id, content, updated_at, created_at) \
             SELECT 'm' || g, 'u' || (g % 300), 'remember ' || g, g, g FROM {series}; \
             INSERT INTO folder (id, user_id, name, is_expanded, created_at, updated_at) \
             SELECT 'f' || (g % 7000), 'u' || g, 'Folder ' || g, FALSE, g, g FROM {series}; \
             INSERT INTO \"user\" (id, name, email, role, profile_image_url, last_active_at, \
             updated_at, created_at) SELECT 'u' || g, 'User ' || g, 'user' || g || \
             '@example.org', 'user', '/user.png', g, g, g FROM {series}; \
             ANALYZE"
        ))
        .await;
        let dialect = if db.is_postgres() {
            Dialect::Postgres
        } else {
            Dialect::Sqlite
        };
        let memory = chatstore_core::rows::table("memory").expect("memory");
        let query = RowQuery::filter(vec![Cond::Gt("id", "m5".into())])
            .order_by("id", Dir::Asc)
            .page(0, Some(500));
        let (rows, _) =
            chatstore_sql::rows::select_text(memory, &query, dialect).expect("statement");
        // A walk page of a composite key, as `chatstore_migrate`'s `page_after` writes it.
        let folder = chatstore_core::rows::table("folder").expect("folder");
        let query = RowQuery::filter(vec![
            Cond::Ge("id", "f5".into()),
            Cond::Any(vec![
                vec![Cond::Gt("id", "f5".into())],
                vec![
                    Cond::Eq("id", "f5".into()),
                    Cond::Gt("user_id", "u5".into()),
                ],
            ]),
        ])
        .order_by("id", Dir::Asc)
        .order_by("user_id", Dir::Asc)
        .page(0, Some(500));
        let (folders, _) =
            chatstore_sql::rows::select_text(folder, &query, dialect).expect("statement");
        let tags = chatstore_sql::tag_scan_sql(dialect);
        let users = chatstore_sql::user_list_sql(dialect);
        if db.is_postgres() {
            let mut conn = PgConnection::connect(&db.url).await.expect("connect");
            for (name, prepare, execute, index) in [
                (
                    "tags",
                    format!("PREPARE tags(text, text, bigint) AS {tags}"),
                    "EXPLAIN EXECUTE tags('u5', 'tag9', 500)",
                    "chatstore_tag_scan",
                ),
                (
                    "rows",
                    format!("PREPARE rows(text, bigint) AS {rows}"),
                    "EXPLAIN EXECUTE rows('m5', 500)",
                    "chatstore_memory_scan",
                ),
                (
                    "folders",
                    format!("PREPARE folders(text, text, text, text, bigint) AS {folders}"),
                    "EXPLAIN EXECUTE folders('f5', 'f5', 'f5', 'u5', 500)",
                    "chatstore_folder_scan",
                ),
            ] {
                let plan = pg_plan(&mut conn, &prepare, execute).await;
                assert!(plan.contains(index), "{name}:\n{plan}");
                assert!(
                    plan.contains("Index Cond"),
                    "{name}: from the cursor on\n{plan}"
                );
                assert!(!plan.contains("Sort"), "{name}:\n{plan}");
            }
            let plan = pg_plan(
                &mut conn,
                &format!("PREPARE users(bigint, bigint) AS {users}"),
                "EXPLAIN EXECUTE users(50, 0)",
            )
            .await;
            assert!(plan.contains("chatstore_user_list"), "users:\n{plan}");
            assert!(!plan.contains("Sort"), "users:\n{plan}");
        } else {
            // Without statistics too: Open WebUI never runs ANALYZE on SQLite.
            let pool = sqlx::SqlitePool::connect(&db.url).await.expect("connect");
            for analyzed in [true, false] {
                if !analyzed {
                    sqlx::raw_sql("DROP TABLE sqlite_stat1")
                        .execute(&pool)
                        .await
                        .expect("drop the statistics");
                }
                for (name, statement, index) in [
                    ("tags", tags, "chatstore_tag_scan"),
                    ("rows", rows.as_str(), "sqlite_autoindex_memory_1"),
                    (
                        "folders",
                        folders.as_str(),
                        "sqlite_autoindex_folder_1 (id>?)",
                    ),
                    ("users", users, "chatstore_user_list"),
                ] {
                    let plan = sqlite_plan(&pool, statement).await;
                    assert!(plan.contains(index), "{name} ({analyzed}):\n{plan}");
                    assert!(
                        !plan.contains("TEMP B-TREE"),
                        "{name} ({analyzed}):\n{plan}"
                    );
                }
            }
        }
        db.finish().await;
    }
}
