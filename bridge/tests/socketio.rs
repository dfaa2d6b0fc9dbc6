//! The bridge with a real Socket.IO client (python-socketio 5.16.2, as Open WebUI pins it):
//! who may connect, which envelopes arrive, and that no one hears another user's changes.

mod support;

use std::time::Duration;

use chatstore_core::{NewChat, NewMessage, NewUser, Store, UserPatch, memory};
use support::{Client, SECRET, Transport, is, token, token_with};

const WAIT: Duration = Duration::from_secs(10);

async fn user(store: &Store, email: &str) -> String {
    store
        .users
        .create(NewUser {
            role: Some("user".into()),
            ..NewUser::new(email, "U")
        })
        .await
        .expect("create user")
        .id
}

/// The owner's client receives `chat:list`, `chat:title`, `chat:tags` and, in a joined chat,
/// `chat:message`; another user's client (same bridge) receives none of them. Both transports.
#[tokio::test]
async fn the_owner_hears_chat_events_and_no_one_else_does() {
    let store = memory::store();
    let ada = user(&store, "ada@example.com").await;
    let bob = user(&store, "bob@example.com").await;
    let first = store
        .chats
        .create(NewChat::new(&ada, "first"))
        .await
        .expect("chat");
    let addr = support::serve(store.clone()).await;
    let Some(mut owner) = Client::start(
        addr,
        Some(&token(&ada)),
        Transport::Polling,
        &[first.id.as_str()],
    )
    .await
    else {
        return;
    };
    let joined = owner.expect("joined", WAIT).await;
    assert_eq!(joined["data"]["reply"]["ok"], true, "{joined}");
    assert!(owner.ready().await, "a valid token connects");
    let mut other = Client::start(
        addr,
        Some(&token(&bob)),
        Transport::Websocket,
        &[first.id.as_str()],
    )
    .await
    .expect("client");
    let refused = other.expect("joined", WAIT).await;
    assert_eq!(
        refused["data"]["reply"]["ok"], false,
        "bob cannot join ada's chat"
    );
    assert!(other.ready().await);

    let chat = store
        .chats
        .create(NewChat::new(&ada, "Engines"))
        .await
        .expect("chat");
    owner.envelope(WAIT, is("chat:list", &chat.id)).await;
    support::rename(&store, &chat.id, "Analytical engines").await;
    let title = owner.envelope(WAIT, is("chat:title", &chat.id)).await;
    assert_eq!(title["data"]["data"], "Analytical engines");
    assert!(title["message_id"].is_null());
    store.chats.add_tag(&chat.id, "Work").await.expect("tag");
    let tags = owner.envelope(WAIT, is("chat:tags", &chat.id)).await;
    assert_eq!(tags["data"]["data"], serde_json::json!(["work"]));
    store
        .messages
        .upsert(NewMessage::text(&first.id, "m1", "user", "Hello"))
        .await
        .expect("message");
    let message = owner.envelope(WAIT, is("chat:message", &first.id)).await;
    assert_eq!(message["message_id"], "m1");
    assert_eq!(message["data"]["data"]["content"], "Hello");
    store.chats.delete(&chat.id).await.expect("delete");
    owner.envelope(WAIT, is("chat:list", &chat.id)).await;

    other.assert_hears_no_events("bob").await;
    owner.stop().await;
    other.stop().await;
}

/// A wrong signature, an expired token, an unsigned token, a token of an unknown or pending
/// user, and no token at all are refused, and such clients receive nothing.
#[tokio::test]
async fn bad_tokens_are_refused_and_hear_nothing() {
    let store = memory::store();
    let ada = user(&store, "ada@example.com").await;
    let pending = store
        .users
        .create(NewUser {
            role: Some("pending".into()),
            ..NewUser::new("pat@example.com", "Pat")
        })
        .await
        .expect("pending user")
        .id;
    let addr = support::serve(store.clone()).await;
    let unsigned = {
        // alg "none": header.payload. with an empty signature.
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = b64.encode(format!(r#"{{"id":"{ada}"}}"#));
        format!("{header}.{payload}.")
    };
    let cases: Vec<(&str, Option<String>)> = vec![
        ("wrong key", Some(token_with("not-the-key", &ada, None))),
        (
            "expired",
            Some(token_with(SECRET, &ada, Some(support::now_secs() - 10))),
        ),
        ("unsigned", Some(unsigned)),
        ("unknown user", Some(token("no-such-user"))),
        ("pending user", Some(token(&pending))),
        ("garbage", Some("not a jwt".into())),
        ("no token", None),
    ];
    for (what, token) in cases {
        let Some(mut client) =
            Client::start(addr, token.as_deref(), Transport::Websocket, &[]).await
        else {
            return;
        };
        assert!(!client.ready().await, "{what}: must be refused");
        store
            .chats
            .create(NewChat::new(&ada, what))
            .await
            .expect("chat");
        let heard = client.drain(Duration::from_millis(300)).await;
        assert!(
            heard.iter().all(|l| l["event"] != "events"),
            "{what}: heard {heard:?}"
        );
        client.stop().await;
    }
}

/// A user who becomes pending is disconnected (the session is checked again).
#[tokio::test]
async fn a_user_made_pending_is_disconnected() {
    let store = memory::store();
    let ada = user(&store, "ada@example.com").await;
    let addr = support::serve(store.clone()).await;
    let Some(mut client) = Client::start(addr, Some(&token(&ada)), Transport::Websocket, &[]).await
    else {
        return;
    };
    assert!(client.ready().await);
    store
        .users
        .update(
            &ada,
            UserPatch {
                role: Some("pending".into()),
                ..UserPatch::default()
            },
        )
        .await
        .expect("demote");
    client.expect("disconnect", WAIT).await;
    client.stop().await;
}

/// A chat repository whose `get` takes a while and counts the reads in flight.
struct SlowChatReads {
    inner: std::sync::Arc<dyn chatstore_core::chats::ChatRepo>,
    now: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
    reads: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl chatstore_core::chats::ChatRepo for SlowChatReads {
    async fn create(&self, chat: NewChat) -> chatstore_core::Result<chatstore_core::Chat> {
        self.inner.create(chat).await
    }
    async fn create_many(
        &self,
        chats: Vec<NewChat>,
    ) -> chatstore_core::Result<Vec<chatstore_core::Chat>> {
        self.inner.create_many(chats).await
    }
    async fn get(&self, id: &str) -> chatstore_core::Result<chatstore_core::Chat> {
        use std::sync::atomic::Ordering::SeqCst;
        self.reads.fetch_add(1, SeqCst);
        let now = self.now.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.now.fetch_sub(1, SeqCst);
        self.inner.get(id).await
    }
    async fn update(
        &self,
        id: &str,
        patch: chatstore_core::ChatPatch,
    ) -> chatstore_core::Result<chatstore_core::Chat> {
        self.inner.update(id, patch).await
    }
    async fn delete(&self, id: &str) -> chatstore_core::Result<()> {
        self.inner.delete(id).await
    }
    async fn delete_for_user(&self, user_id: &str) -> chatstore_core::Result<u64> {
        self.inner.delete_for_user(user_id).await
    }
    async fn list(
        &self,
        query: &chatstore_core::ChatQuery,
    ) -> chatstore_core::Result<chatstore_core::Page<chatstore_core::ChatSummary>> {
        self.inner.list(query).await
    }
    async fn set_tags(
        &self,
        id: &str,
        names: &[String],
    ) -> chatstore_core::Result<chatstore_core::Chat> {
        self.inner.set_tags(id, names).await
    }
    async fn add_tag(&self, id: &str, name: &str) -> chatstore_core::Result<chatstore_core::Chat> {
        self.inner.add_tag(id, name).await
    }
    async fn remove_tag(
        &self,
        id: &str,
        name_or_id: &str,
    ) -> chatstore_core::Result<chatstore_core::Chat> {
        self.inner.remove_tag(id, name_or_id).await
    }
    async fn scan(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> chatstore_core::Result<Vec<chatstore_core::Chat>> {
        self.inner.scan(after, limit).await
    }
}

/// A client sending many chat joins without waiting for the answers has at most
/// `JOINS_IN_FLIGHT` (4) store reads in flight; the joins beyond are answered `{ok: false,
/// error}` at once, and the socket can join again afterwards. A chat id that is no id is
/// refused before the store is read.
#[tokio::test]
async fn a_join_flood_reads_the_store_a_few_at_a_time() {
    use std::sync::atomic::Ordering::SeqCst;
    let memory = memory::store();
    let ada = user(&memory, "ada@example.com").await;
    let chat = memory
        .chats
        .create(NewChat::new(&ada, "Engines"))
        .await
        .expect("chat");
    let slow = std::sync::Arc::new(SlowChatReads {
        inner: memory.chats.clone(),
        now: 0.into(),
        most: 0.into(),
        reads: 0.into(),
    });
    let parts = chatstore_core::StoreParts {
        chats: slow.clone(),
        ..memory.parts()
    };
    let store = memory.rebuild("slow chats", memory.capabilities(), parts);
    let addr = support::serve(store).await;
    let Some(mut flood) = Client::start_flooding(addr, &token(&ada), &chat.id, 60).await else {
        return;
    };
    let flooded = flood.expect("flooded", Duration::from_secs(40)).await;
    let replies = flooded["data"]["replies"].as_array().expect("replies");
    assert_eq!(replies.len(), 60, "every join is answered: {flooded}");
    assert!(
        slow.most.load(SeqCst) <= 4,
        "{} chat reads were in flight at once",
        slow.most.load(SeqCst)
    );
    assert!(
        replies.iter().any(|r| r["ok"] == true),
        "some joins went through: {flooded}"
    );
    let turned_away = replies.iter().filter(|r| r["ok"] == false).count();
    assert!(
        replies
            .iter()
            .filter(|r| r["ok"] == false)
            .all(|r| r["error"].as_str().is_some_and(|e| e.contains("at once"))),
        "a join turned away says why: {flooded}"
    );
    assert!(turned_away > 0, "no join was turned away: {flooded}");
    assert!(flood.ready().await);
    flood.stop().await;

    let reads = slow.reads.load(SeqCst);
    let Some(mut bad) = Client::start(
        addr,
        Some(&token(&ada)),
        Transport::Websocket,
        &["../etc", chat.id.as_str()],
    )
    .await
    else {
        return;
    };
    let refused = bad.expect("joined", WAIT).await;
    assert_eq!(refused["data"]["reply"]["ok"], false, "{refused}");
    assert!(
        refused["data"]["reply"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("chat_id")),
        "{refused}"
    );
    let joined = bad.expect("joined", WAIT).await;
    assert_eq!(joined["data"]["reply"]["ok"], true, "{joined}");
    assert_eq!(
        slow.reads.load(SeqCst),
        reads + 1,
        "only the valid chat id was read"
    );
    bad.stop().await;
}

/// A user created long ago, so any activity written now stands out.
async fn idle_user(store: &Store, email: &str) -> String {
    store
        .users
        .create(NewUser {
            role: Some("user".into()),
            created_at: Some(1_000),
            ..NewUser::new(email, "U")
        })
        .await
        .expect("create user")
        .id
}

async fn last_active(store: &Store, user: &str) -> i64 {
    store.users.get(user).await.expect("user").last_active_at
}

/// A heartbeat sent as Open WebUI's web client sends it (no ack asked for) records the
/// user's activity, `updated_at` untouched; a second one within the interval writes nothing.
#[tokio::test]
async fn a_heartbeat_records_the_users_activity_once_per_interval() {
    let store = memory::store();
    let ada = idle_user(&store, "ada@example.com").await;
    let config = chatstore_bridge::BridgeConfig::default()
        .secret_key(SECRET)
        .activity_interval(Some(Duration::from_secs(3600)));
    let addr = support::serve_with(store.clone(), config).await;
    let Some(mut client) = Client::start(addr, Some(&token(&ada)), Transport::Websocket, &[]).await
    else {
        return;
    };
    assert!(client.ready().await);
    let before = support::now_secs() as i64;
    client.send("heartbeat").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while last_active(&store, &ada).await < before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the heartbeat wrote no activity within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let user = store.users.get(&ada).await.expect("user");
    assert!(user.last_active_at <= support::now_secs() as i64);
    assert_eq!(user.updated_at, 1_000, "an activity is no update");

    store.users.set_last_active(&ada, 5).await.expect("reset");
    client.heartbeat().await;
    assert_eq!(
        last_active(&store, &ada).await,
        5,
        "a second heartbeat within the interval writes nothing"
    );
    client.stop().await;
}

/// With a zero interval every heartbeat writes; with activity off none does.
#[tokio::test]
async fn the_activity_interval_decides_which_heartbeats_write() {
    let store = memory::store();
    let ada = idle_user(&store, "ada@example.com").await;
    let bob = idle_user(&store, "bob@example.com").await;
    let every = chatstore_bridge::BridgeConfig::default()
        .secret_key(SECRET)
        .activity_interval(Some(Duration::ZERO));
    let off = chatstore_bridge::BridgeConfig::default()
        .secret_key(SECRET)
        .activity_interval(None);
    let every = support::serve_with(store.clone(), every).await;
    let off = support::serve_with(store.clone(), off).await;
    let Some(mut eager) = Client::start(every, Some(&token(&ada)), Transport::Polling, &[]).await
    else {
        return;
    };
    let mut silent = Client::start(off, Some(&token(&bob)), Transport::Websocket, &[])
        .await
        .expect("client");
    assert!(eager.ready().await && silent.ready().await);
    let before = support::now_secs() as i64;
    for _ in 0..2 {
        store.users.set_last_active(&ada, 5).await.expect("reset");
        eager.heartbeat().await;
        assert!(last_active(&store, &ada).await >= before);
    }
    silent.heartbeat().await;
    silent.heartbeat().await;
    assert_eq!(last_active(&store, &bob).await, 1_000, "activity is off");
    eager.stop().await;
    silent.stop().await;
}

/// Every `events:channel` line a client printed within `window`.
async fn channel_events(client: &mut Client, window: Duration) -> Vec<serde_json::Value> {
    client
        .drain(window)
        .await
        .into_iter()
        .filter(|l| l["event"] == "events:channel")
        .map(|l| l["data"].clone())
        .collect()
}

/// The members of a channel hear one another typing (with who types, as Open WebUI sends
/// it, renamed as soon as the user is), a user outside the channel neither hears it nor reaches the members; `last_read_at`
/// records the read; a channel created after connecting is heard once both clients sent
/// `join-channels`.
#[tokio::test]
async fn channel_members_hear_typing_and_reads_are_recorded() {
    let store = memory::store();
    let ada = user(&store, "ada@example.com").await;
    let bob = user(&store, "bob@example.com").await;
    let eve = user(&store, "eve@example.com").await;
    let channels = store.workspace().expect("workspace").channels();
    let team = channels
        .create(chatstore_core::models::NewChannel {
            user_id: ada.clone(),
            name: "team".into(),
            kind: Some("group".into()),
            member_ids: vec![bob.clone()],
            created_at: Some(1_000),
            ..Default::default()
        })
        .await
        .expect("channel");
    let addr = support::serve(store.clone()).await;
    let Some(mut a) = Client::start(addr, Some(&token(&ada)), Transport::Websocket, &[]).await
    else {
        return;
    };
    let mut b = Client::start(addr, Some(&token(&bob)), Transport::Polling, &[])
        .await
        .expect("client");
    let mut e = Client::start(addr, Some(&token(&eve)), Transport::Websocket, &[])
        .await
        .expect("client");
    assert!(a.ready().await && b.ready().await && e.ready().await);

    let typing = |channel: &str| {
        format!(
            r#"emit events:channel {{"channel_id": "{channel}", "data": {{"type": "typing", "data": {{"typing": true}}}}}}"#
        )
    };
    // The rooms are joined just after the connect: typed until heard.
    let deadline = tokio::time::Instant::now() + WAIT;
    let heard = 'heard: loop {
        b.send(&typing(&team.id)).await;
        if let Some(event) = channel_events(&mut a, Duration::from_millis(200))
            .await
            .into_iter()
            .next()
        {
            break 'heard serde_json::json!({ "data": event });
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ada never heard bob type"
        );
    };
    assert_eq!(heard["data"]["channel_id"], team.id.as_str(), "{heard}");
    assert_eq!(heard["data"]["data"]["type"], "typing");
    assert_eq!(heard["data"]["user"]["id"], bob.as_str());
    assert_eq!(heard["data"]["user"]["name"], "U");
    // Renamed: the next typing shows the new name (the bridge hears the change on the feed).
    store
        .users
        .update(
            &bob,
            UserPatch {
                name: Some("Bob".into()),
                ..UserPatch::default()
            },
        )
        .await
        .expect("rename");
    let deadline = tokio::time::Instant::now() + WAIT;
    'renamed: loop {
        b.send(&typing(&team.id)).await;
        for event in channel_events(&mut a, Duration::from_millis(200)).await {
            if event["user"]["name"] == "Bob" {
                break 'renamed;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "typing still shows the old name"
        );
    }
    assert!(
        channel_events(&mut e, Duration::from_millis(500))
            .await
            .is_empty(),
        "eve is no member"
    );
    e.send(&typing(&team.id)).await;
    let leaked = channel_events(&mut a, Duration::from_millis(500)).await;
    assert!(
        leaked.iter().all(|v| v["user"]["id"] != eve.as_str()),
        "eve reached the members: {leaked:?}"
    );

    a.send(&format!(
        r#"emit events:channel {{"channel_id": "{}", "data": {{"type": "last_read_at"}}}}"#,
        team.id
    ))
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let member = channels
            .member(&team.id, &ada)
            .await
            .expect("read")
            .expect("ada is a member");
        if member.last_read_at.is_some_and(|t| t > 1_000) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the read was not recorded: {member:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let later = channels
        .create(chatstore_core::models::NewChannel {
            user_id: bob.clone(),
            name: "later".into(),
            kind: Some("group".into()),
            member_ids: vec![ada.clone()],
            ..Default::default()
        })
        .await
        .expect("channel");
    // Both were connected before the channel existed; each client asks to join again.
    for (client, id) in [(&mut a, &ada), (&mut b, &bob)] {
        client
            .send(&format!(
                r#"emit join-channels {{"auth": {{"token": "{}"}}}}"#,
                token(id)
            ))
            .await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    'heard: loop {
        b.send(&typing(&later.id)).await;
        for event in channel_events(&mut a, Duration::from_millis(200)).await {
            if event["channel_id"] == later.id.as_str() {
                break 'heard;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ada never joined the later channel"
        );
    }
    a.stop().await;
    b.stop().await;
    e.stop().await;
}
