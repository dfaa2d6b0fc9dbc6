//! Client behaviour: errors by kind for an unreachable server and bad credentials, and bulk
//! writes that are all or nothing whatever their size, in records or in bytes.

mod common;

use std::time::{Duration, Instant};

use chatstore_core::{ErrorKind, NewChat, NewUser, PageRequest};
use chatstore_pocketbase::{PocketBase, PocketBaseConfig};

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    // Port 9 (discard) on loopback: nothing listens, the connection is refused.
    let mut config = PocketBaseConfig::new("http://127.0.0.1:9", "a@x.io", "pw");
    config.timeout = Duration::from_secs(2);
    let err = PocketBase::connect(config)
        .await
        .expect_err("nobody listens");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn wrong_credentials_are_a_clear_error() {
    let Some(mut config) = common::config() else {
        return;
    };
    config.admin_password = "not-the-password".into();
    config.drop_collections_on_drop = false;
    let err = PocketBase::connect(config).await.expect_err("bad password");
    assert_eq!(err.kind(), ErrorKind::Backend);
    assert!(err.to_string().contains("ADMIN_PASSWORD"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_refreshes_and_calls_go_on() {
    let Some(pb) = common::backend().await else {
        return;
    };
    let store = pb.store();
    store
        .users
        .create(NewUser::new("a@x.io", "A").with_id("u1"))
        .await
        .expect("create");
    pb.client().refresh_token().await.expect("auth-refresh");
    assert_eq!(
        store.users.get("u1").await.expect("get after refresh").id,
        "u1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_writes_beyond_one_batch_are_all_or_nothing() {
    let Some(pb) = common::backend().await else {
        return;
    };
    let store = pb.store();
    let users = |n: usize| -> Vec<NewUser> {
        (0..n)
            .map(|i| {
                NewUser::new(format!("user{i}@x.io"), format!("U{i}")).with_id(format!("u{i:05}"))
            })
            .collect()
    };
    for n in [300, 1500] {
        let mut bad = users(n);
        bad[n - 1].email = "USER0@x.io".into();
        let err = store
            .users
            .create_many(bad)
            .await
            .expect_err("duplicate email");
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
        let page = store.users.list(PageRequest::first(1)).await.expect("list");
        assert_eq!(
            page.total, 0,
            "nothing of the failed bulk write of {n} is kept"
        );
    }
    let started = Instant::now();
    store
        .users
        .create_many(users(1000))
        .await
        .expect("one batch");
    let one_batch = started.elapsed();
    let page = store
        .users
        .list(PageRequest::new(990, 20))
        .await
        .expect("list");
    assert_eq!(page.total, 1000);
    assert_eq!(page.items.len(), 10);
    eprintln!("create_many of 1000 users (one batch request): {one_batch:?}");
}

/// A chat whose one message holds `kib` KiB of text (the blob and the message record each
/// carry it, so an import sends it twice).
fn chat_with_text(user: &str, kib: usize) -> NewChat {
    let text = "x".repeat(kib << 10);
    let mut chat = NewChat::new(user, "big");
    chat.chat = Some(
        serde_json::json!({"history": {"currentId": "m1", "messages": {
        "m1": {"id": "m1", "role": "user", "content": text, "parentId": null,
               "childrenIds": [], "timestamp": 1_700_000_000}}}}),
    );
    chat
}

/// A store on a private server, as its superuser.
async fn connect(server: &chatstore_testkit::PrivatePocketBase) -> PocketBase {
    connect_result(server).await.expect("connect")
}

/// [`connect`], its error kept.
async fn connect_result(
    server: &chatstore_testkit::PrivatePocketBase,
) -> chatstore_core::Result<PocketBase> {
    use chatstore_testkit::{POCKETBASE_EMAIL, POCKETBASE_PASSWORD};
    PocketBase::connect(PocketBaseConfig::new(
        server.http_url(),
        POCKETBASE_EMAIL,
        POCKETBASE_PASSWORD,
    ))
    .await
}

/// An HTTP client and the superuser's answer to logging in on `server` (its `token` and
/// `record`).
async fn log_in(
    server: &chatstore_testkit::PrivatePocketBase,
) -> (reqwest::Client, serde_json::Value) {
    use chatstore_testkit::{POCKETBASE_EMAIL, POCKETBASE_PASSWORD};
    let http = reqwest::Client::new();
    let auth: serde_json::Value = http
        .post(format!(
            "{}/api/collections/_superusers/auth-with-password",
            server.http_url()
        ))
        .json(&serde_json::json!({"identity": POCKETBASE_EMAIL, "password": POCKETBASE_PASSWORD}))
        .send()
        .await
        .expect("log in")
        .json()
        .await
        .expect("auth answer");
    (http, auth)
}

/// A private server whose batch API takes at most `max_body_size` bytes a request (an
/// operator's setting; 0, the default, is 128 MiB), and a store on it.
async fn server_taking_batches_of(
    max_body_size: u64,
) -> Option<(chatstore_testkit::PrivatePocketBase, PocketBase)> {
    use chatstore_testkit::PrivatePocketBase;
    let server = PrivatePocketBase::start()?;
    let (http, auth) = log_in(&server).await;
    let status = http
        .patch(format!("{}/api/settings", server.http_url()))
        .header("Authorization", auth["token"].as_str().expect("token"))
        .json(
            &serde_json::json!({"batch": {"enabled": true, "maxRequests": 1000,
                                            "timeout": 60, "maxBodySize": max_body_size}}),
        )
        .send()
        .await
        .expect("settings")
        .status();
    assert!(status.is_success(), "setting the batch limit: {status}");
    let pb = connect(&server).await;
    Some((server, pb))
}

/// An import larger than the server's batch API takes (beyond it PocketBase cuts the
/// connection, which reads as a server gone) arrives whole through the tx route. Before,
/// `create_many` failed `Unavailable` however often it was sent again, so a migration batch of
/// large chats (Open WebUI keeps pasted images in the chat) could never be copied. The server
/// here takes 4 MiB a batch; PocketBase's default is 128 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chats_beyond_a_batchs_bytes_are_created_in_one_transaction() {
    let Some((_server, pb)) = server_taking_batches_of(4 << 20).await else {
        return;
    };
    assert_eq!(pb.client().batch_max_bytes(), 25 << 17, "100/128 of 4 MiB");
    let store = pb.store();
    // Three chats of 1 MiB of text: 6 MiB in one batch.
    let created = store
        .chats
        .create_many((0..3).map(|_| chat_with_text("u1", 1024)).collect())
        .await
        .expect("an import of 6 MiB");
    for chat in &created {
        let messages = store.messages.list(&chat.id).await.expect("messages");
        assert_eq!(messages.len(), 1);
        assert_eq!(
            messages[0].content.as_str().map(str::len),
            Some(1 << 20),
            "the whole message"
        );
        let stored = store.chats.get(&chat.id).await.expect("the chat");
        assert_eq!(
            stored.chat["history"]["messages"]["m1"]["content"]
                .as_str()
                .map(str::len),
            Some(1 << 20),
            "the whole blob"
        );
    }
}

/// Files whose bytes together are more than a batch takes are refused before anything is
/// sent, with a message that says what to do, and nothing is stored: the caller (a migration)
/// then stores them one by one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_beyond_a_batchs_bytes_are_refused_whole() {
    use chatstore_core::NewFile;
    let Some((_server, pb)) = server_taking_batches_of(4 << 20).await else {
        return;
    };
    let store = pb.store();
    let files: Vec<NewFile> = (0..3)
        .map(|i| {
            NewFile::new("u1", format!("f{i}.bin"), vec![7u8; 2 << 20]).with_id(format!("f{i}"))
        })
        .collect();
    let err = store
        .files
        .put_many(files.clone())
        .await
        .expect_err("6 MiB of files in one batch");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("write fewer"), "{err}");
    for f in &files {
        let id = f.id.as_deref().expect("id");
        let missing = store.files.get(id).await.expect_err("nothing stored");
        assert_eq!(missing.kind(), ErrorKind::NotFound);
    }
    // One by one, as a migration then writes them, they are stored.
    for f in files {
        store.files.put(f).await.expect("one file");
    }
}

/// Sets the superuser's password on `server` to what it is (an operator rotating it would
/// change it): PocketBase renews the record's token key, so every token issued before stops
/// working.
async fn invalidate_tokens(server: &chatstore_testkit::PrivatePocketBase) {
    use chatstore_testkit::POCKETBASE_PASSWORD;
    let (http, auth) = log_in(server).await;
    let (token, id) = (
        auth["token"].as_str().expect("token"),
        auth["record"]["id"].as_str().expect("record id"),
    );
    let status = http
        .patch(format!(
            "{}/api/collections/_superusers/records/{id}",
            server.http_url()
        ))
        .header("Authorization", token)
        .json(&serde_json::json!({
            "password": POCKETBASE_PASSWORD,
            "passwordConfirm": POCKETBASE_PASSWORD,
        }))
        .send()
        .await
        .expect("set the password")
        .status();
    assert!(status.is_success(), "setting the password: {status}");
}

/// After the superuser's tokens were invalidated on the server, PocketBase answers chatstore's
/// collections (only superusers may use them) with 403 as to a guest, not with the 401 of its
/// superuser-only routes, and a file token made before reads every file as missing. The store
/// logs in again, or takes a fresh file token, and reads, writes, batches and file reads go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_go_on_after_the_tokens_are_invalidated_on_the_server() {
    use chatstore_core::NewFile;
    use chatstore_testkit::PrivatePocketBase;
    let Some(server) = PrivatePocketBase::start() else {
        return;
    };
    let pb = connect(&server).await;
    let store = pb.store();
    store
        .users
        .create(NewUser::new("ada@example.com", "Ada").with_id("u1"))
        .await
        .expect("create");
    let file = store
        .files
        .put(NewFile::new("u1", "notes.txt", b"kept".to_vec()))
        .await
        .expect("put");
    assert_eq!(store.files.read(&file.id).await.expect("read"), b"kept");

    invalidate_tokens(&server).await;
    assert_eq!(
        store.users.get("u1").await.expect("a read").name,
        "Ada",
        "a read after the invalidation"
    );
    invalidate_tokens(&server).await;
    store
        .users
        .create_many(vec![
            NewUser::new("bob@example.com", "Bob").with_id("u2"),
            NewUser::new("cy@example.com", "Cy").with_id("u3"),
        ])
        .await
        .expect("a batch after the invalidation");
    invalidate_tokens(&server).await;
    assert_eq!(
        store.files.read(&file.id).await.expect("a file read"),
        b"kept",
        "a file read with the file token made before"
    );
    invalidate_tokens(&server).await;
    store
        .files
        .put(NewFile::new("u1", "more.txt", b"more".to_vec()))
        .await
        .expect("a file put after the invalidation");
    assert_eq!(
        store
            .users
            .list(PageRequest::default())
            .await
            .expect("list")
            .items
            .len(),
        3
    );
}

/// A server whose routes are of another version, or that was given `chatstore.pb.js` without
/// the modules it loads, is refused at start-up, and before anything is changed on it: an
/// older adapter restarting during an upgrade imported its own schema first (replacing every
/// collection's indexes with its own) and refused only then, and a server without the modules
/// passed the check and failed every write afterwards as bad input.
#[tokio::test]
async fn a_server_with_other_or_partial_routes_is_refused_before_any_change() {
    use chatstore_testkit::PrivatePocketBase;
    let shipped = chatstore_testkit::hooks_dir().join("chatstore.pb.js");
    let routes = std::fs::read_to_string(&shipped).expect("the routes");
    let version = chatstore_pocketbase::schema::HOOKS_VERSION;
    let older = routes.replace(
        &format!("version: {version}"),
        &format!("version: {}", version - 1),
    );
    assert_ne!(older, routes, "the version is where this test looks for it");
    let older_refused = format!("version {}", version - 1);
    for (files, why) in [
        (vec![("chatstore.pb.js", routes.clone())], "does not serve"),
        (
            vec![
                ("chatstore.pb.js", older),
                (
                    "chatstore_tags.js",
                    std::fs::read_to_string(
                        chatstore_testkit::hooks_dir().join("chatstore_tags.js"),
                    )
                    .expect("tags module"),
                ),
                (
                    "chatstore_changes.js",
                    std::fs::read_to_string(
                        chatstore_testkit::hooks_dir().join("chatstore_changes.js"),
                    )
                    .expect("changes module"),
                ),
            ],
            older_refused.as_str(),
        ),
    ] {
        let hooks = chatstore_testkit::scratch_folder("chatstore-pocketbase-tests", "hooks");
        for (name, text) in &files {
            std::fs::write(hooks.join(name), text).expect("write a hook");
        }
        let Some(server) = PrivatePocketBase::start_with_hooks(&hooks) else {
            return;
        };
        let refused = connect_result(&server).await.expect_err("refused");
        assert!(refused.to_string().contains(why), "{refused}");
        let (http, auth) = log_in(&server).await;
        let listed: serde_json::Value = http
            .get(format!("{}/api/collections?perPage=200", server.http_url()))
            .header("Authorization", auth["token"].as_str().expect("token"))
            .send()
            .await
            .expect("list collections")
            .json()
            .await
            .expect("collections");
        let ours: Vec<&str> = listed["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .filter(|n| n.starts_with("owui_"))
            .collect();
        assert!(ours.is_empty(), "nothing imported: {ours:?}");
    }
}

/// A message upserted into a chat whose blob holds an entry without an `id` or a `parentId`
/// key (written another way: the admin UI, an import) is stored. The route read a missing key's
/// type as NULL into an integer and failed every upsert into that chat as unavailable.
#[tokio::test]
async fn a_blob_entry_without_id_or_parent_keys_takes_new_messages() {
    use chatstore_pocketbase::error::Subject;
    let Some(server) = chatstore_testkit::PrivatePocketBase::start() else {
        return;
    };
    let pb = connect(&server).await;
    let store = pb.store();
    store
        .chats
        .create(chatstore_core::NewChat::new("u1", "edited").with_id("c"))
        .await
        .expect("chat");
    let blob = serde_json::json!({"history": {"currentId": "m0", "messages": {
        "m0": {"role": "user", "content": "written elsewhere", "timestamp": 1_700_000_000}}}});
    pb.client()
        .update_record(
            &pb.collections().chats,
            "c",
            &serde_json::json!({ "chat": blob }),
            Subject::new("chat", "c"),
        )
        .await
        .expect("edit the blob");
    let mut m = chatstore_core::NewMessage::text("c", "m1", "assistant", "an answer");
    m.parent_id = Some("m0".into());
    store.messages.upsert(m).await.expect("upsert");
    let chat = store.chats.get("c").await.expect("chat");
    let entries = &chat.chat["history"]["messages"];
    assert_eq!(entries["m1"]["content"], "an answer", "{entries}");
    assert_eq!(entries["m0"]["content"], "written elsewhere", "{entries}");
}
