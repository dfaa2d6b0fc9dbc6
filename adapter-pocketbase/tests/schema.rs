//! The schema is enforced at start-up: a fresh server gets it whole, an older schema is
//! brought up to date without losing data, and a schema changed by hand so that it cannot be
//! brought up to date is a clear start-up error.

mod common;

use chatstore_core::{ChatQuery, NewChat, NewUser};
use chatstore_pocketbase::client::Client;
use chatstore_pocketbase::error::Subject;
use chatstore_pocketbase::schema::{self, BATCH_MAX_REQUESTS, Collections};
use chatstore_pocketbase::{PocketBase, PocketBaseConfig};
use reqwest::Method;
use serde_json::{Value, json};

fn raw_client(config: &PocketBaseConfig) -> Client {
    Client::new(
        &config.url,
        &config.admin_email,
        &config.admin_password,
        config.timeout,
    )
    .expect("client")
}

async fn collection(client: &Client, name: &str) -> Value {
    client
        .send(
            Method::GET,
            &format!("/api/collections/{name}"),
            &[],
            None,
            Subject::new("collection", name),
            true,
        )
        .await
        .expect("collection exists")
}

/// Imports `collections` as an older chatstore would have left them (nothing deleted).
async fn import_old_schema(client: &Client, collections: Vec<Value>) {
    client
        .send(
            Method::PUT,
            "/api/collections/import",
            &[],
            Some(&json!({"collections": collections, "deleteMissing": false})),
            Subject::new("schema", ""),
            false,
        )
        .await
        .expect("old schema imported");
}

fn field<'a>(collection: &'a Value, name: &str) -> Option<&'a Value> {
    collection["fields"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["name"] == name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_server_gets_the_whole_schema() {
    let Some(config) = common::config() else {
        return;
    };
    let client = raw_client(&config);
    let pb = PocketBase::connect(config).await.expect("connect");
    let cols = pb.collections();
    for (name, want) in cols.all().iter().zip(schema::collections_json(cols).iter()) {
        let have = collection(&client, name).await;
        assert_eq!(have["id"], want["id"], "stable collection id of {name}");
        for f in want["fields"].as_array().expect("fields") {
            let got = field(&have, f["name"].as_str().expect("name"))
                .unwrap_or_else(|| panic!("{name} lacks {}", f["name"]));
            assert_eq!(got["type"], f["type"]);
        }
        let indexes = have["indexes"].to_string();
        assert!(
            indexes.contains("(id COLLATE NOCASE)"),
            "{name} has the NOCASE id index: {indexes}"
        );
    }
    let id = field(&collection(&client, &cols.chats).await, "id")
        .cloned()
        .expect("id field");
    assert_eq!(id["max"], 255, "ids as long as chatstore allows");
    let settings = client
        .send(
            Method::GET,
            "/api/settings",
            &[],
            None,
            Subject::new("settings", ""),
            true,
        )
        .await
        .expect("settings");
    assert_eq!(settings["batch"]["enabled"], true);
    assert!(settings["batch"]["maxRequests"].as_u64() >= Some(BATCH_MAX_REQUESTS));
    // A uuid id is accepted as it is.
    let store = pb.store();
    let uuid = "0b7e1a52-3c4d-4f5e-8a9b-0c1d2e3f4a5b";
    store
        .users
        .create(NewUser::new("a@x.io", "A").with_id(uuid))
        .await
        .expect("uuid id");
    assert_eq!(store.users.get(uuid).await.expect("get").id, uuid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_schema_is_brought_up_to_date_without_data_loss() {
    let Some(config) = common::config() else {
        return;
    };
    let client = raw_client(&config);
    let cols = Collections::new(&config.collection_prefix).expect("prefix");
    // An older schema: chats without `pinned`, `share_id` and the list index, users without
    // `settings` and without the created_at index. (PocketBase itself refuses to drop the NOCASE
    // id index.)
    let mut old = schema::collections_json(&cols);
    for c in &mut old {
        let drop: &[&str] = if c["name"] == cols.chats.as_str() {
            &["pinned", "share_id"]
        } else if c["name"] == cols.users.as_str() {
            &["settings"]
        } else {
            &[]
        };
        if let Some(fields) = c["fields"].as_array_mut() {
            fields.retain(|f| !drop.iter().any(|d| f["name"] == *d));
        }
        if let Some(indexes) = c["indexes"].as_array_mut() {
            indexes.retain(|i| {
                let i = i.as_str().unwrap_or_default();
                !i.contains("_created") && !i.contains("share_id") && !i.contains("_user_list")
            });
        }
    }
    import_old_schema(&client, old).await;
    let users_before = collection(&client, &cols.users).await;
    assert!(field(&users_before, "settings").is_none());
    // Data written under the old schema.
    client
        .create_record(
            &cols.users,
            &json!({"id": "old-user", "email": "old@x.io", "email_key": "old@x.io",
                    "name": "Old", "role": "user", "profile_image_url": "/user.png",
                    "created_at": 5, "updated_at": 6, "last_active_at": 6}),
            Subject::new("user", "old-user"),
        )
        .await
        .expect("old user");
    client
        .create_record(
            &cols.chats,
            &json!({"id": "old-chat", "user_id": "old-user", "title": "Old chat",
                    "title_lower": "old chat", "chat": "{\"title\":\"Old chat\"}",
                    "meta": "{}", "created_at": 5, "updated_at": 7, "version": 0}),
            Subject::new("chat", "old-chat"),
        )
        .await
        .expect("old chat");

    let pb = PocketBase::connect(config.clone())
        .await
        .expect("boot brings it up to date");
    let users = collection(&client, &cols.users).await;
    assert!(field(&users, "settings").is_some());
    assert!(users["indexes"].to_string().contains("_created ON"));
    let chats = collection(&client, &cols.chats).await;
    assert!(field(&chats, "pinned").is_some() && field(&chats, "share_id").is_some());
    assert!(chats["indexes"].to_string().contains("_user_list ON"));

    let store = pb.store();
    let user = store.users.get("old-user").await.expect("old user kept");
    assert_eq!(
        (user.email.as_str(), user.created_at, user.settings),
        ("old@x.io", 5, None)
    );
    let chat = store.chats.get("old-chat").await.expect("old chat kept");
    assert_eq!(
        (chat.title.as_str(), chat.pinned, chat.share_id),
        ("Old chat", false, None)
    );
    let page = store
        .chats
        .list(&ChatQuery::for_user("old-user"))
        .await
        .expect("list");
    assert_eq!(page.total, 1);
    // New writes use the new fields.
    let mut new = NewChat::new("old-user", "New").with_id("new-chat");
    new.pinned = true;
    new.share_id = Some("s1".into());
    store.chats.create(new).await.expect("new chat");
    assert!(store.chats.get("new-chat").await.expect("get").pinned);
    // Booting again changes nothing (this second handle leaves the collections in place).
    let mut again = config;
    again.drop_collections_on_drop = false;
    PocketBase::connect(again).await.expect("second boot");
    assert_eq!(store.chats.scan(None, 10).await.expect("scan").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_changed_by_hand_beyond_repair_is_a_clear_startup_error() {
    let Some(config) = common::config() else {
        return;
    };
    let client = raw_client(&config);
    let mut first = config.clone();
    first.drop_collections_on_drop = false;
    let pb = PocketBase::connect(first).await.expect("connect");
    let chats = pb.collections().chats.clone();
    // By hand: `title` deleted and re-added as a number field (a new field id).
    let mut have = collection(&client, &chats).await;
    let fields = have["fields"].as_array_mut().expect("fields");
    fields.retain(|f| f["name"] != "title");
    fields.push(json!({"name": "title", "type": "number"}));
    client
        .send(
            Method::PATCH,
            &format!("/api/collections/{chats}"),
            &[],
            Some(&json!({"fields": have["fields"]})),
            Subject::new("collection", &chats),
            false,
        )
        .await
        .expect("hand change");
    let err = PocketBase::connect(config)
        .await
        .expect_err("a title that is a number cannot hold titles");
    let message = err.to_string();
    assert!(
        message.contains("schema") && message.contains(&chats),
        "the error names the schema problem and the collection: {message}"
    );
    pb.drop_collections().await.expect("clean up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_indexes_and_lowered_limits_are_restored_at_boot() {
    let Some(config) = common::config() else {
        return;
    };
    let client = raw_client(&config);
    let mut first = config.clone();
    first.drop_collections_on_drop = false;
    let pb = PocketBase::connect(first).await.expect("connect");
    let chats = pb.collections().chats.clone();
    let mut have = collection(&client, &chats).await;
    for f in have["fields"].as_array_mut().expect("fields") {
        if f["name"] == "title" {
            f["max"] = json!(10);
        }
    }
    client
        .send(
            Method::PATCH,
            &format!("/api/collections/{chats}"),
            &[],
            Some(&json!({"fields": have["fields"], "indexes": [
                format!("CREATE UNIQUE INDEX idx_{chats}_id_nocase ON {chats} (id COLLATE NOCASE)")
            ]})),
            Subject::new("collection", &chats),
            false,
        )
        .await
        .expect("hand change");
    drop(pb);
    let pb = PocketBase::connect(config).await.expect("boot repairs it");
    let have = collection(&client, &chats).await;
    let indexes = have["indexes"].to_string();
    assert!(
        indexes.contains("_user_updated ON") && indexes.contains("_share ON"),
        "{indexes}"
    );
    assert_eq!(field(&have, "title").expect("title")["max"], 2_147_483_647);
    let long = "t".repeat(6000);
    let chat = pb
        .store()
        .chats
        .create(NewChat::new("u", long.clone()))
        .await
        .expect("a long title fits again");
    assert_eq!(chat.title, long);
}

/// Messages are keyed as Open WebUI keys their rows (`"{chat_id}-{id}"`), and the key is
/// unique as SQL's primary key is. A server whose older schema let two messages share a key
/// does not start until one of them is dealt with, and the error says which key and how;
/// once the key is unique again, the boot makes the index unique and keeps every message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_schema_with_a_shared_message_key_names_it_at_boot() {
    let Some(config) = common::config() else {
        return;
    };
    let client = raw_client(&config);
    let cols = Collections::new(&config.collection_prefix).expect("prefix");
    let mut old = schema::collections_json(&cols);
    for c in &mut old {
        if let Some(indexes) = c["indexes"].as_array_mut() {
            for i in indexes.iter_mut() {
                if let Some(text) = i.as_str().filter(|t| t.contains("_key ON")) {
                    *i = json!(text.replace("CREATE UNIQUE INDEX", "CREATE INDEX"));
                }
            }
        }
    }
    import_old_schema(&client, old).await;
    // Chat "a" message "b-c" and chat "a-b" message "c": both "a-b-c".
    for (record, chat, id) in [("m1", "a", "b-c"), ("m2", "a-b", "c"), ("m3", "a", "d")] {
        client
            .create_record(
                &cols.messages,
                &json!({"id": record, "chat_id": chat, "msg_id": id,
                        "key": format!("{chat}-{id}"), "created_at": 1, "doc": {}}),
                Subject::new("message", record),
            )
            .await
            .expect("old message");
    }
    let mut first = config.clone();
    first.drop_collections_on_drop = false;
    let err = PocketBase::connect(first.clone())
        .await
        .expect_err("two messages share a key");
    let message = err.to_string();
    assert!(
        message.contains("\"a-b-c\"") && message.contains(&cols.messages),
        "the error names the shared key and the collection: {message}"
    );
    client
        .delete_record(&cols.messages, "m2", Subject::new("message", "m2"))
        .await
        .expect("one of the two removed by hand");
    let pb = PocketBase::connect(config)
        .await
        .expect("boots once unique");
    let messages = collection(&client, &cols.messages).await;
    assert!(
        messages["indexes"]
            .to_string()
            .contains(&format!("CREATE UNIQUE INDEX idx_{}_key", cols.messages)),
        "{}",
        messages["indexes"]
    );
    let q = chatstore_pocketbase::client::ListQuery {
        sort: "key".to_owned(),
        skip_total: true,
        ..Default::default()
    };
    let kept: Vec<Value> = client
        .first(&cols.messages, &q, 10, Subject::new("message", ""))
        .await
        .expect("messages")
        .into_iter()
        .map(|r| r["key"].clone())
        .collect();
    assert_eq!(kept, [json!("a-b-c"), json!("a-d")]);
    drop(pb);
}
