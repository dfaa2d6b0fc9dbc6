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
