//! Concurrent writers: the chat blob's read-modify-write is locked (SQLite `BEGIN IMMEDIATE`
//! with a busy timeout, PostgreSQL `SELECT ... FOR UPDATE`), so no write is lost and none
//! fails; uniqueness holds under races.

mod support;

use chatstore_core::{ErrorKind, NewChat, NewMessage, NewUser, Store};
use support::{Db, empty_databases};

async fn chat_of_one_user(store: &Store) {
    store
        .users
        .create(NewUser::new("a@example.com", "A").with_id("u1"))
        .await
        .expect("user");
    store
        .chats
        .create(NewChat::new("u1", "busy chat").with_id("c1"))
        .await
        .expect("chat");
}

async fn two_stores(db: &Db) -> (Store, Store) {
    // Two pools on one database, like two processes.
    (db.store().await, db.store().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_message_writes_to_one_chat_are_all_kept() {
    const TASKS: usize = 8;
    const EACH: usize = 10;
    for db in empty_databases().await {
        let (a, b) = two_stores(&db).await;
        chat_of_one_user(&a).await;
        let mut handles = Vec::new();
        for t in 0..TASKS {
            let store = if t % 2 == 0 { a.clone() } else { b.clone() };
            handles.push(tokio::spawn(async move {
                for i in 0..EACH {
                    store
                        .messages
                        .upsert(
                            NewMessage::text("c1", format!("m{t}-{i}"), "user", "hi")
                                .at(1_700_000_000 + i as i64),
                        )
                        .await?;
                }
                Ok::<(), chatstore_core::Error>(())
            }));
        }
        for handle in handles {
            handle.await.expect("task").expect("every write succeeds");
        }
        let messages = a.messages.list("c1").await.expect("list");
        assert_eq!(messages.len(), TASKS * EACH);
        let blob = a.chats.get("c1").await.expect("chat").chat;
        let in_blob = blob["history"]["messages"]
            .as_object()
            .map_or(0, |m| m.len());
        assert_eq!(in_blob, TASKS * EACH, "no blob update was lost");
        db.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_tag_changes_are_all_kept() {
    for db in empty_databases().await {
        let (a, b) = two_stores(&db).await;
        chat_of_one_user(&a).await;
        let mut handles = Vec::new();
        for t in 0..8 {
            let store = if t % 2 == 0 { a.clone() } else { b.clone() };
            handles.push(tokio::spawn(async move {
                store.chats.add_tag("c1", &format!("tag {t}")).await
            }));
        }
        for handle in handles {
            handle.await.expect("task").expect("every tag add succeeds");
        }
        let chat = a.chats.get("c1").await.expect("chat");
        assert_eq!(chat.tags.len(), 8, "{:?}", chat.tags);
        assert_eq!(a.tags.list("u1").await.expect("tags").len(), 8);
        db.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_creates_of_one_email_let_exactly_one_win() {
    for db in empty_databases().await {
        let (a, b) = two_stores(&db).await;
        let emails = [
            "race@example.com",
            "RACE@example.com",
            "Race@Example.com",
            "race@EXAMPLE.COM",
            "rAce@example.com",
            "raCe@example.com",
        ];
        let mut handles = Vec::new();
        for (i, email) in emails.into_iter().enumerate() {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            handles.push(tokio::spawn(async move {
                store.users.create(NewUser::new(email, "R")).await
            }));
        }
        let mut won = 0;
        for handle in handles {
            match handle.await.expect("task") {
                Ok(_) => won += 1,
                Err(e) => assert_eq!(e.kind(), ErrorKind::Conflict, "{e}"),
            }
        }
        assert_eq!(won, 1);
        db.finish().await;
    }
}

/// Every tag a chat carries has its tag row.
async fn carried_tags_have_rows(store: &Store, user: &str, chats: &[&str]) {
    let rows: Vec<String> = store
        .tags
        .list(user)
        .await
        .expect("tags")
        .into_iter()
        .map(|t| t.id)
        .collect();
    for chat in chats {
        for tag in store.chats.get(chat).await.expect("chat").tags {
            assert!(
                rows.contains(&tag),
                "chat {chat} carries {tag} but its row is gone"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moving_a_tag_between_chats_concurrently_never_orphans_a_chat() {
    for db in empty_databases().await {
        let (a, b) = two_stores(&db).await;
        for (id, tags) in [("c1", vec!["x"]), ("c2", vec![])] {
            a.chats
                .create(NewChat::new("u1", id).with_id(id).with_tags(tags))
                .await
                .expect("chat");
        }
        for round in 0..25 {
            // The tag moves from one chat to the other while the other side does the reverse.
            let (from, to) = if round % 2 == 0 {
                ("c1", "c2")
            } else {
                ("c2", "c1")
            };
            let remover = a.clone();
            let adder = b.clone();
            let removing = tokio::spawn(async move { remover.chats.remove_tag(from, "x").await });
            let adding = tokio::spawn(async move { adder.chats.add_tag(to, "x").await });
            removing.await.expect("task").expect("remove");
            adding.await.expect("task").expect("add");
            carried_tags_have_rows(&a, "u1", &["c1", "c2"]).await;
        }
        db.finish().await;
    }
}

#[tokio::test]
async fn a_sqlite_lock_held_past_the_busy_timeout_is_unavailable() {
    let db = support::sqlite_empty().await;
    let store = chatstore_sql::SqlStore::connect(
        &db.url,
        db.options()
            .busy_timeout(std::time::Duration::from_millis(100)),
    )
    .await
    .expect("open")
    .store();
    let support::Raw::Sqlite(raw) = &db.raw else {
        unreachable!("sqlite_empty gives SQLite");
    };
    let mut holder = raw.acquire().await.expect("a raw connection");
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut *holder)
        .await
        .expect("take the write lock");
    let blocked = store.users.create(NewUser::new("a@example.com", "A")).await;
    let error = blocked.expect_err("the write lock is held elsewhere");
    assert_eq!(error.kind(), ErrorKind::Unavailable, "{error}");
    assert!(error.is_retryable());
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut *holder)
        .await
        .expect("release the lock");
    store
        .users
        .create(NewUser::new("a@example.com", "A"))
        .await
        .expect("the retry succeeds");
    db.finish().await;
}

/// Opening a SQLite database still in rollback-journal mode turns it to WAL, which needs the
/// file to itself; while another connection writes (Open WebUI on its own `webui.db`, or a
/// replica opening beside this one and turning it to WAL first) SQLite answers `BUSY` at once,
/// without waiting its busy timeout. The open waits for the writer within the busy timeout;
/// past it, it is `Unavailable`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_database_another_connection_writes_waits_for_it() {
    use std::time::{Duration, Instant};

    let db = support::sqlite_empty().await;
    let support::Raw::Sqlite(raw) = &db.raw else {
        unreachable!("sqlite_empty gives SQLite");
    };
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(raw)
        .await
        .expect("journal mode");
    assert_eq!(mode, "delete", "the file starts in rollback-journal mode");
    sqlx::raw_sql("CREATE TABLE other_writes (x INTEGER)")
        .execute(raw)
        .await
        .expect("a table to write to");
    let mut writer = raw.acquire().await.expect("a raw connection");
    sqlx::raw_sql("BEGIN IMMEDIATE; INSERT INTO other_writes VALUES (1)")
        .execute(&mut *writer)
        .await
        .expect("a write transaction holding its lock");

    // Past the busy timeout: Unavailable.
    let started = Instant::now();
    let refused = chatstore_sql::SqlStore::connect(
        &db.url,
        db.options().busy_timeout(Duration::from_millis(300)),
    )
    .await
    .map(drop)
    .expect_err("the writer holds the file past the busy timeout");
    assert_eq!(refused.kind(), ErrorKind::Unavailable, "{refused}");
    assert!(refused.is_retryable());
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "gave up after {:?}, before the busy timeout",
        started.elapsed()
    );

    // Within it: the open waits for the writer to end, then opens in WAL mode.
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        sqlx::raw_sql("COMMIT")
            .execute(&mut *writer)
            .await
            .expect("end the write");
    });
    let store = chatstore_sql::SqlStore::connect(&db.url, db.options())
        .await
        .expect("the open waits for the writer")
        .store();
    release.await.expect("the writer ended");
    // A connection learns of the change at its next transaction; a new one reads the file.
    let mut fresh = <sqlx::SqliteConnection as sqlx::Connection>::connect(&db.url)
        .await
        .expect("a new raw connection");
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut fresh)
        .await
        .expect("journal mode");
    assert_eq!(mode, "wal");
    let written: i64 = sqlx::query_scalar("SELECT count(*) FROM other_writes")
        .fetch_one(&mut fresh)
        .await
        .expect("count");
    assert_eq!(written, 1, "the writer's row is there");
    store
        .users
        .create(NewUser::new("a@example.com", "A"))
        .await
        .expect("the store writes");
    db.finish().await;
}

/// `ensure` beside a chat delete that removes the same tag as an orphan: on PostgreSQL the
/// insert (nothing to do, the tag exists) and the read after it saw different snapshots, and
/// the read found the tag gone. `ensure` takes the owner's tag lock, as every tag change
/// does: it always answers the tag, and the tag is there afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ensure_racing_an_orphan_tag_removal_answers_the_tag() {
    const ROUNDS: usize = 150;
    for db in empty_databases().await {
        let (a, b) = two_stores(&db).await;
        chat_of_one_user(&a).await;
        let churn = tokio::spawn(async move {
            for i in 0..ROUNDS {
                let id = format!("tagged-{i}");
                b.chats
                    .create(NewChat::new("u1", "t").with_id(&id).with_tags(["x"]))
                    .await?;
                b.chats.delete(&id).await?;
            }
            Ok::<(), chatstore_core::Error>(())
        });
        let mut answered = 0;
        while !churn.is_finished() {
            let tag = a
                .tags
                .ensure("u1", "x")
                .await
                .expect("ensure answers the tag");
            assert_eq!(tag.id, "x");
            answered += 1;
        }
        churn.await.expect("task").expect("chat churn");
        assert!(answered > 0);
        db.finish().await;
    }
}
