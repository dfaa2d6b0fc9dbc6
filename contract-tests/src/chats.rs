//! Contracts of `ChatRepo` (lists, filters, order, lifecycle).

use chatstore_core::{
    ChatCursor, ChatOrder, ChatPatch, ChatQuery, FolderFilter, NewChat, NewUser, PageRequest,
    Result, Store,
};
use serde_json::json;

use crate::assert_kind;
use crate::fixtures::{
    T0, chat, ids, listed, message, new_chat, new_message, obj, tagged_chat, user,
};

async fn list_ids(store: &Store, query: ChatQuery) -> Result<Vec<String>> {
    Ok(ids(&listed(store, &query).await?.items))
}

/// A created chat reads back with its blob, meta, tags, flags and timestamps.
pub async fn create_then_get_round_trips_a_chat(store: &Store) -> Result<()> {
    user(store, 1).await?;
    let mut new = new_chat("user-1", "c1", "Hello ünïcode", T0);
    new.meta = Some(obj(json!({"type": "note", "parent_chat_id": null})));
    new.tags = vec!["Work".into(), "ideas".into()];
    new.pinned = true;
    new.folder_id = Some("f1".into());
    new.share_id = Some("s1".into());
    new.updated_at = Some(T0 + 9);
    let created = store.chats.create(new).await?;
    let got = store.chats.get("c1").await?;
    assert_eq!(got, created);
    assert_eq!(got.title, "Hello ünïcode");
    assert_eq!(got.chat["models"], json!(["llama3"]));
    assert_eq!(
        got.meta,
        obj(json!({"type": "note", "parent_chat_id": null}))
    );
    assert_eq!(got.tags.iter().collect::<Vec<_>>(), ["ideas", "work"]);
    assert!(got.pinned && !got.archived);
    assert_eq!(got.folder_id.as_deref(), Some("f1"));
    assert_eq!(got.share_id.as_deref(), Some("s1"));
    assert_eq!((got.created_at, got.updated_at), (T0, T0 + 9));
    Ok(())
}

/// The title is mirrored into the blob's `title`, on create and on update.
pub async fn title_is_mirrored_into_the_blob(store: &Store) -> Result<()> {
    let c = chat(store, "user-1", "c1", "First", T0).await?;
    assert_eq!(c.chat["title"], "First");
    let patch = ChatPatch {
        title: Some("Second".into()),
        ..ChatPatch::default()
    };
    let c = store.chats.update("c1", patch).await?;
    assert_eq!(c.chat["title"], "Second");
    assert_eq!(store.chats.get("c1").await?.chat["title"], "Second");
    Ok(())
}

/// Without a title the chat takes the blob's `title`, else "New Chat".
pub async fn title_defaults_to_the_blob_title_then_new_chat(store: &Store) -> Result<()> {
    let mut from_blob = new_chat("user-1", "c1", "", T0);
    from_blob.title = None;
    from_blob.chat = Some(json!({"title": "From blob"}));
    assert_eq!(store.chats.create(from_blob).await?.title, "From blob");
    let mut bare = new_chat("user-1", "c2", "", T0);
    bare.title = None;
    bare.chat = None;
    let c = store.chats.create(bare).await?;
    assert_eq!(c.title, "New Chat");
    assert_eq!(store.chats.get("c2").await?.chat["title"], "New Chat");
    Ok(())
}

/// Creating a chat with a taken id is a `Conflict` and leaves the first chat as it was.
pub async fn duplicate_chat_id_is_a_conflict(store: &Store) -> Result<()> {
    let first = chat(store, "user-1", "c1", "one", T0).await?;
    assert_kind!(chat(store, "user-2", "c1", "two", T0).await, Conflict);
    assert_eq!(store.chats.get("c1").await?, first);
    Ok(())
}

/// Two chats cannot share a share id.
pub async fn share_id_is_unique(store: &Store) -> Result<()> {
    let mut a = new_chat("user-1", "c1", "a", T0);
    a.share_id = Some("share-x".into());
    store.chats.create(a).await?;
    let mut b = new_chat("user-1", "c2", "b", T0);
    b.share_id = Some("share-x".into());
    assert_kind!(store.chats.create(b).await, Conflict);
    chat(store, "user-1", "c3", "c", T0).await?;
    let patch = ChatPatch {
        share_id: Some(Some("share-x".into())),
        ..ChatPatch::default()
    };
    assert_kind!(store.chats.update("c3", patch).await, Conflict);
    assert_eq!(store.chats.get("c3").await?.share_id, None);
    Ok(())
}

/// Reading, updating or deleting a missing chat is `NotFound`.
pub async fn missing_chat_is_not_found(store: &Store) -> Result<()> {
    assert_kind!(store.chats.get("nope").await, NotFound);
    assert_kind!(
        store.chats.update("nope", ChatPatch::default()).await,
        NotFound
    );
    assert_kind!(store.chats.delete("nope").await, NotFound);
    Ok(())
}

/// An update changes the given fields and sets `updated_at`; `Some(None)` clears a folder.
pub async fn update_changes_given_fields_and_updated_at(store: &Store) -> Result<()> {
    let mut new = new_chat("user-1", "c1", "t", T0);
    new.folder_id = Some("f1".into());
    store.chats.create(new).await?;
    let patch = ChatPatch {
        archived: Some(true),
        pinned: Some(true),
        folder_id: Some(None),
        meta: Some(obj(json!({"status": "done"}))),
        chat: Some(json!({"models": ["gpt"], "params": {"temperature": 0.5}})),
        updated_at: Some(T0 + 30),
        ..ChatPatch::default()
    };
    let c = store.chats.update("c1", patch).await?;
    assert!(c.archived && c.pinned);
    assert_eq!(c.folder_id, None);
    assert_eq!(c.meta, obj(json!({"status": "done"})));
    assert_eq!(c.chat["params"]["temperature"], json!(0.5));
    assert_eq!(c.chat["title"], "t");
    assert_eq!(c.updated_at, T0 + 30);
    assert_eq!(c.created_at, T0);
    assert_eq!(store.chats.get("c1").await?, c);
    Ok(())
}

/// A blob given to `update` cannot replace the message history: messages change only
/// through `MessageRepo`.
pub async fn update_cannot_replace_the_message_history(store: &Store) -> Result<()> {
    chat(store, "user-1", "c1", "t", T0).await?;
    message(store, "c1", "m1", None, T0 + 1).await?;
    let patch = ChatPatch {
        chat: Some(json!({"history": {"messages": {}, "currentId": null}, "models": []})),
        ..ChatPatch::default()
    };
    let c = store.chats.update("c1", patch).await?;
    assert_eq!(c.chat["history"]["currentId"], "m1");
    assert!(c.chat["history"]["messages"]["m1"].is_object());
    assert_eq!(store.messages.list("c1").await?.len(), 1);
    Ok(())
}

/// Chats list by `updated_at` descending, ties broken by id ascending.
pub async fn list_orders_by_updated_at_desc_then_id(store: &Store) -> Result<()> {
    for (id, ts) in [
        ("c-b", T0 + 2),
        ("c-a", T0 + 2),
        ("c-c", T0 + 3),
        ("c-d", T0 + 1),
    ] {
        chat(store, "user-1", id, id, ts).await?;
    }
    let got = list_ids(store, ChatQuery::for_user("user-1")).await?;
    assert_eq!(got, ["c-c", "c-a", "c-b", "c-d"]);
    Ok(())
}

/// Pages cut the same total order without gaps or repeats; `total` counts every match.
pub async fn pagination_is_stable_and_total_counts_every_match(store: &Store) -> Result<()> {
    for i in 0..7 {
        chat(
            store,
            "user-1",
            &format!("c{i}"),
            "t",
            T0 + i64::from(i % 3),
        )
        .await?;
    }
    let all = list_ids(store, ChatQuery::for_user("user-1")).await?;
    assert_eq!(all.len(), 7);
    let mut paged = Vec::new();
    for offset in (0..7).step_by(3) {
        let page = listed(
            store,
            &ChatQuery::for_user("user-1").page(PageRequest::new(offset, 3)),
        )
        .await?;
        assert_eq!(page.total, 7);
        paged.extend(ids(&page.items));
    }
    assert_eq!(paged, all);
    let beyond = listed(
        store,
        &ChatQuery::for_user("user-1").page(PageRequest::new(50, 3)),
    )
    .await?;
    assert!(beyond.items.is_empty());
    assert_eq!(beyond.total, 7);
    Ok(())
}

/// Archived chats are hidden by default, listed alone with `archived(Some(true))`, and with
/// the rest with `archived(None)`.
pub async fn archived_chats_are_hidden_by_default(store: &Store) -> Result<()> {
    chat(store, "user-1", "active", "a", T0).await?;
    let mut arch = new_chat("user-1", "old", "o", T0 + 1);
    arch.archived = true;
    store.chats.create(arch).await?;
    assert_eq!(
        list_ids(store, ChatQuery::for_user("user-1")).await?,
        ["active"]
    );
    assert_eq!(
        list_ids(store, ChatQuery::for_user("user-1").archived(Some(true))).await?,
        ["old"]
    );
    assert_eq!(
        list_ids(store, ChatQuery::for_user("user-1").archived(None)).await?,
        ["old", "active"]
    );
    Ok(())
}

/// The pinned filter selects chats by their pinned flag.
pub async fn pinned_filter_selects_by_pinned(store: &Store) -> Result<()> {
    let mut pinned = new_chat("user-1", "p", "p", T0);
    pinned.pinned = true;
    store.chats.create(pinned).await?;
    chat(store, "user-1", "u", "u", T0).await?;
    assert_eq!(
        list_ids(store, ChatQuery::for_user("user-1").pinned(Some(true))).await?,
        ["p"]
    );
    assert_eq!(
        list_ids(store, ChatQuery::for_user("user-1").pinned(Some(false))).await?,
        ["u"]
    );
    Ok(())
}

/// The folder filter selects chats in one folder or in none.
pub async fn folder_filter_selects_by_folder(store: &Store) -> Result<()> {
    for (id, folder) in [("a", Some("f1")), ("b", Some("f2")), ("c", None)] {
        let mut c = new_chat("user-1", id, id, T0);
        c.folder_id = folder.map(str::to_owned);
        store.chats.create(c).await?;
    }
    let q = |f| ChatQuery::for_user("user-1").folder(f);
    assert_eq!(
        list_ids(store, q(FolderFilter::In("f1".into()))).await?,
        ["a"]
    );
    assert_eq!(list_ids(store, q(FolderFilter::NoFolder)).await?, ["c"]);
    assert_eq!(list_ids(store, q(FolderFilter::Any)).await?.len(), 3);
    Ok(())
}

/// Title search matches a substring case-insensitively (Unicode lower case), non-ASCII
/// letters included.
pub async fn title_search_is_case_insensitive_for_unicode(store: &Store) -> Result<()> {
    chat(store, "user-1", "a", "Mon ÉCOLE préférée", T0).await?;
    chat(store, "user-1", "b", "Straße und Ölpreis", T0 + 1).await?;
    chat(store, "user-1", "c", "plain ascii", T0 + 2).await?;
    // The Kelvin sign lower-cases to an ASCII `k`: an ASCII search finds a non-ASCII title.
    chat(store, "user-1", "d", "\u{212A}elvin scale", T0 + 3).await?;
    let q = |t: &str| ChatQuery::for_user("user-1").with_title(t);
    assert_eq!(list_ids(store, q("kelvin")).await?, ["d"]);
    assert_eq!(list_ids(store, q("école")).await?, ["a"]);
    assert_eq!(list_ids(store, q("ÖLPREIS")).await?, ["b"]);
    assert_eq!(list_ids(store, q("ASCII")).await?, ["c"]);
    assert!(list_ids(store, q("missing")).await?.is_empty());
    Ok(())
}

/// `%`, `_` and `\` in a title search match themselves only.
pub async fn title_search_treats_wildcards_literally(store: &Store) -> Result<()> {
    chat(store, "user-1", "a", "100% sure", T0).await?;
    chat(store, "user-1", "b", "1000 sure", T0 + 1).await?;
    chat(store, "user-1", "c", "snake_case", T0 + 2).await?;
    chat(store, "user-1", "d", "snakeXcase", T0 + 3).await?;
    chat(store, "user-1", "e", r"back\slash", T0 + 4).await?;
    let q = |t: &str| ChatQuery::for_user("user-1").with_title(t);
    assert_eq!(list_ids(store, q("0%")).await?, ["a"]);
    assert_eq!(list_ids(store, q("e_c")).await?, ["c"]);
    assert_eq!(list_ids(store, q(r"k\s")).await?, ["e"]);
    assert_eq!(list_ids(store, q("'")).await?, Vec::<String>::new());
    Ok(())
}

/// Internal chats (`meta.internal = true`) never appear in lists or totals, but `get` finds
/// them.
pub async fn internal_chats_are_never_listed_or_counted(store: &Store) -> Result<()> {
    chat(store, "user-1", "visible", "v", T0).await?;
    let mut internal = new_chat("user-1", "hidden", "h", T0 + 5);
    internal.meta = Some(obj(json!({"internal": true})));
    internal.tags = vec!["work".into()];
    store.chats.create(internal).await?;
    let mut not_internal = new_chat("user-1", "falsy", "f", T0 + 1);
    not_internal.meta = Some(obj(json!({"internal": false})));
    store.chats.create(not_internal).await?;
    let page = listed(store, &ChatQuery::for_user("user-1").archived(None)).await?;
    assert_eq!(ids(&page.items), ["falsy", "visible"]);
    assert_eq!(page.total, 2);
    assert!(
        list_ids(store, ChatQuery::for_user("user-1").with_tags(["work"]))
            .await?
            .is_empty()
    );
    assert!(store.chats.get("hidden").await?.is_internal());
    Ok(())
}

/// A query with `include_internal` lists internal chats too, in the list's order and under
/// its other filters, and counts them.
pub async fn include_internal_lists_internal_chats_too(store: &Store) -> Result<()> {
    chat(store, "user-1", "visible", "v", T0).await?;
    let mut internal = new_chat("user-1", "hidden", "h", T0 + 5);
    internal.meta = Some(obj(json!({"internal": true})));
    internal.tags = vec!["work".into()];
    store.chats.create(internal).await?;
    chat(store, "user-2", "theirs", "t", T0 + 9).await?;
    let all = ChatQuery::for_user("user-1").archived(None).internal(true);
    let page = listed(store, &all).await?;
    assert_eq!(ids(&page.items), ["hidden", "visible"]);
    assert_eq!(page.total, 2);
    assert_eq!(list_ids(store, all.with_tags(["work"])).await?, ["hidden"]);
    let visible = listed(store, &ChatQuery::for_user("user-1").archived(None)).await?;
    assert_eq!(ids(&visible.items), ["visible"]);
    Ok(())
}

/// Lists can order by `created_at` descending or by title, ties by id.
pub async fn list_can_order_by_created_at_and_title(store: &Store) -> Result<()> {
    for (id, title, created, updated) in [
        ("a", "beta", T0 + 1, T0 + 9),
        ("b", "alpha", T0 + 2, T0 + 3),
        ("c", "beta", T0 + 2, T0 + 1),
    ] {
        let mut c = new_chat("user-1", id, title, created);
        c.updated_at = Some(updated);
        store.chats.create(c).await?;
    }
    let q = |o| ChatQuery::for_user("user-1").order(o);
    assert_eq!(
        list_ids(store, q(ChatOrder::CreatedDesc)).await?,
        ["b", "c", "a"]
    );
    assert_eq!(
        list_ids(store, q(ChatOrder::TitleAsc)).await?,
        ["b", "a", "c"]
    );
    assert_eq!(
        list_ids(store, q(ChatOrder::UpdatedDesc)).await?,
        ["a", "b", "c"]
    );
    Ok(())
}

/// Walks `query` by cursor, `size` chats a page: each page's total counts the chats from
/// there on, the last page is short or followed by an empty one.
async fn walk_by_cursor(store: &Store, query: &ChatQuery, size: u64) -> Result<Vec<String>> {
    let mut walked = Vec::new();
    let mut next = query.clone().page(PageRequest::first(size));
    let most = listed(store, query).await?.total;
    loop {
        assert!(
            walked.len() as u64 <= most,
            "pages by cursor of {query:?} went past its {most} chats: {walked:?}"
        );
        let page = listed(store, &next).await?;
        let remaining = listed(store, &next.clone().page(PageRequest::default())).await?;
        assert_eq!(page.total, remaining.total, "the total of {next:?}");
        assert_eq!(page.total, remaining.items.len() as u64);
        walked.extend(ids(&page.items));
        let Some(last) = page.items.last() else {
            return Ok(walked);
        };
        next = next.clone().after(ChatCursor::after(last, query.order));
    }
}

/// Keyset paging: pages taken by cursor (`ChatQuery::after`) cut the same list as offsets, in
/// every order, with ties on the order's key broken by the id's bytes, under the other
/// filters; a cursor stays where it was when its chat changes or goes away.
pub async fn cursor_pages_walk_the_list_in_every_order(store: &Store) -> Result<()> {
    let chats = [
        ("c-B", "beta", T0 + 1, T0 + 9),
        ("c-a", "Beta", T0 + 2, T0 + 3),
        ("c-c", "beta", T0 + 2, T0 + 3),
        ("c-bb", "alpha", T0 + 2, T0 + 3),
        ("c-e", "Émile", T0 + 4, T0 + 9),
        ("c-d", "", T0 + 4, T0 + 1),
        ("c-f", "beta gamma", T0, T0 + 9),
    ];
    // (PocketBase ids are unique regardless of case: no `c-b` beside `c-B`.)
    for (id, title, created, updated) in chats {
        let mut c = new_chat("user-1", id, title, created).with_tags(["work"]);
        c.updated_at = Some(updated);
        store.chats.create(c).await?;
    }
    chat(store, "user-2", "theirs", "beta", T0 + 2).await?;
    let filters = [
        ChatQuery::for_user("user-1"),
        ChatQuery::for_user("user-1").with_tags(["work"]),
        ChatQuery::for_user("user-1").with_title("BETA"),
    ];
    for order in [
        ChatOrder::UpdatedDesc,
        ChatOrder::CreatedDesc,
        ChatOrder::TitleAsc,
    ] {
        for filter in &filters {
            let query = filter.clone().order(order);
            let all = list_ids(store, query.clone()).await?;
            for size in [1, 2, 3, 10] {
                assert_eq!(
                    walk_by_cursor(store, &query, size).await?,
                    all,
                    "pages of {size} by cursor in {order:?}, {filter:?}"
                );
            }
        }
    }
    // The cursor after the second chat of the default order (`c-e`), then that chat retitled
    // and moved to the top, and the chat after it deleted: the next page is the rest.
    let query = ChatQuery::for_user("user-1").page(PageRequest::first(2));
    let first = listed(store, &query).await?;
    assert_eq!(ids(&first.items), ["c-B", "c-e"]);
    let cursor = ChatCursor::after(&first.items[1], ChatOrder::UpdatedDesc);
    let retitle = ChatPatch {
        title: Some("moved".into()),
        ..ChatPatch::default()
    };
    store.chats.update("c-e", retitle).await?;
    store.chats.delete("c-f").await?;
    let next = listed(store, &query.clone().after(cursor)).await?;
    assert_eq!(ids(&next.items), ["c-a", "c-bb"]);
    assert_eq!(next.total, 4);
    // An offset counts from the cursor.
    let cursor = ChatCursor::after(&next.items[0], ChatOrder::UpdatedDesc);
    let skipped = query.after(cursor).page(PageRequest::new(1, 5));
    assert_eq!(list_ids(store, skipped).await?, ["c-c", "c-d"]);
    Ok(())
}

/// A cursor taken in another order than the list's, or holding a NUL, is refused.
pub async fn a_cursor_of_another_order_is_invalid(store: &Store) -> Result<()> {
    chat(store, "user-1", "c1", "t", T0).await?;
    let summary = listed(store, &ChatQuery::for_user("user-1")).await?.items[0].clone();
    let by_title = ChatQuery::for_user("user-1").order(ChatOrder::TitleAsc);
    let updated = ChatCursor::after(&summary, ChatOrder::UpdatedDesc);
    assert_kind!(
        store
            .chats
            .list(&by_title.clone().after(updated.clone()))
            .await,
        InvalidInput
    );
    assert_kind!(
        store.chats.list_items(&by_title.after(updated)).await,
        InvalidInput
    );
    let nul = ChatCursor::Title {
        title: "a\0b".into(),
        id: "c1".into(),
    };
    let query = ChatQuery::for_user("user-1").order(ChatOrder::TitleAsc);
    assert_kind!(store.chats.list(&query.after(nul)).await, InvalidInput);
    Ok(())
}

/// Deleting a chat deletes its messages.
pub async fn deleting_a_chat_removes_its_messages(store: &Store) -> Result<()> {
    chat(store, "user-1", "c1", "t", T0).await?;
    chat(store, "user-1", "c2", "t", T0).await?;
    message(store, "c1", "m1", None, T0).await?;
    message(store, "c2", "m1", None, T0).await?;
    store.chats.delete("c1").await?;
    assert_kind!(store.chats.get("c1").await, NotFound);
    assert_kind!(store.messages.list("c1").await, NotFound);
    assert_kind!(store.messages.get("c1", "m1").await, NotFound);
    let rest = store.messages.scan(None, 100).await?;
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].chat_id, "c2");
    Ok(())
}

/// `delete_for_user` deletes every chat of that user and no other, and counts them.
pub async fn delete_for_user_removes_only_that_users_chats(store: &Store) -> Result<()> {
    tagged_chat(store, "user-1", "a", T0, &["x"]).await?;
    let mut internal = new_chat("user-1", "b", "b", T0);
    internal.meta = Some(obj(json!({"internal": true})));
    store.chats.create(internal).await?;
    tagged_chat(store, "user-2", "c", T0, &["x"]).await?;
    assert_eq!(store.chats.delete_for_user("user-1").await?, 2);
    assert!(store.tags.list("user-1").await?.is_empty());
    assert_eq!(store.tags.list("user-2").await?.len(), 1);
    assert_eq!(ids(&store.chats.scan(None, 100).await?), ["c"]);
    assert_eq!(store.chats.delete_for_user("user-1").await?, 0);
    Ok(())
}

/// Bad ids, a non-object blob, bad tags or negative timestamps are `InvalidInput` and store
/// nothing.
pub async fn invalid_chat_input_is_refused_and_changes_nothing(store: &Store) -> Result<()> {
    let bads = [
        new_chat("user-1", "", "t", T0),
        new_chat("", "c1", "t", T0),
        new_chat("user-1", "a/b", "t", T0),
        NewChat {
            chat: Some(json!("not an object")),
            ..new_chat("user-1", "c1", "t", T0)
        },
        new_chat("user-1", "c1", "t", T0).with_tags(["ok", "  "]),
        new_chat("user-1", "c1", "t", -5),
        new_chat("user-1", "c1", "nul\0title", T0),
        NewChat {
            chat: Some(json!({"history": {"messages": {"m1": {"id": "m1"}}}})),
            ..new_chat("user-1", "c1", "t", T0)
        },
    ];
    for bad in bads {
        assert_kind!(store.chats.create(bad).await, InvalidInput);
    }
    assert!(store.chats.scan(None, 100).await?.is_empty());
    assert!(store.tags.list("user-1").await?.is_empty());
    let original = chat(store, "user-1", "c1", "t", T0).await?;
    let patch = ChatPatch {
        title: Some("changed".into()),
        chat: Some(json!([1])),
        ..ChatPatch::default()
    };
    assert_kind!(store.chats.update("c1", patch).await, InvalidInput);
    let patch = ChatPatch {
        meta: Some(obj(json!({"tags": ["x"]}))),
        ..ChatPatch::default()
    };
    assert_kind!(store.chats.update("c1", patch).await, InvalidInput);
    assert_eq!(store.chats.get("c1").await?, original);
    Ok(())
}

/// Timestamps are kept exactly up to 2^53 - 1 on every backend (PocketBase keeps numbers
/// as 64-bit floats); a larger one is `InvalidInput` for chats, messages and users, never a
/// value that reads back changed. A message's `created_at` above 10^10 is milliseconds.
pub async fn timestamps_past_2_pow_53_are_refused(store: &Store) -> Result<()> {
    let max = chatstore_core::validate::MAX_TIMESTAMP;
    let top = chat(store, "user-1", "top", "t", max).await?;
    assert_eq!((top.created_at, top.updated_at), (max, max));
    let got = store.chats.get("top").await?;
    assert_eq!((got.created_at, got.updated_at), (max, max));
    // A message's created_at above 10^10 is milliseconds, as Open WebUI reads it.
    let mut m = new_message("top", "m1", None, "user", "x", 1_700_000_000_123);
    m.updated_at = Some(max);
    let stored = store.messages.upsert(m).await?;
    assert_eq!((stored.created_at, stored.updated_at), (1_700_000_000, max));
    let got = store.messages.get("top", "m1").await?;
    assert_eq!((got.created_at, got.updated_at), (1_700_000_000, max));

    for past in [max + 1, max + 2, i64::MAX] {
        assert_kind!(chat(store, "user-1", "past", "t", past).await, InvalidInput);
        let m = new_message("top", "m2", None, "user", "x", past);
        assert_kind!(store.messages.upsert(m).await, InvalidInput);
        let mut user = NewUser::new("past@x.io", "P").with_id("past");
        user.created_at = Some(past);
        assert_kind!(store.users.create(user).await, InvalidInput);
        let patch = ChatPatch {
            updated_at: Some(past),
            ..ChatPatch::default()
        };
        assert_kind!(store.chats.update("top", patch).await, InvalidInput);
    }
    assert_kind!(store.chats.get("past").await, NotFound);
    assert_kind!(store.users.get("past").await, NotFound);
    assert_eq!(ids(&store.messages.list("top").await?), ["m1"]);
    assert_eq!(store.chats.get("top").await?.updated_at, max);
    Ok(())
}

/// A keyset scan walks every chat by id, internal and archived ones included.
pub async fn chat_scan_walks_every_chat_including_internal(store: &Store) -> Result<()> {
    chat(store, "user-2", "c3", "t", T0).await?;
    let mut internal = new_chat("user-1", "c1", "t", T0);
    internal.meta = Some(obj(json!({"internal": true})));
    store.chats.create(internal).await?;
    let mut archived = new_chat("user-1", "c2", "t", T0);
    archived.archived = true;
    store.chats.create(archived).await?;
    assert_eq!(ids(&store.chats.scan(None, 2).await?), ["c1", "c2"]);
    assert_eq!(ids(&store.chats.scan(Some("c2"), 2).await?), ["c3"]);
    assert!(store.chats.scan(Some("c3"), 2).await?.is_empty());
    Ok(())
}

/// A bulk create with one bad chat stores none of them (nor their tags).
pub async fn create_many_chats_is_all_or_nothing(store: &Store) -> Result<()> {
    chat(store, "user-1", "taken", "t", T0).await?;
    let batch = vec![
        new_chat("user-1", "n1", "t", T0).with_tags(["fresh"]),
        new_chat("user-1", "taken", "t", T0),
    ];
    assert_kind!(store.chats.create_many(batch).await, Conflict);
    assert_kind!(store.chats.get("n1").await, NotFound);
    assert_kind!(store.tags.get("user-1", "fresh").await, NotFound);
    let made = store
        .chats
        .create_many(vec![
            new_chat("user-1", "n1", "t", T0),
            new_chat("user-1", "n2", "t", T0),
        ])
        .await?;
    assert_eq!(ids(&made), ["n1", "n2"]);
    Ok(())
}

/// A bulk create adds the tags its chats name that the user lacks (named as the first chat
/// naming one names it), leaves the user's existing tags as they are, and stores every chat's
/// messages.
pub async fn create_many_chats_adds_missing_tags_and_keeps_existing_ones(
    store: &Store,
) -> Result<()> {
    store.tags.ensure("user-1", "Deep Work").await?;
    let mut with_history = new_chat("user-1", "n2", "t", T0).with_tags(["fresh", "Deep Work"]);
    with_history.chat = Some(json!({"history": {"currentId": "m2", "messages": {
        "m1": {"id": "m1", "parentId": null, "role": "user", "content": "hi", "timestamp": T0},
        "m2": {"id": "m2", "parentId": "m1", "role": "assistant", "content": "yo", "timestamp": T0 + 1}
    }}}));
    let made = store
        .chats
        .create_many(vec![
            new_chat("user-1", "n1", "t", T0).with_tags(["deep work", "Fresh"]),
            with_history,
            new_chat("user-2", "n3", "t", T0).with_tags(["fresh"]),
        ])
        .await?;
    assert_eq!(ids(&made), ["n1", "n2", "n3"]);
    assert_eq!(
        store.tags.get("user-1", "deep_work").await?.name,
        "Deep Work"
    );
    assert_eq!(store.tags.get("user-1", "fresh").await?.name, "Fresh");
    assert_eq!(store.tags.get("user-2", "fresh").await?.name, "fresh");
    for (id, tags) in [
        ("n1", vec!["deep_work", "fresh"]),
        ("n2", vec!["deep_work", "fresh"]),
    ] {
        let got = store.chats.get(id).await?.tags;
        assert_eq!(got.iter().map(String::as_str).collect::<Vec<_>>(), tags);
    }
    assert_eq!(ids(&store.messages.list("n2").await?), ["m1", "m2"]);
    assert!(store.messages.list("n1").await?.is_empty());
    Ok(())
}

/// Tags given in a new chat's `meta.tags` (Open WebUI's storage) become its tag set and leave
/// `meta`.
pub async fn meta_tags_of_a_new_chat_become_its_tags(store: &Store) -> Result<()> {
    let mut new = new_chat("user-1", "c1", "t", T0);
    new.meta = Some(obj(json!({"tags": ["Deep Work", "ml"], "type": "note"})));
    new.tags = vec!["ml".into()];
    let c = store.chats.create(new).await?;
    assert_eq!(c.tags.iter().collect::<Vec<_>>(), ["deep_work", "ml"]);
    assert_eq!(c.meta, obj(json!({"type": "note"})));
    assert_eq!(
        store.tags.get("user-1", "deep_work").await?.name,
        "Deep Work"
    );
    Ok(())
}

/// Messages in a new chat's `history.messages` (or legacy flat `messages`) are stored as
/// messages and the blob is kept in canonical form.
pub async fn history_in_a_new_chat_becomes_messages(store: &Store) -> Result<()> {
    let mut new = new_chat("user-1", "c1", "t", T0);
    new.chat = Some(json!({
        "history": {
            "currentId": "m2",
            "messages": {
                "m1": {"id": "m1", "parentId": null, "role": "user", "content": "hi", "timestamp": T0},
                "m2": {"id": "m2", "parentId": "m1", "role": "assistant", "content": "hello",
                       "model": "llama3", "timestamp": (T0 + 1) * 1000}
            }
        }
    }));
    let c = store.chats.create(new).await?;
    let listed = store.messages.list("c1").await?;
    assert_eq!(ids(&listed), ["m1", "m2"]);
    assert_eq!(
        listed[1].created_at,
        T0 + 1,
        "millisecond timestamps are normalised"
    );
    assert_eq!(listed[1].model_id.as_deref(), Some("llama3"));
    assert_eq!(listed[0].user_id.as_deref(), Some("user-1"));
    assert_eq!(
        c.chat["history"]["messages"]["m1"]["childrenIds"],
        json!(["m2"])
    );
    assert_eq!(c.chat["history"]["currentId"], "m2");
    let mut legacy = new_chat("user-1", "c2", "t", T0);
    legacy.chat = Some(json!({"messages": [
        {"id": "a", "role": "user", "content": "q", "timestamp": T0},
        {"id": "b", "parentId": "a", "role": "assistant", "content": "r", "timestamp": T0 + 2}
    ]}));
    let c2 = store.chats.create(legacy).await?;
    assert_eq!(ids(&store.messages.list("c2").await?), ["a", "b"]);
    assert_eq!(c2.chat["history"]["currentId"], "b");
    assert!(c2.chat.get("messages").is_none());
    Ok(())
}

/// A user's list never shows another user's chats.
pub async fn lists_of_another_user_are_empty(store: &Store) -> Result<()> {
    chat(store, "user-1", "c1", "t", T0).await?;
    let page = listed(store, &ChatQuery::for_user("user-2")).await?;
    assert!(page.items.is_empty());
    assert_eq!(page.total, 0);
    for bad in [
        ChatQuery::for_user(""),
        ChatQuery::for_user("user-1").page(PageRequest::new(0, 0)),
    ] {
        assert_kind!(store.chats.list(&bad).await, InvalidInput);
        assert_kind!(store.chats.list_items(&bad).await, InvalidInput);
    }
    Ok(())
}

/// A title search without a total reads candidates only until its page is full: pages of a
/// search whose matches lie far apart among titles the SQL prefilter cannot decide (not
/// ASCII) are the pages `list` cuts, the last one short and one past the end empty.
pub async fn title_search_pages_without_a_total_match_list(store: &Store) -> Result<()> {
    let chats = (0..150)
        .map(|i| {
            let title = if i % 50 == 0 {
                format!("Zeta ÄBC {i}")
            } else {
                format!("Émile {i}")
            };
            new_chat("user-1", &format!("c{i:03}"), &title, T0 + i64::from(i))
        })
        .collect();
    store.chats.create_many(chats).await?;
    let q = |offset, limit| {
        ChatQuery::for_user("user-1")
            .with_title("äbc")
            .page(PageRequest::new(offset, limit))
    };
    assert_eq!(
        ids(&listed(store, &q(0, 60)).await?.items),
        ["c100", "c050", "c000"]
    );
    assert_eq!(ids(&listed(store, &q(1, 2)).await?.items), ["c050", "c000"]);
    assert_eq!(ids(&listed(store, &q(2, 1)).await?.items), ["c000"]);
    assert!(listed(store, &q(3, 5)).await?.items.is_empty());
    assert_eq!(
        ids(&listed(store, &q(0, 2).with_title("émile 14")).await?.items),
        ["c149", "c148"]
    );
    Ok(())
}
