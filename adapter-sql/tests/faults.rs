//! Faults with real processes: a private PostgreSQL (durable defaults) restarted fast and
//! immediately while several writers upsert messages into shared chats, connections killed
//! with `pg_terminate_backend`, and connections reset by a TCP proxy. During a fault a call
//! answers `Unavailable` or succeeds, never panics and never hangs past its timeout; afterwards
//! every acknowledged write is there exactly once and each chat's blob history equals its
//! message rows.

use std::collections::BTreeSet;
use std::time::Duration;

use chatstore_core::{ErrorKind, NewChat, NewMessage, NewUser, Store};
use chatstore_sql::SqlOptions;
use chatstore_testkit::{FaultProxy, PrivatePostgres, Shutdown};
use sqlx::Connection;

/// Longest a call may take during a fault: the acquire timeout plus slack.
const CALL_LIMIT: Duration = Duration::from_secs(8);

fn options() -> SqlOptions {
    SqlOptions::default()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(3))
        .upload_dir(std::env::temp_dir().join("chatstore-faults-uploads"))
}

/// Writers upserting messages `w{writer}-{n}` into `chats` until `stop`; returns the ids
/// acknowledged per chat. Every failure must be `Unavailable` and every call must end in time.
async fn write_until(
    store: Store,
    chats: Vec<String>,
    writer: usize,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<(String, String)> {
    let mut acknowledged = Vec::new();
    let mut n = 0usize;
    while !*stop.borrow() {
        let chat = &chats[n % chats.len()];
        let id = format!("w{writer}-{n}");
        let call = store
            .messages
            .upsert(NewMessage::text(chat, &id, "user", "hello"));
        match tokio::time::timeout(CALL_LIMIT, call).await {
            Err(_) => panic!("an upsert hung for more than {CALL_LIMIT:?} during a fault"),
            Ok(Ok(_)) => acknowledged.push((chat.clone(), id)),
            Ok(Err(e)) => {
                assert_eq!(e.kind(), ErrorKind::Unavailable, "during a fault: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        n += 1;
    }
    acknowledged
}

/// Every acknowledged message is a row once, and each chat's blob history holds exactly its
/// message rows.
async fn assert_nothing_lost(store: &Store, chats: &[String], acknowledged: &[(String, String)]) {
    for chat in chats {
        let rows: Vec<String> = store
            .messages
            .list(chat)
            .await
            .expect("list messages after the fault")
            .into_iter()
            .map(|m| m.id)
            .collect();
        let unique: BTreeSet<&String> = rows.iter().collect();
        assert_eq!(unique.len(), rows.len(), "a message row is doubled");
        for (c, id) in acknowledged.iter().filter(|(c, _)| c == chat) {
            assert!(
                unique.contains(id),
                "acknowledged message {id} of {c} is lost"
            );
        }
        let blob = store.chats.get(chat).await.expect("chat after the fault");
        let history: BTreeSet<String> = blob.chat["history"]["messages"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let rows: BTreeSet<String> = rows.into_iter().collect();
        assert_eq!(history, rows, "blob history and message rows differ");
    }
}

async fn seed(store: &Store) -> Vec<String> {
    let user = store
        .users
        .create(NewUser::new("f@example.com", "F"))
        .await
        .expect("user");
    let mut chats = Vec::new();
    for i in 0..3 {
        let chat = store
            .chats
            .create(NewChat::new(&user.id, format!("shared {i}")))
            .await
            .expect("chat");
        chats.push(chat.id);
    }
    chats
}

/// Runs three writers (pools of their own, like replicas) while `fault` happens, then checks
/// that nothing acknowledged was lost.
async fn survive<F, Fut>(url: &str, fault: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(chatstore_sql::connect(url, options()).await.expect("open"));
    }
    let chats = seed(&replicas[0]).await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let writers: Vec<_> = replicas
        .iter()
        .enumerate()
        .map(|(w, store)| {
            tokio::spawn(write_until(
                store.clone(),
                chats.clone(),
                w,
                stop_rx.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    fault().await;
    // Long enough for the pools to reconnect and write again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop_tx.send(true);
    let mut acknowledged = Vec::new();
    for w in writers {
        acknowledged.extend(w.await.expect("a writer panicked"));
    }
    assert!(!acknowledged.is_empty(), "nothing was written");
    // A fresh pool reads what the server kept.
    let reader = chatstore_sql::connect(url, options())
        .await
        .expect("reopen");
    assert_nothing_lost(&reader, &chats, &acknowledged).await;
}

/// A fast and then an immediate restart of a durable PostgreSQL lose no acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_lose_no_acknowledged_write() {
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let url = pg.url();
    for how in [Shutdown::Fast, Shutdown::Immediate] {
        let db = chatstore_testkit::fresh_postgres_database(&url).await;
        survive(&db, || async {
            pg.stop(how);
            tokio::time::sleep(Duration::from_millis(300)).await;
            pg.start_again();
        })
        .await;
    }
}

/// Connections killed with `pg_terminate_backend` cost at most `Unavailable` answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_backends_lose_no_acknowledged_write() {
    let Some(server) = chatstore_testkit::require_env("CHATSTORE_TEST_POSTGRES_URL") else {
        return;
    };
    let db = chatstore_testkit::fresh_postgres_database(&server).await;
    let name = db
        .rsplit('/')
        .next()
        .and_then(|s| s.split('?').next())
        .expect("database name")
        .to_owned();
    let admin_url = server.clone();
    survive(&db, || async move {
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("admin");
        for _ in 0..3 {
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
            )
            .bind(&name)
            .execute(&mut admin)
            .await
            .expect("terminate the store's connections");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let _ = admin.close().await;
    })
    .await;
}

/// A fresh database on the test server: its direct URL, a fault proxy in front of it, and the
/// URL through the proxy (`None` outside CI without a server).
async fn proxied_database() -> Option<(String, FaultProxy, String)> {
    let server = chatstore_testkit::require_env("CHATSTORE_TEST_POSTGRES_URL")?;
    let direct = chatstore_testkit::fresh_postgres_database(&server).await;
    let (proxy, via) = FaultProxy::in_front_of(&direct).await.expect("proxy");
    Some((direct, proxy, via))
}

/// Every connection reset by the network (a proxy closing them) costs at most `Unavailable`
/// answers, and the store works again afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_connections_lose_no_acknowledged_write() {
    let Some((_direct, proxy, via)) = proxied_database().await else {
        return;
    };
    survive(&via, || async {
        proxy.reset();
        tokio::time::sleep(Duration::from_millis(200)).await;
        proxy.reset();
    })
    .await;
}

/// Waits until `events` delivers an event of `chat`; panics after `within`.
async fn hear(events: &mut chatstore_core::changes::ChangeStream, chat: &str, within: Duration) {
    use futures::StreamExt;
    tokio::time::timeout(within, async {
        while let Some(event) = events.next().await {
            if event.chat_id.as_deref() == Some(chat) {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("chat {chat} not heard within {within:?}"));
}

/// A writer, and a follower whose change feed listens through `proxy` with a 500 ms
/// heartbeat, subscribed to a user's changes and past hearing a first chat of theirs.
struct Listening {
    writer: Store,
    feed: std::sync::Arc<dyn chatstore_core::changes::ChangeFeed>,
    events: chatstore_core::changes::ChangeStream,
    user: String,
}

impl Listening {
    async fn start(direct: &str, via: String) -> Listening {
        use chatstore_core::changes::{ChangeFilter, subscribe};

        let writer = chatstore_sql::connect(direct, options())
            .await
            .expect("writer");
        let follower = chatstore_sql::connect(
            direct,
            options()
                .listen_url(via)
                .listen_heartbeat(Duration::from_millis(500)),
        )
        .await
        .expect("follower");
        let ada = writer
            .users
            .create(NewUser::new("ada@example.com", "Ada"))
            .await
            .expect("user");
        let feed = follower.changes().expect("feed");
        let events = subscribe(feed.clone(), ChangeFilter::user(&ada.id));
        let mut listening = Listening {
            writer,
            feed,
            events,
            user: ada.id,
        };
        listening
            .write_and_hear("before", Duration::from_secs(10))
            .await;
        listening
    }

    /// Creates a chat titled `title` and waits `within` for its event.
    async fn write_and_hear(&mut self, title: &str, within: Duration) {
        let chat = self.write(title).await;
        hear(&mut self.events, &chat, within).await;
    }

    /// Creates a chat titled `title`; its id.
    async fn write(&self, title: &str) -> String {
        self.writer
            .chats
            .create(NewChat::new(&self.user, title))
            .await
            .expect("chat")
            .id
    }
}

/// The change feed's listening connection dropped silently by the network (the proxy stops
/// forwarding; no FIN or RST arrives, as when a NAT or firewall forgets an idle connection):
/// its heartbeat finds out, the feed stops counting as connected, and once the network is back
/// it reconnects and reads back the chat written meanwhile. Before, it waited for ever while
/// `/health` said it was connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listening_connection_dropped_silently_is_replaced() {
    let Some((direct, proxy, via)) = proxied_database().await else {
        return;
    };
    let mut listening = Listening::start(&direct, via).await;
    proxy.pause();
    let paused = std::time::Instant::now();
    while listening.feed.hub().status().connected {
        assert!(
            paused.elapsed() < Duration::from_secs(10),
            "the feed still counts as connected 10 s into a silent drop"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let during = listening.write("during").await;
    proxy.resume();
    hear(&mut listening.events, &during, Duration::from_secs(30)).await;
    assert!(listening.feed.hub().status().connected);
}

/// A listening connection that stops answering for good while new connections to the same
/// server work (the proxy stalls only the connections open now): the feed replaces it within
/// seconds and reads back the chat written meanwhile. Before, the old connection's `UNLISTEN`
/// (sent by sqlx when the listener is dropped) held the only slot of the listener's pool, and
/// every new `LISTEN` waited for it until TCP gave up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listening_connection_that_stops_answering_does_not_block_its_replacement() {
    let Some((direct, proxy, via)) = proxied_database().await else {
        return;
    };
    let mut listening = Listening::start(&direct, via).await;
    proxy.stall_open();
    listening
        .write_and_hear("during", Duration::from_secs(15))
        .await;
    listening
        .write_and_hear("after", Duration::from_secs(10))
        .await;
}

/// One element of a notification the feed cannot read (an unknown kind: a newer writer, a
/// stray `NOTIFY`) loses nothing: the readable events of the same payload are delivered, and
/// the change the unreadable one stood for is read back from the tables. Before, the whole
/// payload was dropped with a log line and nothing was read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_event_in_a_notification_loses_no_change() {
    use chatstore_core::changes::{ChangeFilter, field, now_ms, subscribe};
    use chatstore_core::{ChangeEvent, ChangeKind};
    use futures::StreamExt;

    let Some(server) = chatstore_testkit::require_env("CHATSTORE_TEST_POSTGRES_URL") else {
        return;
    };
    let db = chatstore_testkit::fresh_postgres_database(&server).await;
    let store = chatstore_sql::connect(&db, options()).await.expect("store");
    let ada = store
        .users
        .create(NewUser::new("ada@example.com", "Ada"))
        .await
        .expect("user");
    let feed = store.changes().expect("feed");
    let mut events = subscribe(feed.clone(), ChangeFilter::user(&ada.id));
    // Connected and caught up before the chats exist: no read-back of the start repeats them.
    let started = std::time::Instant::now();
    while !feed.hub().status().connected {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the feed did not connect within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let named = store
        .chats
        .create(NewChat::new(&ada.id, "named"))
        .await
        .expect("chat");
    let unnamed = store
        .chats
        .create(NewChat::new(&ada.id, "unnamed"))
        .await
        .expect("chat");
    hear(&mut events, &named.id, Duration::from_secs(10)).await;
    hear(&mut events, &unnamed.id, Duration::from_secs(10)).await;

    // A change no readable event names: written to the table without chatstore's NOTIFY.
    let mut conn = sqlx::PgConnection::connect(&db).await.expect("connect");
    sqlx::query("UPDATE chat SET title = 'renamed', updated_at = $1 WHERE id = $2")
        .bind(now_ms() / 1000)
        .bind(&unnamed.id)
        .execute(&mut conn)
        .await
        .expect("update the chat");
    let valid = ChangeEvent::chat_ids(ChangeKind::Updated, &ada.id, &named.id, &[field::TITLE]);
    let mut unknown = serde_json::to_value(ChangeEvent::chat_ids(
        ChangeKind::Updated,
        &ada.id,
        &unnamed.id,
        &[],
    ))
    .expect("encode");
    unknown["kind"] = "renamed".into();
    let payload = serde_json::json!([valid, unknown]).to_string();
    sqlx::query("SELECT pg_notify('chatstore_change', $1)")
        .bind(&payload)
        .execute(&mut conn)
        .await
        .expect("notify");

    let (mut heard_valid, mut heard_unnamed) = (false, false);
    tokio::time::timeout(Duration::from_secs(15), async {
        while !(heard_valid && heard_unnamed) {
            let Some(event) = events.next().await else {
                return;
            };
            heard_valid |= event.key == valid.key;
            heard_unnamed |= event.chat_id.as_deref() == Some(unnamed.id.as_str());
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "within 15 s: the readable event heard {heard_valid}, the unreadable one's chat read \
             back {heard_unnamed}"
        )
    });
    assert!(heard_valid && heard_unnamed, "the feed ended");
}
