//! The SQL change feed: SQLite's in-process broadcast, PostgreSQL's NOTIFY heard by another
//! process's store, and nothing lost when the listening connection is killed.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use chatstore_core::changes::{ChangeFilter, ChangeKind, ChangeStream, field, now_ms, subscribe};
use chatstore_core::{
    ChangeEvent, ChatPatch, Error, ModelGroup, NewChat, NewFile, NewMessage, NewUser, Store, User,
    UserPatch,
};
use futures::StreamExt;
use sqlx::Connection;

async fn next(events: &mut ChangeStream) -> ChangeEvent {
    tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event within 10 s")
        .expect("the stream goes on")
}

/// Reads events until every chat id in `want` was seen created (live) or read back.
async fn until_all(events: &mut ChangeStream, want: &BTreeSet<String>) {
    let mut seen = BTreeSet::new();
    while !want.is_subset(&seen) {
        let event = next(events).await;
        if event.kind != ChangeKind::Deleted
            && let Some(chat) = event.chat_id
        {
            seen.insert(chat);
        }
    }
}

/// Creates the user the tests write as.
async fn create_ada(store: &Store) -> User {
    store
        .users
        .create(NewUser::new("ada@example.com", "Ada"))
        .await
        .expect("user")
}

async fn exercise(store: &Store, feed_store: &Store) {
    let ada = create_ada(store).await;
    let mut events = subscribe(
        feed_store.changes().expect("a SQL store has a feed"),
        ChangeFilter::user(&ada.id),
    );
    // PostgreSQL's listener starts with the first subscriber; give it a moment so the
    // events below arrive live (a late start would still deliver them, by catch-up).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let chat = store
        .chats
        .create(NewChat::new(&ada.id, "Engines"))
        .await
        .expect("chat");
    store
        .chats
        .update(
            &chat.id,
            ChatPatch {
                archived: Some(true),
                ..ChatPatch::default()
            },
        )
        .await
        .expect("archive");
    store.chats.add_tag(&chat.id, "Work").await.expect("tag");
    // A message written and deleted: on PostgreSQL both events ride on the blob's write.
    write_and_delete_message(store, &chat.id).await;
    store.chats.delete(&chat.id).await.expect("delete");
    // A user's update and a file's upload: on PostgreSQL their events ride on their writes.
    // (PostgreSQL's listener may also report the user's creation, read back at its start as
    // an update at the second of `updated_at`: the live rename is the one from `renamed` on.)
    let renamed = now_ms();
    store
        .users
        .update(
            &ada.id,
            UserPatch {
                name: Some("Ada L.".to_owned()),
                ..UserPatch::default()
            },
        )
        .await
        .expect("rename");
    let file = store
        .files
        .put(NewFile::new(&ada.id, "notes.txt", b"engines".to_vec()))
        .await
        .expect("file");
    let (mut got, mut messages) = (Vec::new(), Vec::new());
    let (mut user_event, mut file_event) = (None, None);
    while got.len() < 4 || messages.len() < 2 || user_event.is_none() || file_event.is_none() {
        let e = next(&mut events).await;
        match e.group {
            _ if e.message_id.is_some() => messages.push(e),
            ModelGroup::Chats => got.push(e),
            ModelGroup::Users if e.at >= renamed => user_event = Some(e),
            ModelGroup::Files => file_event = Some(e),
            _ => {}
        }
    }
    let (user_event, file_event) = (user_event.expect("user"), file_event.expect("file"));
    assert_eq!(user_event.kind, ChangeKind::Updated, "{user_event:?}");
    assert_eq!(file_event.kind, ChangeKind::Created, "{file_event:?}");
    assert_eq!(file_event.file_id.as_deref(), Some(file.id.as_str()));
    assert_eq!(messages[0].kind, ChangeKind::Created, "{messages:?}");
    assert_eq!(messages[1].kind, ChangeKind::Deleted, "{messages:?}");
    assert!(
        messages
            .iter()
            .all(|e| e.message_id.as_deref() == Some("m1") && e.user_id == ada.id)
    );
    assert_eq!(got[0].kind, ChangeKind::Created);
    assert_eq!(got[1].fields, vec![field::ARCHIVED.to_owned()]);
    assert_eq!(got[2].fields, vec![field::TAGS.to_owned()]);
    assert_eq!(got[3].kind, ChangeKind::Deleted);
    assert!(
        got.iter()
            .all(|e| e.chat_id.as_deref() == Some(chat.id.as_str()))
    );
    assert!(got.iter().all(|e| e.user_id == ada.id));
}

/// Writes message `m1` into the chat and deletes it.
async fn write_and_delete_message(store: &Store, chat_id: &str) {
    store
        .messages
        .upsert(NewMessage::text(chat_id, "m1", "user", "hello"))
        .await
        .expect("message");
    store
        .messages
        .delete(chat_id, "m1")
        .await
        .expect("delete message");
}

/// SQLite: a subscriber hears the store's own committed writes.
#[tokio::test]
async fn sqlite_announces_its_own_writes() {
    let db = support::sqlite_empty().await;
    let store = db.store().await;
    exercise(&store, &store).await;
    db.finish().await;
}

/// The store of `db`, Ada, and a live subscription to her changes, listening already.
async fn ada_heard(db: &support::Db) -> (Store, User, ChangeStream) {
    let store = db.store().await;
    let ada = create_ada(&store).await;
    let events = subscribe(store.changes().expect("feed"), ChangeFilter::user(&ada.id));
    if db.is_postgres() {
        // The listener starts with the first subscriber (see `exercise`).
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    (store, ada, events)
}

/// A write whose caller goes away part way (a cancelled request) is announced whenever it
/// commits: a live subscriber hears every chat that ends up stored, wherever the calls were
/// dropped (on SQLite the events are published when a call dropped during its commit is; on
/// PostgreSQL the notification commits with the rows).
#[tokio::test]
async fn writes_dropped_part_way_are_announced_when_they_commit() {
    for db in support::empty_databases().await {
        let (store, ada, mut events) = ada_heard(&db).await;
        for polls in 0..30usize {
            let create = store
                .chats
                .create(NewChat::new(&ada.id, "dropped").with_id(format!("d-{polls}")));
            support::abandoned(create, polls / 2).await;
        }
        // Whatever was still running when its caller went away has ended by now.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stored: BTreeSet<String> = store
            .chats
            .list(&chatstore_core::ChatQuery::for_user(&ada.id))
            .await
            .expect("list")
            .items
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert!(!stored.is_empty(), "some of the dropped creates committed");
        until_all(&mut events, &stored).await;
        db.finish().await;
    }
}

/// A write that fails announces nothing: on PostgreSQL the refused chat's notification rides
/// on its failing insert.
#[tokio::test]
async fn a_failed_write_announces_nothing() {
    for db in support::empty_databases().await {
        let (store, ada, mut events) = ada_heard(&db).await;
        let chat = store
            .chats
            .create(NewChat::new(&ada.id, "one").with_id("c-1"))
            .await
            .expect("chat");
        let duplicate = store
            .chats
            .create(NewChat::new(&ada.id, "two").with_id("c-1"))
            .await;
        assert!(
            matches!(duplicate, Err(Error::Conflict { .. })),
            "{duplicate:?}"
        );
        store.chats.delete(&chat.id).await.expect("delete");
        let mut kinds = Vec::new();
        while kinds.len() < 2 {
            let e = next(&mut events).await;
            if e.group == ModelGroup::Chats {
                kinds.push(e.kind);
            }
        }
        assert_eq!(kinds, [ChangeKind::Created, ChangeKind::Deleted]);
        db.finish().await;
    }
}

/// A subscription from a cursor reads back updates, tag changes and deletions made before it.
#[tokio::test]
async fn a_cursor_reads_back_what_the_tables_and_records_hold() {
    for db in support::empty_databases().await {
        let store = db.store().await;
        let ada = create_ada(&store).await;
        let cursor = now_ms();
        let kept = store
            .chats
            .create(NewChat::new(&ada.id, "kept"))
            .await
            .expect("chat");
        store.chats.add_tag(&kept.id, "Work").await.expect("tag");
        write_and_delete_message(&store, &kept.id).await;
        let gone = store
            .chats
            .create(NewChat::new(&ada.id, "gone"))
            .await
            .expect("chat");
        store.chats.delete(&gone.id).await.expect("delete");
        let events = store
            .changes()
            .expect("feed")
            .changes_since(
                chatstore_core::changes::catch_up_from(cursor),
                Some(&ada.id),
            )
            .await
            .expect("read back");
        let has = |id: &str, kind: ChangeKind, tags: bool| {
            events.iter().any(|e| {
                e.chat_id.as_deref() == Some(id)
                    && e.kind == kind
                    && (!tags || e.fields.iter().any(|f| f == field::TAGS))
            })
        };
        assert!(has(&kept.id, ChangeKind::Updated, false), "{events:?}");
        assert!(has(&kept.id, ChangeKind::Updated, true), "{events:?}");
        assert!(has(&gone.id, ChangeKind::Deleted, false), "{events:?}");
        assert!(
            events
                .iter()
                .any(|e| e.kind == ChangeKind::Deleted && e.message_id.as_deref() == Some("m1")),
            "{events:?}"
        );
        assert!(events.iter().all(|e| e.user_id == ada.id));
        db.finish().await;
    }
}

/// Recorded changes past their retention are pruned by a transaction that records one, at
/// most once a minute per store: the first deletion removes an expired record, a second one
/// right after leaves the next expired record for later.
#[tokio::test]
async fn expired_records_are_pruned_at_most_once_a_minute() {
    for db in support::empty_databases().await {
        let store = db.store().await;
        let ada = create_ada(&store).await;
        let expired = now_ms() - (chatstore_core::changes::TOMBSTONE_RETENTION_SECS + 60) * 1000;
        let old = |key: &str| {
            format!(
                "INSERT INTO chatstore_change (key, user_id, at, event) \
                 VALUES ('{key}', '{}', {expired}, '{{}}')",
                ada.id
            )
        };
        let count =
            |key: &str| format!("SELECT count(*) FROM chatstore_change WHERE key = '{key}'");
        let delete_a_chat = || async {
            let chat = store
                .chats
                .create(NewChat::new(&ada.id, "short-lived"))
                .await
                .expect("chat");
            store.chats.delete(&chat.id).await.expect("delete");
            chat.id
        };
        db.exec(&old("expired-1")).await;
        let first = delete_a_chat().await;
        assert_eq!(
            db.int(&count("expired-1")).await,
            0,
            "pruned by the first record"
        );
        db.exec(&old("expired-2")).await;
        let second = delete_a_chat().await;
        assert_eq!(
            db.int(&count("expired-2")).await,
            1,
            "not pruned again within a minute"
        );
        let recorded = db
            .int(&format!(
                "SELECT count(*) FROM chatstore_change WHERE event LIKE '%{first}%' \
                 OR event LIKE '%{second}%'"
            ))
            .await;
        assert_eq!(recorded, 2, "both deletions recorded");
        db.finish().await;
    }
}

/// PostgreSQL: a write through one store (process) is heard by another store's feed.
#[tokio::test]
async fn postgres_writes_are_heard_by_another_store() {
    let Some(db) = support::postgres_empty().await else {
        return;
    };
    let writer = db.store().await;
    let listener = db.store().await;
    exercise(&writer, &listener).await;
    db.finish().await;
}

/// PostgreSQL: killing the listening connection while writes go on loses nothing; the feed
/// reconnects and reads back what it missed.
#[tokio::test]
async fn postgres_listener_killed_mid_stream_loses_nothing() {
    let Some(db) = support::postgres_empty().await else {
        return;
    };
    let writer = db.store().await;
    let follower = db.store().await;
    let ada = create_ada(&writer).await;
    let feed = follower.changes().expect("feed");
    let mut events = subscribe(feed.clone(), ChangeFilter::user(&ada.id));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let writes = {
        let writer = writer.clone();
        let user = ada.id.clone();
        tokio::spawn(async move {
            let mut ids = BTreeSet::new();
            for i in 0..60 {
                let chat = writer
                    .chats
                    .create(NewChat::new(&user, format!("chat {i}")))
                    .await
                    .expect("chat");
                ids.insert(chat.id);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            ids
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut admin = sqlx::PgConnection::connect(&db.url)
        .await
        .expect("admin connection");
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = $1 AND datname = current_database()) t",
    )
    .bind(chatstore_sql::changes::LISTENER_APPLICATION_NAME)
    .fetch_one(&mut admin)
    .await
    .expect("terminate the listener");
    assert_eq!(killed, 1, "exactly one listening connection");
    let ids = writes.await.expect("writer task");
    until_all(&mut events, &ids).await;
    assert!(feed.hub().status().reconnects >= 1);
    let _ = admin.close().await;
    db.finish().await;
}

/// PostgreSQL: a read-back that keeps failing after a reconnect (here the file table, which
/// this test does not write, is replaced by a view that fails) is retried after a growing pause, not at once in a loop; the
/// feed does not count as connected meanwhile; once the read-back works again, what was
/// written during the outage is read back and delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_failing_catch_up_is_retried_after_a_pause() {
    catch_up_after_an_outage(false).await;
}

/// The same with a chat stored with an `updated_at` ten years ahead before the feed starts:
/// the feed's first read-back finds it, and its cursor must not follow it into the future, or
/// the read-back after the outage would find none of the chats written during it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_chat_dated_in_the_future_does_not_blind_the_feed() {
    catch_up_after_an_outage(true).await;
}

async fn catch_up_after_an_outage(with_a_future_chat: bool) {
    let Some(db) = support::postgres_empty().await else {
        return;
    };
    let writer = db.store().await;
    let ada = create_ada(&writer).await;
    if with_a_future_chat {
        let mut chat = NewChat::new(&ada.id, "from a clock ahead");
        chat.updated_at = Some(now_ms() / 1000 + 10 * 365 * 24 * 3600);
        writer.chats.create(chat).await.expect("future chat");
    }
    let follower = db.store().await;
    let feed = follower.changes().expect("feed");
    let mut events = subscribe(feed.clone(), ChangeFilter::user(&ada.id));
    tokio::time::sleep(Duration::from_millis(300)).await;
    db.exec(
        "ALTER TABLE file RENAME TO file_kept; \
         CREATE FUNCTION failing_files() RETURNS SETOF file_kept AS $$ \
         BEGIN RAISE EXCEPTION 'refused for the test'; END $$ LANGUAGE plpgsql; \
         CREATE VIEW file AS SELECT * FROM failing_files();",
    )
    .await;
    let mut admin = sqlx::PgConnection::connect(&db.url)
        .await
        .expect("admin connection");
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = $1 AND datname = current_database()",
    )
    .bind(chatstore_sql::changes::LISTENER_APPLICATION_NAME)
    .execute(&mut admin)
    .await
    .expect("terminate the listener");
    let mut written = BTreeSet::new();
    for i in 0..4 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let chat = NewChat::new(&ada.id, format!("during the outage {i}"));
        written.insert(writer.chats.create(chat).await.expect("chat").id);
    }
    let attempts = feed.hub().status().failed_catch_ups;
    assert!(
        (1..=8).contains(&attempts),
        "{attempts} failed read-backs in 2 s: retried without a pause"
    );
    assert!(
        !feed.hub().status().connected,
        "not caught up, not connected"
    );

    db.exec(
        "DROP VIEW file; DROP FUNCTION failing_files(); \
         ALTER TABLE file_kept RENAME TO file;",
    )
    .await;
    let chat = writer
        .chats
        .create(NewChat::new(&ada.id, "after the outage"))
        .await
        .expect("chat");
    written.insert(chat.id);
    until_all(&mut events, &written).await;
    assert!(feed.hub().status().connected);
    let _ = admin.close().await;
    db.finish().await;
}

/// Through a transaction-pooling PgBouncer, `LISTEN` is accepted and then hears nothing. A store
/// opened there without a direct URL has no change feed (and says so in its capabilities)
/// instead of one that silently misses events; with the server's own URL as its listen URL,
/// it hears what is written through PgBouncer, and builds its indexes there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_pgbouncer_the_feed_needs_the_direct_url() {
    let Some(bouncer) = chatstore_testkit::require_env("CHATSTORE_TEST_PGBOUNCER_URL") else {
        return;
    };
    let Some(db) = support::postgres_empty().await else {
        return;
    };
    let pooled =
        chatstore_testkit::with_database(&bouncer, &chatstore_testkit::database_name(&db.url));

    let without = chatstore_sql::SqlStore::connect(&pooled, db.options())
        .await
        .expect("open through PgBouncer");
    let store = without.store();
    assert!(store.changes().is_none(), "no feed through a pooler alone");
    assert!(!store.capabilities().change_feed);
    without.indexes_ready().await;
    assert_eq!(
        db.int(
            "SELECT count(*) FROM pg_index WHERE indexrelid = to_regclass('chatstore_chat_list')"
        )
        .await,
        0,
        "no index is built through a pooler"
    );

    let with = chatstore_sql::SqlStore::connect(&pooled, db.options().listen_url(&db.url))
        .await
        .expect("open through PgBouncer with the direct URL");
    with.indexes_ready().await;
    assert_eq!(
        db.int(
            "SELECT count(*) FROM pg_index WHERE indisvalid \
             AND indexrelid = to_regclass('chatstore_chat_list')"
        )
        .await,
        1,
        "the direct URL builds the indexes"
    );
    let store = with.store();
    assert!(store.capabilities().change_feed);
    exercise(&store, &store).await;
    db.finish().await;
}

/// A direct URL of another database (one environment opens a router's old and new stores, a
/// migration's two ends) is not used: a store reached directly listens on its own database
/// and hears its own writes, and one reached through PgBouncer has no feed, instead of
/// listening on the other database and hearing its changes, or nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_url_of_another_database_is_not_used() {
    let Some(bouncer) = chatstore_testkit::require_env("CHATSTORE_TEST_PGBOUNCER_URL") else {
        return;
    };
    let (Some(db), Some(other)) = (
        support::postgres_empty().await,
        support::postgres_empty().await,
    ) else {
        return;
    };
    let pooled =
        chatstore_testkit::with_database(&bouncer, &chatstore_testkit::database_name(&db.url));
    let through = chatstore_sql::SqlStore::connect(&pooled, db.options().listen_url(&other.url))
        .await
        .expect("open through PgBouncer with another database's direct URL");
    assert!(through.store().changes().is_none());

    let direct = chatstore_sql::SqlStore::connect(&db.url, db.options().listen_url(&other.url))
        .await
        .expect("open directly with another database's direct URL");
    let store = direct.store();
    assert!(store.capabilities().change_feed);
    exercise(&store, &store).await;
    db.finish().await;
    other.finish().await;
}
