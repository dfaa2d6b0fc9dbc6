//! Contracts of `UserRepo`.

use chatstore_core::{ErrorKind, NewUser, PageRequest, Result, Store, User, UserPatch};
use serde_json::json;

use crate::assert_kind;
use crate::fixtures::{T0, ids, new_user, user};

/// A created user reads back exactly as `create` returned it.
pub async fn create_then_get_returns_the_same_user(store: &Store) -> Result<()> {
    let created = user(store, 1).await?;
    assert_eq!(store.users.get("user-1").await?, created);
    assert_eq!(created.email, "user-1@example.com");
    Ok(())
}

/// A given id and given timestamps are kept exactly (migration needs it).
pub async fn create_keeps_given_id_and_timestamps(store: &Store) -> Result<()> {
    let mut new = new_user(7);
    new.updated_at = Some(T0 + 100);
    new.info = Some(json!({"location": "Zürich"}));
    let created = store.users.create(new).await?;
    assert_eq!(created.id, "user-7");
    assert_eq!(created.created_at, T0 + 7);
    assert_eq!(created.updated_at, T0 + 100);
    assert_eq!(
        store.users.get("user-7").await?.info,
        Some(json!({"location": "Zürich"}))
    );
    Ok(())
}

/// Without an id, role or avatar the user gets a uuid, role `pending` and `/user.png`.
pub async fn create_fills_in_defaults(store: &Store) -> Result<()> {
    let created = store.users.create(NewUser::new("a@b.test", "A")).await?;
    assert_eq!(created.id.len(), 36, "a uuid4 id: {}", created.id);
    assert_eq!(created.role, "pending");
    assert_eq!(created.profile_image_url, "/user.png");
    assert!(created.created_at > T0);
    assert_eq!(store.users.get(&created.id).await?, created);
    Ok(())
}

/// Creating a user with a taken id is a `Conflict`.
pub async fn duplicate_user_id_is_a_conflict(store: &Store) -> Result<()> {
    user(store, 1).await?;
    let mut again = new_user(1);
    again.email = "other@example.com".into();
    assert_kind!(store.users.create(again).await, Conflict);
    Ok(())
}

/// Two users cannot share an email that differs only in case.
pub async fn email_is_unique_case_insensitively(store: &Store) -> Result<()> {
    user(store, 1).await?;
    let mut twin = new_user(2);
    twin.email = "USER-1@Example.COM".into();
    assert_kind!(store.users.create(twin).await, Conflict);
    assert_kind!(store.users.get("user-2").await, NotFound);
    Ok(())
}

/// Looking a user up by email ignores case.
pub async fn get_by_email_ignores_case(store: &Store) -> Result<()> {
    user(store, 1).await?;
    assert_eq!(
        store.users.get_by_email("User-1@EXAMPLE.com").await?.id,
        "user-1"
    );
    assert_kind!(
        store.users.get_by_email("nobody@example.com").await,
        NotFound
    );
    Ok(())
}

/// Reading, updating or deleting a missing user is `NotFound`.
pub async fn missing_user_is_not_found(store: &Store) -> Result<()> {
    assert_kind!(store.users.get("ghost").await, NotFound);
    assert_kind!(
        store.users.update("ghost", UserPatch::default()).await,
        NotFound
    );
    assert_kind!(store.users.delete("ghost").await, NotFound);
    Ok(())
}

/// An update changes the given fields and `updated_at`, nothing else.
pub async fn update_changes_only_given_fields(store: &Store) -> Result<()> {
    let before = user(store, 1).await?;
    let patch = UserPatch {
        name: Some("Ada L.".into()),
        role: Some("admin".into()),
        settings: Some(json!({"ui": {"theme": "dark"}})),
        updated_at: Some(T0 + 50),
        ..UserPatch::default()
    };
    let after = store.users.update("user-1", patch).await?;
    assert_eq!(after.name, "Ada L.");
    assert_eq!(after.role, "admin");
    assert_eq!(after.settings, Some(json!({"ui": {"theme": "dark"}})));
    assert_eq!(after.updated_at, T0 + 50);
    assert_eq!(after.email, before.email);
    assert_eq!(after.created_at, before.created_at);
    assert_eq!(store.users.get("user-1").await?, after);
    Ok(())
}

/// Changing an email to one taken (in any case) is a `Conflict` and changes nothing.
pub async fn update_to_a_taken_email_is_a_conflict_and_changes_nothing(
    store: &Store,
) -> Result<()> {
    user(store, 1).await?;
    let second = user(store, 2).await?;
    let patch = UserPatch {
        email: Some("USER-1@example.com".into()),
        name: Some("changed".into()),
        ..UserPatch::default()
    };
    assert_kind!(store.users.update("user-2", patch).await, Conflict);
    assert_eq!(store.users.get("user-2").await?, second);
    Ok(())
}

/// Empty ids, malformed emails, unknown roles and non-object settings are `InvalidInput`,
/// and nothing is stored.
pub async fn invalid_user_input_is_refused_and_changes_nothing(store: &Store) -> Result<()> {
    let mut empty_id = new_user(1);
    empty_id.id = Some(String::new());
    assert_kind!(store.users.create(empty_id).await, InvalidInput);
    let mut bad_email = new_user(1);
    bad_email.email = "not-an-email".into();
    assert_kind!(store.users.create(bad_email).await, InvalidInput);
    let mut bad_role = new_user(1);
    bad_role.role = Some("root".into());
    assert_kind!(store.users.create(bad_role).await, InvalidInput);
    let mut bad_settings = new_user(1);
    bad_settings.settings = Some(json!([1, 2]));
    assert_kind!(store.users.create(bad_settings).await, InvalidInput);
    assert_eq!(store.users.list(PageRequest::default()).await?.total, 0);
    let created = user(store, 1).await?;
    let patch = UserPatch {
        role: Some("god".into()),
        name: Some("x".into()),
        ..UserPatch::default()
    };
    assert_kind!(store.users.update("user-1", patch).await, InvalidInput);
    assert_eq!(store.users.get("user-1").await?, created);
    Ok(())
}

/// Users list newest first; equal `created_at` breaks ties by id; `total` counts all.
pub async fn users_list_newest_first_with_ties_by_id(store: &Store) -> Result<()> {
    for (n, ts) in [(1, T0), (2, T0 + 5), (3, T0 + 5), (4, T0 + 1)] {
        let mut u = new_user(n);
        u.created_at = Some(ts);
        store.users.create(u).await?;
    }
    let page = store.users.list(PageRequest::default()).await?;
    assert_eq!(ids(&page.items), ["user-2", "user-3", "user-4", "user-1"]);
    assert_eq!(page.total, 4);
    let second = store.users.list(PageRequest::new(1, 2)).await?;
    assert_eq!(ids(&second.items), ["user-3", "user-4"]);
    assert_eq!(second.total, 4);
    Ok(())
}

/// A keyset scan returns every user once, in id order, page by page.
pub async fn user_scan_walks_every_user_by_id(store: &Store) -> Result<()> {
    for n in [5, 1, 3, 2, 4] {
        user(store, n).await?;
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let batch = store.users.scan(after.as_deref(), 2).await?;
        if batch.is_empty() {
            break;
        }
        after = batch.last().map(|u| u.id.clone());
        seen.extend(ids(&batch));
    }
    assert_eq!(seen, ["user-1", "user-2", "user-3", "user-4", "user-5"]);
    assert_kind!(store.users.scan(None, 0).await, InvalidInput);
    Ok(())
}

/// A bulk create with one bad user stores none of them.
pub async fn create_many_users_is_all_or_nothing(store: &Store) -> Result<()> {
    let made = store
        .users
        .create_many(vec![new_user(1), new_user(2)])
        .await?;
    assert_eq!(ids(&made), ["user-1", "user-2"]);
    let mut clash = new_user(4);
    clash.email = "USER-1@example.com".into();
    assert_kind!(
        store.users.create_many(vec![new_user(3), clash]).await,
        Conflict
    );
    assert_kind!(store.users.get("user-3").await, NotFound);
    assert_eq!(store.users.list(PageRequest::default()).await?.total, 2);
    Ok(())
}

/// A bulk create checks its users against each other as well as against the store: a repeated
/// id or an email repeated in another case (Unicode case folding included) is a `Conflict`
/// and stores none of the batch; a clean batch is found by id and by email.
pub async fn create_many_users_checks_the_batch_itself(store: &Store) -> Result<()> {
    let mut accented = new_user(1);
    accented.email = "ÅSA@example.com".into();
    user(store, 9).await?;
    let mut folded = new_user(3);
    folded.email = "åsa@EXAMPLE.com".into();
    let batches = [
        vec![new_user(1), new_user(2), new_user(1)],
        vec![accented.clone(), new_user(2), folded],
        vec![new_user(1), new_user(9)],
    ];
    for batch in batches {
        assert_kind!(store.users.create_many(batch).await, Conflict);
        for gone in ["user-1", "user-2", "user-3"] {
            assert_kind!(store.users.get(gone).await, NotFound);
        }
    }
    let made = store
        .users
        .create_many(vec![accented, new_user(2), new_user(3)])
        .await?;
    assert_eq!(ids(&made), ["user-1", "user-2", "user-3"]);
    assert_eq!(
        store.users.get_by_email("åsa@example.com").await?.id,
        "user-1"
    );
    assert_eq!(store.users.get("user-3").await?, made[2]);
    let mut late = new_user(4);
    late.email = "åSA@example.COM".into();
    assert_kind!(
        store.users.create_many(vec![new_user(5), late]).await,
        Conflict
    );
    assert_eq!(store.users.list(PageRequest::default()).await?.total, 4);
    Ok(())
}

/// Ids holding characters some backend cannot store (`.`, `:`, `%`, quotes, ...) are
/// `InvalidInput` everywhere, for users, chats and files alike; uuids are fine.
pub async fn ids_with_reserved_characters_are_refused(store: &Store) -> Result<()> {
    for bad in ["a.b", "a:b", "50%", "it's", "x|y", "$id", "a*"] {
        assert_kind!(
            store.users.create(new_user(1).with_id(bad)).await,
            InvalidInput
        );
        assert_kind!(
            store
                .chats
                .create(crate::fixtures::new_chat("user-1", bad, "t", T0))
                .await,
            InvalidInput
        );
        assert_kind!(
            store
                .files
                .put(crate::fixtures::new_file("user-1", bad, b"x", T0))
                .await,
            InvalidInput
        );
    }
    assert_eq!(store.users.list(PageRequest::default()).await?.total, 0);
    let uuid = "0b7e3f4c-9d1a-4f5e-8c2b-6a7d8e9f0a1b";
    assert_eq!(
        store.users.create(new_user(1).with_id(uuid)).await?.id,
        uuid
    );
    Ok(())
}

/// A migration keeps `last_active_at` when given; `scan_ids` lists what `scan` would, by id.
pub async fn last_active_at_is_kept_and_scan_ids_follow_scan(store: &Store) -> Result<()> {
    let mut u = new_user(2);
    u.updated_at = Some(T0 + 10);
    u.last_active_at = Some(T0 + 20);
    let created = store.users.create(u).await?;
    assert_eq!(created.last_active_at, T0 + 20);
    assert_eq!(store.users.get("user-2").await?.last_active_at, T0 + 20);
    assert_eq!(user(store, 1).await?.last_active_at, T0 + 1);
    assert_eq!(store.users.scan_ids(None, 1).await?, ["user-1"]);
    assert_eq!(store.users.scan_ids(Some("user-1"), 5).await?, ["user-2"]);
    assert!(store.users.scan_ids(Some("user-2"), 5).await?.is_empty());
    store
        .chats
        .create(crate::fixtures::new_chat("user-1", "b", "B", T0))
        .await?;
    store
        .chats
        .create(crate::fixtures::new_chat("user-1", "a", "A", T0))
        .await?;
    assert_eq!(store.chats.scan_ids(None, 5).await?, ["a", "b"]);
    assert_eq!(store.chats.scan_ids(Some("a"), 5).await?, ["b"]);
    Ok(())
}

/// `set_last_active` sets `last_active_at` to the time given (later or earlier) and nothing
/// else, `updated_at` included, and a later update keeps it; a missing user is `NotFound`
/// and a time out of range `InvalidInput`, changing nothing.
pub async fn set_last_active_sets_that_time_alone(store: &Store) -> Result<()> {
    let before = user(store, 1).await?;
    let other = user(store, 2).await?;
    store.users.set_last_active("user-1", T0 + 500).await?;
    let active = store.users.get("user-1").await?;
    assert_eq!(
        active,
        User {
            last_active_at: T0 + 500,
            ..before.clone()
        }
    );
    store.users.set_last_active("user-1", T0 + 3).await?;
    assert_eq!(store.users.get("user-1").await?.last_active_at, T0 + 3);
    let patch = UserPatch {
        name: Some("Ada L.".into()),
        updated_at: Some(T0 + 40),
        ..UserPatch::default()
    };
    assert_eq!(
        store.users.update("user-1", patch).await?.last_active_at,
        T0 + 3
    );
    let renamed = store.users.get("user-1").await?;
    assert_eq!(
        (renamed.last_active_at, renamed.updated_at),
        (T0 + 3, T0 + 40)
    );
    assert_kind!(store.users.set_last_active("ghost", T0).await, NotFound);
    assert_kind!(store.users.get("ghost").await, NotFound);
    for bad in [-1, i64::MAX] {
        assert_kind!(
            store.users.set_last_active("user-1", bad).await,
            InvalidInput
        );
    }
    assert_eq!(store.users.get("user-1").await?, renamed);
    assert_eq!(store.users.get("user-2").await?, other);
    Ok(())
}

/// A store that keeps Open WebUI's credentials answers a user's session stamp, the same one
/// until it is rotated, and `NotFound` for a missing user; a store that keeps none answers
/// `Unsupported` for both.
pub async fn session_stamps_are_stable_or_unsupported(store: &Store) -> Result<()> {
    user(store, 1).await?;
    match store.users.session_stamp("user-1").await {
        Ok(stamp) => {
            assert_eq!(store.users.session_stamp("user-1").await?, stamp);
            assert_kind!(store.users.session_stamp("ghost").await, NotFound);
        }
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
            assert_kind!(store.users.session_stamp("ghost").await, Unsupported);
        }
    }
    Ok(())
}
