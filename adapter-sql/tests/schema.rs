//! Opening databases: an empty one gets Open WebUI 0.12.4's schema and revision; an existing
//! one is checked (missing tables or columns are named, an unknown revision is refused) and
//! never altered; URLs and servers that cannot be used fail with the right kind of error.

mod support;

use std::time::Duration;

use chatstore_core::{ChatQuery, ErrorKind, NewChat, NewUser};
use chatstore_sql::schema::{OPEN_WEBUI_REVISION, REQUIRED_COLUMNS};
use chatstore_sql::{SqlOptions, SqlStore};
use support::{Db, empty_databases, open_webui_databases};

/// Open WebUI's tables (chatstore's own `chatstore_*` tables are not counted).
fn table_count_sql(db: &Db) -> &'static str {
    if db.is_postgres() {
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() \
         AND substr(table_name, 1, 10) <> 'chatstore_'"
    } else {
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' \
         AND substr(name, 1, 10) <> 'chatstore_'"
    }
}

/// Every column of every table but chatstore's own, as `table.column type` lines, sorted, then
/// every index but chatstore's own (`chatstore_*`, which it adds to Open WebUI's tables).
async fn schema_snapshot(db: &Db) -> String {
    let sql = if db.is_postgres() {
        "SELECT string_agg(table_name || '.' || column_name || ' ' || data_type || ' ' || \
         is_nullable, E'\\n' ORDER BY table_name, column_name) FROM information_schema.columns \
         WHERE table_schema = current_schema() AND substr(table_name, 1, 10) <> 'chatstore_'"
    } else {
        "SELECT group_concat(line, char(10)) FROM (SELECT m.name || '.' || p.name || ' ' || \
         p.type || ' ' || p.\"notnull\" AS line FROM sqlite_master m, pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND substr(m.name, 1, 10) <> 'chatstore_' ORDER BY 1)"
    };
    let indexes = if db.is_postgres() {
        "SELECT string_agg(indexdef, E'\\n' ORDER BY indexname) FROM pg_indexes \
         WHERE schemaname = current_schema() AND substr(tablename, 1, 10) <> 'chatstore_' \
         AND substr(indexname, 1, 10) <> 'chatstore_'"
    } else {
        "SELECT group_concat(sql, char(10)) FROM (SELECT sql FROM sqlite_master \
         WHERE type = 'index' AND sql IS NOT NULL AND substr(tbl_name, 1, 10) <> 'chatstore_' \
         AND substr(name, 1, 10) <> 'chatstore_' ORDER BY name)"
    };
    format!(
        "{}\n{}",
        db.text(sql).await.unwrap_or_default(),
        db.text(indexes).await.unwrap_or_default()
    )
}

async fn open_error(db: &Db) -> chatstore_core::Error {
    SqlStore::connect(&db.url, db.options())
        .await
        .expect_err("opening should fail")
}

#[tokio::test]
async fn an_empty_database_gets_the_full_schema_and_revision() {
    for db in empty_databases().await {
        let store = db.store().await;
        assert_eq!(db.int(table_count_sql(&db)).await, 48);
        assert_eq!(
            db.text("SELECT version_num FROM alembic_version")
                .await
                .as_deref(),
            Some(OPEN_WEBUI_REVISION)
        );
        store
            .users
            .create(NewUser::new("a@example.com", "A").with_id("u1"))
            .await
            .expect("the created schema works");
        // Opening again checks the schema it created and keeps the data.
        let again = db.store().await;
        assert_eq!(
            again.users.get("u1").await.expect("kept").email,
            "a@example.com"
        );
        assert_eq!(db.int("SELECT count(*) FROM alembic_version").await, 1);
        db.finish().await;
    }
}

#[tokio::test]
async fn the_created_schema_equals_open_webuis_dump() {
    let created = empty_databases().await;
    let dumped = open_webui_databases().await;
    for (a, b) in created.into_iter().zip(dumped) {
        a.store().await;
        assert_eq!(schema_snapshot(&a).await, schema_snapshot(&b).await);
        a.finish().await;
        b.finish().await;
    }
}

#[tokio::test]
async fn an_existing_schema_is_never_altered() {
    for db in open_webui_databases().await {
        let before = schema_snapshot(&db).await;
        let store = db.store().await;
        let user = store
            .users
            .create(NewUser::new("a@example.com", "A"))
            .await
            .expect("user");
        store
            .chats
            .create(NewChat::new(&user.id, "t").with_tags(["x"]))
            .await
            .expect("chat");
        store
            .chats
            .list(&ChatQuery::for_user(&user.id).with_tags(["x"]))
            .await
            .expect("list");
        if store.capabilities().vectors {
            store
                .vectors
                .insert(
                    "c",
                    vec![chatstore_core::VectorItem {
                        id: "v".into(),
                        text: "t".into(),
                        vector: vec![1.0, 0.0],
                        metadata: Default::default(),
                    }],
                )
                .await
                .expect("vectors go to chatstore's own table");
        }
        assert_eq!(schema_snapshot(&db).await, before);
        db.finish().await;
    }
}

#[tokio::test]
async fn a_missing_column_is_named() {
    for db in open_webui_databases().await {
        db.exec("ALTER TABLE chat_message DROP COLUMN context_summary")
            .await;
        let error = open_error(&db).await;
        assert_eq!(error.kind(), ErrorKind::Backend);
        let message = error.to_string();
        assert!(
            message.contains("column chat_message.context_summary"),
            "{message}"
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn a_missing_table_is_named() {
    for db in open_webui_databases().await {
        db.exec("DROP TABLE tag").await;
        let message = open_error(&db).await.to_string();
        assert!(message.contains("missing table tag"), "{message}");
        db.finish().await;
    }
}

#[tokio::test]
async fn a_newer_revision_is_refused() {
    for db in open_webui_databases().await {
        db.exec("UPDATE alembic_version SET version_num = 'a1b2c3d4e5f6'")
            .await;
        let error = open_error(&db).await;
        assert_eq!(error.kind(), ErrorKind::Backend);
        let message = error.to_string();
        assert!(message.contains("a1b2c3d4e5f6"), "{message}");
        assert!(message.contains("does not know"), "{message}");
        assert!(message.contains(OPEN_WEBUI_REVISION), "{message}");
        // Nothing was written.
        assert_eq!(db.int("SELECT count(*) FROM \"user\"").await, 0);
        db.finish().await;
    }
}

#[tokio::test]
async fn a_missing_or_empty_revision_is_refused() {
    for db in open_webui_databases().await {
        db.exec("DELETE FROM alembic_version").await;
        let message = open_error(&db).await.to_string();
        assert!(
            message.contains("alembic_version table is empty"),
            "{message}"
        );
        db.exec("DROP TABLE alembic_version").await;
        let message = open_error(&db).await.to_string();
        assert!(message.contains("no alembic_version"), "{message}");
        db.finish().await;
    }
}

#[tokio::test]
async fn foreign_tables_alone_count_as_an_empty_database() {
    for db in empty_databases().await {
        db.exec("CREATE TABLE document_chunk (id TEXT PRIMARY KEY)")
            .await;
        db.store().await;
        assert_eq!(db.int(table_count_sql(&db)).await, 49);
        db.finish().await;
    }
}

#[tokio::test]
async fn read_only_opens_read_and_refuse_writes() {
    for db in empty_databases().await {
        let error = SqlStore::connect(&db.url, db.options().read_only(true))
            .await
            .expect_err("an empty database has nothing to read");
        assert!(
            error.to_string().contains("no Open WebUI tables"),
            "{error}"
        );
        assert_eq!(db.int(table_count_sql(&db)).await, 0);

        db.store()
            .await
            .users
            .create(NewUser::new("a@example.com", "A").with_id("u1"))
            .await
            .expect("user");
        let store = SqlStore::connect(&db.url, db.options().read_only(true))
            .await
            .expect("open read-only")
            .store();
        assert_eq!(store.users.get("u1").await.expect("read").name, "A");
        let write = store.users.create(NewUser::new("b@example.com", "B")).await;
        assert!(write.is_err(), "a read-only store refuses writes");
        db.finish().await;
    }
}

#[tokio::test]
async fn required_columns_cover_what_the_adapter_uses() {
    let tables: Vec<&str> = REQUIRED_COLUMNS.iter().map(|(t, _)| *t).collect();
    assert_eq!(
        tables,
        ["user", "auth", "chat", "chat_message", "tag", "file"]
    );
}

#[tokio::test]
async fn unusable_urls_are_invalid_input() {
    for url in [
        "mysql://root@localhost/db",
        "webui.db",
        "postgres://user@host:notaport/db",
    ] {
        let error = SqlStore::connect(url, SqlOptions::default())
            .await
            .expect_err("refused");
        assert_eq!(error.kind(), ErrorKind::InvalidInput, "{url}: {error}");
    }
    let error = SqlStore::connect("sqlite::memory:", SqlOptions::default().max_connections(0))
        .await
        .expect_err("refused");
    assert_eq!(error.kind(), ErrorKind::InvalidInput);
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    // Port 9 (discard) on loopback: nothing listens there.
    let options = SqlOptions::default().acquire_timeout(Duration::from_secs(2));
    let error = SqlStore::connect("postgres://postgres@127.0.0.1:9/db", options)
        .await
        .expect_err("nothing listens");
    assert_eq!(error.kind(), ErrorKind::Unavailable, "{error}");
    assert!(error.is_retryable());
}

#[tokio::test]
async fn a_sqlite_file_in_a_missing_folder_fails_clearly() {
    let error = SqlStore::connect(
        "sqlite:///nonexistent-chatstore-folder/sub/webui.db",
        SqlOptions::default(),
    )
    .await
    .expect_err("no such folder");
    assert_ne!(error.kind(), ErrorKind::Unavailable, "{error}");
}

#[tokio::test]
async fn vectors_can_come_from_another_repository() {
    let db = support::sqlite_empty().await;
    let sql = db.sql_store().await;
    let store = sql.store_with_vectors(
        "sqlite+memory",
        std::sync::Arc::new(chatstore_core::memory::MemoryBackend::new()),
    );
    assert_eq!(store.backend_name(), "sqlite+memory");
    assert!(store.capabilities().vectors);
    assert!(
        store
            .vectors
            .collections()
            .await
            .expect("memory vectors")
            .is_empty()
    );
    assert!(
        sql.store()
            .vectors
            .collections()
            .await
            .expect("sqlite vectors")
            .is_empty()
    );
    db.finish().await;
}

#[tokio::test]
async fn a_postgres_schema_other_than_public_is_used_as_given() {
    let Some(db) = support::postgres_empty().await else {
        return;
    };
    db.exec("CREATE SCHEMA owui").await;
    let url = format!("{}?options=-c%20search_path%3Dowui", db.url);
    let store = SqlStore::connect(&url, db.options())
        .await
        .expect("open with search_path=owui")
        .store();
    store
        .users
        .create(NewUser::new("a@example.com", "A").with_id("u1"))
        .await
        .expect("user");
    assert_eq!(
        db.int(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'owui' \
             AND substr(table_name, 1, 10) <> 'chatstore_'"
        )
        .await,
        48
    );
    assert_eq!(db.int("SELECT count(*) FROM owui.\"user\"").await, 1);
    assert_eq!(
        db.int("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
            .await,
        0
    );
    db.finish().await;
}

/// Read-only through PgBouncer, which refuses the `default_transaction_read_only` startup
/// option the direct path sends ("unsupported startup parameter: options"): the store opens,
/// reads, and the server refuses its writes, since every transaction begins read-only.
#[tokio::test]
async fn read_only_through_pgbouncer_reads_and_the_server_refuses_writes() {
    let Some(bouncer) = chatstore_testkit::require_env("CHATSTORE_TEST_PGBOUNCER_URL") else {
        return;
    };
    let Some(db) = support::postgres_empty().await else {
        return;
    };
    db.store()
        .await
        .users
        .create(NewUser::new("a@example.com", "A").with_id("u1"))
        .await
        .expect("user");
    let name = db
        .url
        .rsplit('/')
        .next()
        .expect("a database name")
        .to_owned();
    let url = chatstore_testkit::with_database(&bouncer, &name);
    let store = SqlStore::connect(&url, db.options().read_only(true))
        .await
        .expect("open read-only through PgBouncer")
        .store();
    assert_eq!(store.users.get("u1").await.expect("read").name, "A");
    let write = store.users.create(NewUser::new("b@example.com", "B")).await;
    let error = write.map(drop).expect_err("the server refuses the write");
    assert!(error.to_string().contains("read-only"), "{error}");
    let update = store
        .users
        .update(
            "u1",
            chatstore_core::UserPatch {
                name: Some("changed".into()),
                ..Default::default()
            },
        )
        .await;
    assert!(update.is_err(), "{update:?}");
    assert_eq!(db.int(r#"SELECT COUNT(*) FROM "user""#).await, 1);
    assert_eq!(
        db.text(r#"SELECT name FROM "user" WHERE id = 'u1'"#)
            .await
            .as_deref(),
        Some("A")
    );
    drop(store);
    db.finish().await;
}
