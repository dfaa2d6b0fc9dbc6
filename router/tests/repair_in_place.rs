//! A repair changes a record on the new store in place where it can, and otherwise keeps what
//! points at it there: on a SQL store, deleting a chat, a file or a user also deletes the rows
//! that point at it (shares, attached files, group memberships; for a user its credentials),
//! so a repair that deleted and re-created the record lost them on the new store, with
//! nothing logged.

mod common;

use chatstore_core::chats::{ChatPatch, NewChat};
use chatstore_core::files::NewFile;
use chatstore_core::rows::{Cond, Row, RowOp, RowQuery, row, table};
use chatstore_core::users::{NewUser, UserPatch};
use chatstore_core::{ModelGroup, Store, memory};
use chatstore_router::{Phase, RepairEntry, RepairKey, Side};
use serde_json::json;

const T: i64 = 1_700_000_000;

fn rows_pointing_at_u1_c1_f1() -> Vec<RowOp> {
    let insert = |name: &str, row: Row| RowOp::Insert {
        table: table(name).expect("a table"),
        row,
    };
    vec![
        insert(
            "group",
            row([
                ("id", json!("g1")),
                ("user_id", json!("u1")),
                ("name", json!("Engineers")),
                ("description", json!("")),
                ("created_at", json!(T)),
                ("updated_at", json!(T)),
            ]),
        ),
        insert(
            "group_member",
            row([
                ("id", json!("gm1")),
                ("group_id", json!("g1")),
                ("user_id", json!("u1")),
                ("created_at", json!(T)),
                ("updated_at", json!(T)),
            ]),
        ),
        insert(
            "shared_chat",
            row([
                ("id", json!("s1")),
                ("chat_id", json!("c1")),
                ("user_id", json!("u1")),
                ("title", json!("Engines")),
                ("created_at", json!(T)),
                ("updated_at", json!(T)),
            ]),
        ),
        insert(
            "chat_file",
            row([
                ("id", json!("cf1")),
                ("user_id", json!("u1")),
                ("chat_id", json!("c1")),
                ("file_id", json!("f1")),
                ("created_at", json!(T)),
                ("updated_at", json!(T)),
            ]),
        ),
    ]
}

async fn count(store: &Store, name: &str) -> usize {
    store
        .rows()
        .expect("rows")
        .select(
            table(name).expect("a table"),
            &RowQuery::filter(Vec::<Cond>::new()),
        )
        .await
        .expect("select")
        .len()
}

/// A user, a chat and a file that differ on a SQLite new store are repaired from the old
/// store: the new store then holds the old store's versions, and still its group
/// membership, share and attached-file rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repairs_keep_the_rows_that_point_at_the_record() {
    let (old, new) = (memory::store(), common::sqlite().await);
    common::same_user(&[&old, &new], "u1").await;
    for store in [&old, &new] {
        store
            .chats
            .create(
                NewChat::new("u1", "Engines")
                    .with_id("c1")
                    .with_tags(["work"]),
            )
            .await
            .expect("create c1");
    }
    old.files
        .put(NewFile::new("u1", "notes.txt", b"the old bytes".to_vec()).with_id("f1"))
        .await
        .expect("put f1");
    new.files
        .put(NewFile::new("u1", "notes.txt", b"other bytes".to_vec()).with_id("f1"))
        .await
        .expect("put f1");
    for store in [&old, &new] {
        store
            .rows()
            .expect("rows")
            .write(rows_pointing_at_u1_c1_f1())
            .await
            .expect("rows pointing at u1, c1 and f1");
    }
    // The writes the new store missed.
    old.users
        .update(
            "u1",
            UserPatch {
                name: Some("Ada Lovelace".into()),
                ..UserPatch::default()
            },
        )
        .await
        .expect("rename u1");
    old.chats
        .update(
            "c1",
            ChatPatch {
                title: Some("Analytical Engines".into()),
                ..ChatPatch::default()
            },
        )
        .await
        .expect("rename c1");

    let router = common::router(old.clone(), &new, Phase::Dual);
    let entries: Vec<RepairEntry> = [
        (ModelGroup::Users, RepairKey::User("u1".into())),
        (ModelGroup::Chats, RepairKey::Chat("c1".into())),
        (ModelGroup::Files, RepairKey::File("f1".into())),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (group, key))| RepairEntry {
        id: format!("e{i}"),
        time: 0,
        group,
        key,
        operation: "a write".into(),
        source: Side::Old,
        reason: "the new store failed".into(),
    })
    .collect();
    router
        .repair_log()
        .append(&entries)
        .expect("log the repairs");
    let report = router.reconcile(&|_, _| {}).await.expect("reconcile");
    assert_eq!(report.remaining, 0, "{report:?}");

    assert_eq!(new.users.get("u1").await.expect("u1").name, "Ada Lovelace");
    assert_eq!(
        new.chats.get("c1").await.expect("c1"),
        old.chats.get("c1").await.expect("c1")
    );
    assert_eq!(
        new.files.read("f1").await.expect("f1"),
        b"the old bytes".to_vec()
    );
    for name in ["group_member", "shared_chat", "chat_file"] {
        assert_eq!(count(&new, name).await, 1, "{name} rows on the new store");
    }
    let verified = chatstore_migrate::verify(
        &old,
        &new,
        &[
            ModelGroup::Users,
            ModelGroup::Chats,
            ModelGroup::Files,
            ModelGroup::Workspace,
        ],
        &chatstore_migrate::Silent,
    )
    .await
    .expect("verify");
    assert!(verified.equal, "{:?}", verified.differing_ids());
}

/// Logs `key` for repair from the old store, as a write `operation` the new store failed.
fn log_failed(router: &chatstore_router::Router, key: RepairKey, operation: &str) {
    router
        .repair_log()
        .append(&[RepairEntry {
            id: uuid::Uuid::new_v4().to_string(),
            time: 0,
            group: key.group(),
            key,
            operation: operation.into(),
            source: Side::Old,
            reason: "the new store failed".into(),
        }])
        .expect("log the repair");
}

/// A tag the new store holds under the same id with another name or meta is not a repaired
/// tag: tags have no update (and deleting one takes it off its chats), so the repair stays
/// pending with `Conflict`. Before, tags were compared by id alone and the entry was marked
/// repaired while the stores still differed.
#[tokio::test]
async fn a_tag_differing_in_name_or_meta_stays_pending() {
    use chatstore_core::Tag;
    let (old, new) = (memory::store(), memory::store());
    let tag = |name: &str, meta| Tag {
        id: "work".into(),
        name: name.into(),
        user_id: "u1".into(),
        meta,
    };
    old.tags
        .create_many(vec![tag("Work", Some(json!({"color": "red"})))])
        .await
        .expect("old tag");
    new.tags
        .create_many(vec![tag("work", None)])
        .await
        .expect("new tag");
    let router = common::router(old.clone(), &new, Phase::Dual);
    log_failed(&router, RepairKey::Tags("u1".into()), "tags.create_many");
    let report = router.reconcile(&|_, _| {}).await.expect("reconcile");
    assert_eq!(report.remaining, 1, "{report:?}");
    assert_eq!(report.repaired, 0, "{report:?}");
}

/// A user's activity the new store missed (`set_last_active`, which moves no `updated_at`)
/// is repaired: the copy sets `last_active_at` on the new store. Before, the entry stayed
/// pending with `Conflict` ("what an update cannot set"). Through the router in `dual`, the
/// activity reaches both stores.
#[tokio::test]
async fn a_missed_activity_is_repaired_and_a_dual_one_reaches_both_stores() {
    let (old, new) = (memory::store(), memory::store());
    common::same_user(&[&old, &new], "u1").await;
    let created = common::USER_CREATED;
    old.users
        .set_last_active("u1", created + 60)
        .await
        .expect("active on the old store");
    let router = common::router(old.clone(), &new, Phase::Dual);
    log_failed(
        &router,
        RepairKey::User("u1".into()),
        "users.set_last_active",
    );
    let report = router.reconcile(&|_, _| {}).await.expect("reconcile");
    assert_eq!((report.repaired, report.remaining), (1, 0), "{report:?}");
    assert_eq!(
        new.users.get("u1").await.expect("on the new store"),
        old.users.get("u1").await.expect("on the old store")
    );

    router
        .store()
        .users
        .set_last_active("u1", created + 120)
        .await
        .expect("a routed activity");
    for store in [&old, &new] {
        let user = store.users.get("u1").await.expect("u1");
        assert_eq!(
            (user.last_active_at, user.updated_at),
            (created + 120, created)
        );
    }
}

/// Repairing a user's chats (logged by a failed `delete_for_user` or tag delete) covers their
/// internal chats too: lists leave them out, so the repair had left an internal chat the old
/// store deleted on the new store for good.
#[tokio::test]
async fn repairing_a_users_chats_covers_their_internal_chats() {
    let (old, new) = (memory::store(), memory::store());
    let router = common::router(old.clone(), &new, Phase::Dual);
    let store = router.store();
    store
        .users
        .create(NewUser::new("ada@example.com", "Ada").with_id("u1"))
        .await
        .expect("user");
    let mut internal = NewChat::new("u1", "hidden").with_id("c-internal");
    internal.meta = json!({"internal": true}).as_object().cloned();
    store.chats.create(internal).await.expect("internal chat");
    assert!(new.chats.get("c-internal").await.is_ok());
    // The old store deletes the user's chats; the new store missed it (logged as such).
    old.chats
        .delete_for_user("u1")
        .await
        .expect("delete on old");
    log_failed(
        &router,
        RepairKey::ChatsOf("u1".into()),
        "chats.delete_for_user",
    );
    let report = router.reconcile(&|_, _| {}).await.expect("reconcile");
    assert_eq!(report.remaining, 0, "{report:?}");
    assert!(
        new.chats.get("c-internal").await.is_err(),
        "the internal chat the old store deleted is gone from the new store too"
    );
}
