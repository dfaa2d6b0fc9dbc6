//! The bridge on PocketBase with a real Socket.IO client: two bridges (replicas) on one server
//! both deliver, and a killed and restarted PocketBase loses no event.

mod support;

use std::time::Duration;

use chatstore_core::{NewChat, NewUser, Store};
use chatstore_pocketbase::{PocketBase, PocketBaseConfig};
use chatstore_testkit::{POCKETBASE_EMAIL, POCKETBASE_PASSWORD, PrivatePocketBase};
use support::{Client, Transport, is, token};

/// How long a client waits for an envelope (it returns as soon as one arrives): generous, for a
/// PocketBase restart and the listener's reconnection on a loaded 2-core machine.
const WAIT: Duration = Duration::from_secs(60);

async fn open(url: &str, prefix: &str) -> Store {
    PocketBase::connect(
        PocketBaseConfig::new(url, POCKETBASE_EMAIL, POCKETBASE_PASSWORD).with_prefix(prefix),
    )
    .await
    .expect("connect to the private PocketBase")
    .store()
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

/// Two bridges on one PocketBase, each with its own store and realtime listener: a write
/// through a third store reaches the clients of both; after the server is killed and started
/// again, writes made straight away still reach both (live or caught up).
#[tokio::test]
async fn two_bridges_on_one_pocketbase_deliver_across_a_restart() {
    let Some(mut server) = PrivatePocketBase::start() else {
        return;
    };
    let url = server.http_url();
    let writer = open(&url, "br_").await;
    let ada = user(&writer).await;
    let a = support::serve(open(&url, "br_").await).await;
    let b = support::serve(open(&url, "br_").await).await;
    let Some(mut client_a) = Client::start(a, Some(&token(&ada)), Transport::Websocket, &[]).await
    else {
        return;
    };
    let mut client_b = Client::start(b, Some(&token(&ada)), Transport::Polling, &[])
        .await
        .expect("client");
    assert!(client_a.ready().await && client_b.ready().await);
    let chat = writer
        .chats
        .create(NewChat::new(&ada, "before"))
        .await
        .expect("chat");
    client_a.envelope(WAIT, is("chat:list", &chat.id)).await;
    client_b.envelope(WAIT, is("chat:list", &chat.id)).await;

    server.kill();
    server.start_again();
    let writer = open(&url, "br_").await;
    let after = writer
        .chats
        .create(NewChat::new(&ada, "after the restart"))
        .await
        .expect("chat after the restart");
    writer.chats.delete(&chat.id).await.expect("delete");
    for client in [&mut client_a, &mut client_b] {
        client.envelope(WAIT, is("chat:list", &after.id)).await;
        client.envelope(WAIT, is("chat:list", &chat.id)).await;
    }
    client_a.stop().await;
    client_b.stop().await;
}

/// On PocketBase, with the writes made through another store (replica): the owner hears every
/// envelope kind, another user nothing.
#[tokio::test]
async fn every_envelope_kind_on_pocketbase_reaches_only_the_owner() {
    let Some(server) = PrivatePocketBase::start() else {
        return;
    };
    let url = server.http_url();
    let writer = open(&url, "bk_").await;
    support::every_envelope_kind_reaches_only_the_owner(&writer, open(&url, "bk_").await).await;
    drop(server);
}
