//! Contracts of tags: per-user sets on chats, all-of filters, `tag:none`, orphan cleanup.

use chatstore_core::{ChatPatch, ChatQuery, Result, Store, Tag, TagKey};
use serde_json::json;

use crate::assert_kind;
use crate::fixtures::{T0, chat, ids, listed, new_chat, obj, tagged_chat};

async fn tag_ids(store: &Store, user: &str) -> Result<Vec<String>> {
    Ok(ids(&store.tags.list(user).await?))
}

async fn with_tags(store: &Store, user: &str, tags: &[&str]) -> Result<Vec<String>> {
    Ok(ids(&listed(
        store,
        &ChatQuery::for_user(user).with_tags(tags.iter().copied()),
    )
    .await?
    .items))
}

/// A tag's id is its name with spaces as `_`, lower-cased; its name keeps the spelling.
pub async fn tag_ids_derive_from_names(store: &Store) -> Result<()> {
    let c = tagged_chat(store, "user-1", "c1", T0, &["Deep Work", "ÉTÉ"]).await?;
    assert_eq!(c.tags.iter().collect::<Vec<_>>(), ["deep_work", "été"]);
    let tag = store.tags.get("user-1", "deep_work").await?;
    assert_eq!(
        (tag.id.as_str(), tag.name.as_str()),
        ("deep_work", "Deep Work")
    );
    assert_eq!(store.tags.get("user-1", "Deep Work").await?, tag);
    Ok(())
}

/// Adding a tag twice, or two spellings of one id, gives one tag on the chat.
pub async fn chat_tags_are_a_set(store: &Store) -> Result<()> {
    tagged_chat(store, "user-1", "c1", T0, &["work", "Work", "WORK"]).await?;
    store.chats.add_tag("c1", "work").await?;
    let c = store.chats.add_tag("c1", "wOrK").await?;
    assert_eq!(c.tags.len(), 1);
    assert_eq!(tag_ids(store, "user-1").await?, ["work"]);
    Ok(())
}

/// Filtering by several tags lists the chats that have all of them.
pub async fn tag_filter_means_all_of(store: &Store) -> Result<()> {
    tagged_chat(store, "user-1", "both", T0, &["a", "b"]).await?;
    tagged_chat(store, "user-1", "only-a", T0 + 1, &["a"]).await?;
    tagged_chat(store, "user-1", "all", T0 + 2, &["a", "b", "c"]).await?;
    tagged_chat(store, "user-1", "none", T0 + 3, &[]).await?;
    assert_eq!(
        with_tags(store, "user-1", &["a", "b"]).await?,
        ["all", "both"]
    );
    assert_eq!(
        with_tags(store, "user-1", &["a"]).await?,
        ["all", "only-a", "both"]
    );
    assert!(with_tags(store, "user-1", &["a", "zzz"]).await?.is_empty());
    let page = listed(store, &ChatQuery::for_user("user-1").with_tags(["b", "a"])).await?;
    assert_eq!(page.total, 2);
    Ok(())
}

/// A tag filter takes names or ids: `"Deep Work"` and `"deep_work"` select the same chats.
pub async fn tag_filter_accepts_names_or_ids(store: &Store) -> Result<()> {
    tagged_chat(store, "user-1", "c1", T0, &["Deep Work"]).await?;
    assert_eq!(with_tags(store, "user-1", &["deep_work"]).await?, ["c1"]);
    assert_eq!(with_tags(store, "user-1", &["DEEP WORK"]).await?, ["c1"]);
    Ok(())
}

/// `tag:none` lists exactly the chats without any tag.
pub async fn untagged_filter_lists_chats_without_tags(store: &Store) -> Result<()> {
    tagged_chat(store, "user-1", "t", T0, &["a"]).await?;
    chat(store, "user-1", "u1", "u", T0 + 1).await?;
    tagged_chat(store, "user-1", "u2", T0 + 2, &["x"]).await?;
    store.chats.remove_tag("u2", "x").await?;
    let page = listed(store, &ChatQuery::for_user("user-1").untagged()).await?;
    assert_eq!(ids(&page.items), ["u2", "u1"]);
    assert_eq!(page.total, 2);
    Ok(())
}

/// Removing a tag from its last chat deletes the tag.
pub async fn removing_the_last_use_deletes_the_tag(store: &Store) -> Result<()> {
    tagged_chat(store, "user-1", "c1", T0, &["solo", "keep"]).await?;
    let c = store.chats.remove_tag("c1", "Solo").await?;
    assert_eq!(c.tags.iter().collect::<Vec<_>>(), ["keep"]);
    assert_eq!(tag_ids(store, "user-1").await?, ["keep"]);
    assert_kind!(store.tags.get("user-1", "solo").await, NotFound);
    Ok(())
}

/// A tag still carried by another chat of the user survives its removal from one chat.
pub async fn a_tag_used_by_another_chat_survives(store: &Store) -> Result<()> {
    tagged_chat(store, "user-1", "c1", T0, &["shared"]).await?;
    tagged_chat(store, "user-1", "c2", T0, &["shared"]).await?;
    store.chats.remove_tag("c1", "shared").await?;
    assert_eq!(tag_ids(store, "user-1").await?, ["shared"]);
    assert_eq!(with_tags(store, "user-1", &["shared"]).await?, ["c2"]);
    Ok(())
}

/// Deleting a chat removes the tags no other chat of its user carries.
pub async fn deleting_a_chat_removes_its_orphan_tags(store: &Store) -> Result<()> {
    tagged_chat(store, "user-1", "c1", T0, &["only-here", "shared"]).await?;
    tagged_chat(store, "user-1", "c2", T0, &["shared"]).await?;
    store.chats.delete("c1").await?;
    assert_eq!(tag_ids(store, "user-1").await?, ["shared"]);
    Ok(())
}

/// `set_tags` replaces the whole set and deletes tags that became orphans.
pub async fn set_tags_replaces_the_set_and_cleans_up(store: &Store) -> Result<()> {
    tagged_chat(store, "user-1", "c1", T0, &["old", "kept"]).await?;
    let names = vec!["Kept".to_owned(), "New One".to_owned()];
    let c = store.chats.set_tags("c1", &names).await?;
    assert_eq!(c.tags.iter().collect::<Vec<_>>(), ["kept", "new_one"]);
    assert_eq!(tag_ids(store, "user-1").await?, ["kept", "new_one"]);
    let c = store.chats.set_tags("c1", &[]).await?;
    assert!(c.tags.is_empty());
    assert!(tag_ids(store, "user-1").await?.is_empty());
    Ok(())
}

/// Tags belong to one user: the same name for two users is two tags, and filters never cross.
pub async fn tags_are_per_user(store: &Store) -> Result<()> {
    tagged_chat(store, "user-1", "c1", T0, &["Work"]).await?;
    tagged_chat(store, "user-2", "c2", T0, &["work"]).await?;
    assert_eq!(store.tags.get("user-1", "work").await?.name, "Work");
    assert_eq!(store.tags.get("user-2", "work").await?.name, "work");
    assert_eq!(with_tags(store, "user-2", &["work"]).await?, ["c2"]);
    store.chats.delete("c1").await?;
    assert_kind!(store.tags.get("user-1", "work").await, NotFound);
    assert_eq!(tag_ids(store, "user-2").await?, ["work"]);
    Ok(())
}

/// `none` (any case) cannot be a tag: it means "no tag" in filters.
pub async fn none_is_reserved(store: &Store) -> Result<()> {
    chat(store, "user-1", "c1", "t", T0).await?;
    assert_kind!(store.chats.add_tag("c1", "None").await, InvalidInput);
    assert_kind!(
        store
            .chats
            .set_tags("c1", &["ok".into(), "none".into()])
            .await,
        InvalidInput
    );
    assert_kind!(store.tags.ensure("user-1", "NONE").await, InvalidInput);
    assert!(store.chats.get("c1").await?.tags.is_empty());
    assert!(tag_ids(store, "user-1").await?.is_empty());
    Ok(())
}

/// Adding, removing and setting tags leave the chat's `updated_at` alone.
pub async fn tag_operations_do_not_touch_updated_at(store: &Store) -> Result<()> {
    chat(store, "user-1", "c1", "t", T0).await?;
    store.chats.add_tag("c1", "a").await?;
    store
        .chats
        .set_tags("c1", &["b".into(), "c".into()])
        .await?;
    let c = store.chats.remove_tag("c1", "b").await?;
    assert_eq!(c.updated_at, T0);
    assert_eq!(store.chats.get("c1").await?.updated_at, T0);
    Ok(())
}

/// Tag usage counts the user's chats carrying each tag, archived ones in and internal ones out.
pub async fn tag_usage_counts_chats_without_internal_ones(store: &Store) -> Result<()> {
    tagged_chat(store, "user-1", "c1", T0, &["a", "b"]).await?;
    let mut archived = new_chat("user-1", "c2", "t", T0).with_tags(["a"]);
    archived.archived = true;
    store.chats.create(archived).await?;
    let mut internal = new_chat("user-1", "c3", "t", T0).with_tags(["a", "c"]);
    internal.meta = Some(obj(json!({"internal": true})));
    store.chats.create(internal).await?;
    let usage = store.tags.usage("user-1").await?;
    let counts: Vec<(String, u64)> = usage.into_iter().map(|u| (u.tag.id, u.chats)).collect();
    assert_eq!(counts, [("a".into(), 2), ("b".into(), 1), ("c".into(), 0)]);
    Ok(())
}

/// Deleting a tag takes it off every chat of its user.
pub async fn deleting_a_tag_removes_it_from_chats(store: &Store) -> Result<()> {
    tagged_chat(store, "user-1", "c1", T0, &["x", "y"]).await?;
    tagged_chat(store, "user-1", "c2", T0, &["x"]).await?;
    tagged_chat(store, "user-2", "c3", T0, &["x"]).await?;
    store.tags.delete("user-1", "X").await?;
    assert_eq!(
        store.chats.get("c1").await?.tags.iter().collect::<Vec<_>>(),
        ["y"]
    );
    assert!(store.chats.get("c2").await?.tags.is_empty());
    assert_eq!(store.chats.get("c3").await?.tags.len(), 1);
    assert!(with_tags(store, "user-1", &["x"]).await?.is_empty());
    assert_kind!(store.tags.delete("user-1", "x").await, NotFound);
    Ok(())
}

/// The first spelling of a tag's name is kept; later spellings map to the same tag.
pub async fn the_first_spelling_of_a_tag_name_is_kept(store: &Store) -> Result<()> {
    tagged_chat(store, "user-1", "c1", T0, &["Machine Learning"]).await?;
    tagged_chat(store, "user-1", "c2", T0, &["machine learning"]).await?;
    let t = store.tags.ensure("user-1", "MACHINE LEARNING").await?;
    assert_eq!(t.name, "Machine Learning");
    assert_eq!(tag_ids(store, "user-1").await?, ["machine_learning"]);
    Ok(())
}

/// Creating tags whole is all or nothing, with `Conflict` on a taken key.
pub async fn create_many_tags_is_all_or_nothing(store: &Store) -> Result<()> {
    let tag = |user: &str, name: &str| Tag {
        id: chatstore_core::tag_id(name),
        name: name.into(),
        user_id: user.into(),
        meta: None,
    };
    store
        .tags
        .create_many(vec![tag("user-1", "A"), tag("user-2", "A")])
        .await?;
    assert_kind!(
        store
            .tags
            .create_many(vec![tag("user-1", "B"), tag("user-1", "a")])
            .await,
        Conflict
    );
    assert_eq!(tag_ids(store, "user-1").await?, ["a"]);
    let mut wrong = tag("user-1", "C");
    wrong.id = "not-c".into();
    assert_kind!(store.tags.create_many(vec![wrong]).await, InvalidInput);
    Ok(())
}

/// A keyset scan walks tags by `(user_id, id)`.
pub async fn tag_scan_walks_by_user_then_id(store: &Store) -> Result<()> {
    tagged_chat(store, "user-2", "c1", T0, &["b", "a"]).await?;
    tagged_chat(store, "user-1", "c2", T0, &["z"]).await?;
    let all = store.tags.scan(None, 10).await?;
    let keys: Vec<(String, String)> = all
        .iter()
        .map(|t| (t.user_id.clone(), t.id.clone()))
        .collect();
    assert_eq!(
        keys,
        [
            ("user-1".into(), "z".into()),
            ("user-2".into(), "a".into()),
            ("user-2".into(), "b".into())
        ]
    );
    let after = TagKey {
        user_id: "user-2".into(),
        id: "a".into(),
    };
    assert_eq!(ids(&store.tags.scan(Some(&after), 10).await?), ["b"]);
    Ok(())
}

/// Tag operations on a missing chat are `NotFound` and create no tag.
pub async fn tag_operations_on_a_missing_chat_are_not_found(store: &Store) -> Result<()> {
    assert_kind!(store.chats.add_tag("ghost", "x").await, NotFound);
    assert_kind!(store.chats.remove_tag("ghost", "x").await, NotFound);
    assert_kind!(store.chats.set_tags("ghost", &["x".into()]).await, NotFound);
    assert!(store.tags.scan(None, 10).await?.is_empty());
    Ok(())
}

/// An all-of tag filter without tags is `InvalidInput`.
pub async fn an_empty_all_of_filter_is_invalid(store: &Store) -> Result<()> {
    let q = ChatQuery::for_user("user-1").with_tags(Vec::<String>::new());
    assert_kind!(store.chats.list(&q).await, InvalidInput);
    assert_kind!(store.chats.list_items(&q).await, InvalidInput);
    Ok(())
}

/// Removing a tag the chat does not carry changes nothing.
pub async fn removing_an_absent_tag_changes_nothing(store: &Store) -> Result<()> {
    let before = tagged_chat(store, "user-1", "c1", T0, &["a"]).await?;
    let after = store.chats.remove_tag("c1", "b").await?;
    assert_eq!(after, before);
    let patch = ChatPatch {
        title: Some("t2".into()),
        updated_at: Some(T0 + 1),
        ..ChatPatch::default()
    };
    let c = store.chats.update("c1", patch).await?;
    assert_eq!(c.tags, before.tags, "a chat update keeps the tags");
    Ok(())
}

/// A tag's `meta` holding a bare number reads back as it was written.
pub async fn a_bare_number_in_tag_meta_round_trips(store: &Store) -> Result<()> {
    let tag = Tag {
        id: "work".into(),
        name: "work".into(),
        user_id: "user-1".into(),
        meta: Some(json!(5)),
    };
    store.tags.create_many(vec![tag.clone()]).await?;
    assert_eq!(store.tags.list("user-1").await?, vec![tag.clone()]);
    assert_eq!(store.tags.get("user-1", "work").await?, tag);
    Ok(())
}
