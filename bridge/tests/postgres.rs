//! The bridge on PostgreSQL with a real Socket.IO client: replicas hear each other, and a
//! killed listening connection loses nothing.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use chatstore_core::{NewChat, NewUser, Store};
use chatstore_sql::{SqlOptions, connect};
use sqlx::Connection;
use support::{Client, Transport, is, token_for};

const WAIT: Duration = Duration::from_secs(15);

async fn open(url: &str) -> Store {
    connect(url, SqlOptions::default().max_connections(4))
        .await
        .expect("open the test database")
}

/// Gives `user` a new session stamp, as Open WebUI does to revoke the user's sessions.
async fn rotate_session_stamp(url: &str, user: &str) {
    let mut admin = sqlx::PgConnection::connect(url).await.expect("admin");
    sqlx::query("UPDATE auth SET session_stamp = $1 WHERE id = $2")
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(user)
        .execute(&mut admin)
        .await
        .expect("rotate the stamp");
    let _ = admin.close().await;
}

async fn user(store: &Store) -> String {
    store
        .users
        .create(NewUser {
            role: Some("user".into()),
            ..NewUser::new("ada@example.com", "Ada")
        })
        .await
        .expect("user")
        .id
}

/// Two bridges on one database (each with its own store, pool and LISTEN connection, as two
/// replicas have): a write through a third store, then through one bridge's store, reaches
/// the clients of both bridges.
#[tokio::test]
async fn two_bridges_on_one_postgres_both_deliver() {
    let Some(url) = support::postgres_database().await else {
        return;
    };
    let writer = open(&url).await;
    let ada = user(&writer).await;
    let store_a = open(&url).await;
    let store_b = open(&url).await;
    let a = support::serve(store_a.clone()).await;
    let b = support::serve(store_b).await;
    let token = token_for(&writer, &ada).await;
    let Some(mut client_a) = Client::start(a, Some(&token), Transport::Websocket, &[]).await else {
        return;
    };
    let mut client_b = Client::start(b, Some(&token), Transport::Polling, &[])
        .await
        .expect("client");
    assert!(client_a.ready().await && client_b.ready().await);
    for via in [&writer, &store_a] {
        let chat = via
            .chats
            .create(NewChat::new(&ada, "replicated"))
            .await
            .expect("chat");
        client_a.envelope(WAIT, is("chat:list", &chat.id)).await;
        client_b.envelope(WAIT, is("chat:list", &chat.id)).await;
    }
    client_a.stop().await;
    client_b.stop().await;
    support::drop_database(&url).await;
}

/// On PostgreSQL, with the writes made through another store (replica): the owner hears every
/// envelope kind, another user nothing.
#[tokio::test]
async fn every_envelope_kind_on_postgres_reaches_only_the_owner() {
    let Some(url) = support::postgres_database().await else {
        return;
    };
    let writer = open(&url).await;
    support::every_envelope_kind_reaches_only_the_owner(&writer, open(&url).await).await;
    support::drop_database(&url).await;
}

/// The bridge's LISTEN connection is killed (`pg_terminate_backend`) while another process
/// keeps writing: the client still receives a `chat:list` for every chat created.
#[tokio::test]
async fn a_killed_listener_loses_no_event() {
    let Some(url) = support::postgres_database().await else {
        return;
    };
    let writer = open(&url).await;
    let ada = user(&writer).await;
    let addr = support::serve(open(&url).await).await;
    let token = token_for(&writer, &ada).await;
    let Some(mut client) = Client::start(addr, Some(&token), Transport::Websocket, &[]).await
    else {
        return;
    };
    assert!(client.ready().await);
    let writes = {
        let writer = writer.clone();
        let ada = ada.clone();
        tokio::spawn(async move {
            let mut ids = BTreeSet::new();
            for i in 0..40 {
                let chat = writer
                    .chats
                    .create(NewChat::new(&ada, format!("chat {i}")))
                    .await
                    .expect("chat");
                ids.insert(chat.id);
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            ids
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut admin = sqlx::PgConnection::connect(&url).await.expect("admin");
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = $1 AND datname = current_database()) t",
    )
    .bind(chatstore_sql::changes::LISTENER_APPLICATION_NAME)
    .fetch_one(&mut admin)
    .await
    .expect("terminate the listener");
    assert_eq!(killed, 1);
    let _ = admin.close().await;
    let ids = writes.await.expect("writer");
    let mut seen = BTreeSet::new();
    while !ids.is_subset(&seen) {
        let envelope = client
            .envelope(WAIT, |v| v["data"]["type"] == "chat:list")
            .await;
        if let Some(id) = envelope["chat_id"].as_str() {
            seen.insert(id.to_owned());
        }
    }
    client.stop().await;
    support::drop_database(&url).await;
}

/// Open WebUI's session stamp: a token must carry the user's current `auth.session_stamp`. One
/// without a stamp, or with another, is refused; rotating the stamp (as Open WebUI does to
/// revoke a user's sessions) disconnects a connected socket at its next check.
#[tokio::test]
async fn a_revoked_session_is_refused_and_disconnected() {
    let Some(url) = support::postgres_database().await else {
        return;
    };
    let store = open(&url).await;
    let ada = user(&store).await;
    let stamp = store
        .users
        .session_stamp(&ada)
        .await
        .expect("read the stamp")
        .expect("the SQL store gives every new user a stamp");
    let config = chatstore_bridge::BridgeConfig::default()
        .secret_key(support::SECRET)
        .recheck_interval(Duration::from_millis(300));
    let addr = support::serve_with(store.clone(), config).await;
    let forged = |session_stamp: Option<&str>| {
        chatstore_bridge::sign_token(
            support::SECRET,
            &chatstore_bridge::Claims {
                id: ada.clone(),
                exp: None,
                session_stamp: session_stamp.map(str::to_owned),
            },
        )
        .expect("sign")
    };
    for (what, token) in [
        ("no stamp", forged(None)),
        ("another stamp", forged(Some("not-the-stamp"))),
    ] {
        let Some(mut client) = Client::start(addr, Some(&token), Transport::Websocket, &[]).await
        else {
            return;
        };
        assert!(!client.ready().await, "{what}: must be refused");
        client.stop().await;
    }

    let Some(mut client) =
        Client::start(addr, Some(&forged(Some(&stamp))), Transport::Websocket, &[]).await
    else {
        return;
    };
    assert!(client.ready().await, "the current stamp is accepted");
    rotate_session_stamp(&url, &ada).await;
    client.expect("disconnect", WAIT).await;
    client.stop().await;
    support::drop_database(&url).await;
}

/// A store that cannot answer while a socket's session is checked again (the database
/// restarting, the network to it down) keeps the socket, which is checked again at the next
/// tick; before, every socket whose check fell in the outage was disconnected, and all came
/// back at once to a database just recovering. Once the store answers, a revoked session is
/// still disconnected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_the_store_cannot_answer_keeps_the_socket() {
    let Some(url) = support::postgres_database().await else {
        return;
    };
    let (proxy, via) = chatstore_testkit::FaultProxy::in_front_of(&url)
        .await
        .expect("proxy");
    let store = connect(
        &via,
        SqlOptions::default()
            .max_connections(2)
            .acquire_timeout(Duration::from_millis(500))
            .listen_url(url.clone()),
    )
    .await
    .expect("open through the proxy");
    let ada = user(&store).await;
    let config = chatstore_bridge::BridgeConfig::default()
        .secret_key(support::SECRET)
        .recheck_interval(Duration::from_millis(300));
    let addr = support::serve_with(store.clone(), config).await;
    let token = token_for(&store, &ada).await;
    let Some(mut client) = Client::start(addr, Some(&token), Transport::Websocket, &[]).await
    else {
        return;
    };
    assert!(client.ready().await, "connected");

    proxy.pause();
    proxy.reset();
    let heard = client.drain(Duration::from_secs(3)).await;
    assert!(
        heard.iter().all(|l| l["event"] != "disconnect"),
        "disconnected while the store could not answer: {heard:?}"
    );
    proxy.resume();
    rotate_session_stamp(&url, &ada).await;
    client.expect("disconnect", WAIT).await;
    client.stop().await;
    support::drop_database(&url).await;
}

/// `/health` answers 503 until the store's feed has connected and read back what it missed:
/// a bridge whose listening connection cannot get through (a server that accepts and never
/// answers) is not sent clients as healthy meanwhile.
#[tokio::test]
async fn health_waits_for_the_feed_to_connect() {
    let Some(url) = support::postgres_database().await else {
        return;
    };
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = silent.local_addr().expect("address").port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let store = connect(
        &url,
        SqlOptions::default()
            .max_connections(4)
            .listen_url(format!("postgres://postgres@127.0.0.1:{port}/db")),
    )
    .await
    .expect("open the test database");
    let addr = support::serve(store).await;
    let answer = reqwest::get(format!("http://{addr}/health"))
        .await
        .expect("GET /health");
    assert_eq!(answer.status().as_u16(), 503);
    let body: serde_json::Value = answer.json().await.expect("JSON body");
    assert_eq!(body["feed_connected"], false, "{body}");
    held.abort();
    support::drop_database(&url).await;
}

/// On PostgreSQL, a heartbeat through one bridge writes the user's `last_active_at` into
/// Open WebUI's `user` row (`updated_at` untouched), where another replica reads it.
#[tokio::test]
async fn a_heartbeat_records_the_users_activity_on_postgres() {
    let Some(url) = support::postgres_database().await else {
        return;
    };
    let writer = open(&url).await;
    let ada = user(&writer).await;
    writer.users.set_last_active(&ada, 5).await.expect("idle");
    let updated = writer.users.get(&ada).await.expect("user").updated_at;
    let addr = support::serve(open(&url).await).await;
    let token = token_for(&writer, &ada).await;
    let Some(mut client) = Client::start(addr, Some(&token), Transport::Websocket, &[]).await
    else {
        return;
    };
    assert!(client.ready().await);
    let before = support::now_secs() as i64;
    client.heartbeat().await;
    let user = writer.users.get(&ada).await.expect("user");
    assert!(
        user.last_active_at >= before,
        "activity {} before the heartbeat at {before}",
        user.last_active_at
    );
    assert_eq!(user.updated_at, updated, "an activity is no update");
    client.stop().await;
    drop(writer);
    support::drop_database(&url).await;
}
