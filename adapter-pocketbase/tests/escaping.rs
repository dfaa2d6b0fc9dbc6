//! Hostile strings (quotes, backslashes, `||`, `&&`, `%`, `_`, parentheses, unicode) reach
//! every filtered query of the adapter and match only literally: PocketBase has no parameter
//! binding over HTTP, so this proves the one escaping function in `filter.rs` is used
//! everywhere a user string meets a filter.

mod common;

use std::collections::BTreeSet;

use chatstore_core::validate::RESERVED_ID_CHARS;
use chatstore_core::{
    ChatQuery, FileQuery, FolderFilter, NewChat, NewFile, NewMessage, NewUser, PageRequest, TagKey,
    tag_id,
};

/// Strings that break a filter when pasted into it unescaped.
const HOSTILE: &[&str] = &[
    "x\" || id != \"",
    "x' || id != '",
    "\"",
    "'",
    "ends\\",
    "a\\\"b",
    "%",
    "_",
    "50%_off",
    "a||b",
    "&&",
    ")(",
    "~=!",
    "ünï☃ДЖ",
    "İstanbul",
    "plain",
];

/// Hostile strings usable as ids (chatstore ids have no whitespace and none of
/// `RESERVED_ID_CHARS`); quotes and `%` still reach filters through emails, titles and tags.
fn hostile_ids() -> Vec<String> {
    HOSTILE
        .iter()
        .map(|h| {
            h.chars()
                .filter(|c| !c.is_whitespace() && !RESERVED_ID_CHARS.contains(c))
                .collect::<String>()
        })
        .filter(|h| !h.is_empty())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// PocketBase refuses these in record ids (`validation_forbidden_pk_character`).
const PB_FORBIDDEN: &[char] = &['.', '|', '"', '\'', '`', '<', '>', ':', '?', '*', '%', '$'];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_strings_match_only_literally_in_every_filter() {
    let Some(pb) = common::backend().await else {
        return;
    };
    let store = pb.store();
    let ids = hostile_ids();

    // Users: hostile emails; get_by_email finds each by its own email only.
    for (n, h) in ids.iter().enumerate() {
        store
            .users
            .create(NewUser::new(format!("{h}{n}@x.io"), h.clone()).with_id(format!("u{n}")))
            .await
            .expect("user with a hostile email");
    }
    for (n, h) in ids.iter().enumerate() {
        let user = store
            .users
            .get_by_email(&format!("{}{n}@X.IO", h.to_uppercase()))
            .await
            .expect("found by its own email");
        assert_eq!(user.id, format!("u{n}"));
    }
    for h in HOSTILE {
        let got = store.users.get_by_email(h).await;
        assert!(got.is_err(), "email {h:?} matched {got:?}");
    }
    // Scans after hostile keys (ids need not exist to be scanned after).
    let all_users: Vec<String> = (0..ids.len()).map(|n| format!("u{n}")).collect();
    for after in all_users.iter().chain(ids.iter()) {
        let got: Vec<String> = store
            .users
            .scan(Some(after), 1000)
            .await
            .expect("scan")
            .into_iter()
            .map(|u| u.id)
            .collect();
        let mut want: Vec<String> = all_users.iter().filter(|u| *u > after).cloned().collect();
        want.sort();
        assert_eq!(got, want, "users after {after:?}");
    }

    // Chats: hostile owners, folders, titles and tags; every list filter, both list paths.
    let owner = "owner";
    let mut titles = Vec::new();
    for (n, h) in HOSTILE.iter().enumerate() {
        let mut chat = NewChat::new(owner, format!("T{n} {h}"))
            .with_id(format!("c{n}"))
            .with_tags([format!("tag {h}")]);
        chat.folder_id = ids.get(n).cloned();
        store.chats.create(chat).await.expect("chat");
        titles.push(format!("T{n} {h}"));
    }
    for (n, h) in ids.iter().enumerate() {
        store
            .chats
            .create(
                NewChat::new(h.clone(), "mine")
                    .with_id(format!("cu{n}"))
                    .with_tags([h.clone()]),
            )
            .await
            .expect("chat of a hostile user");
    }
    for h in HOSTILE {
        let page = store
            .chats
            .list(&ChatQuery::for_user(owner).with_title(*h))
            .await
            .expect("title filter");
        let got: BTreeSet<String> = page.items.into_iter().map(|c| c.title).collect();
        let want: BTreeSet<String> = titles
            .iter()
            .filter(|t| t.to_lowercase().contains(&h.to_lowercase()))
            .cloned()
            .collect();
        assert_eq!(got, want, "title filter {h:?}");
        let tagged = store
            .chats
            .list(
                &ChatQuery::for_user(owner)
                    .with_title(*h)
                    .with_tags([format!("tag {h}")]),
            )
            .await
            .expect("title + tag filter");
        let got: BTreeSet<String> = tagged.items.into_iter().map(|c| c.title).collect();
        let wanted_tag = tag_id(&format!("tag {h}"));
        let want: BTreeSet<String> = titles
            .iter()
            .enumerate()
            .filter(|(i, _)| tag_id(&format!("tag {}", HOSTILE[*i])) == wanted_tag)
            .map(|(_, t)| t.clone())
            .collect();
        assert_eq!(got, want, "tag filter {h:?}");
    }
    for (n, h) in ids.iter().enumerate() {
        let page = store
            .chats
            .list(&ChatQuery::for_user(owner).folder(FolderFilter::In(h.clone())))
            .await
            .expect("folder filter");
        let got: Vec<String> = page.items.into_iter().map(|c| c.id).collect();
        let want: Vec<String> = (0..HOSTILE.len())
            .filter(|i| ids.get(*i) == Some(h))
            .map(|i| format!("c{i}"))
            .collect();
        assert_eq!(got, want, "folder {h:?} (n={n})");
        let mine = store
            .chats
            .list(&ChatQuery::for_user(h.clone()))
            .await
            .expect("user filter");
        assert_eq!(mine.total, 1, "chats of user {h:?}");
        assert_eq!(mine.items[0].id, format!("cu{n}"));
        let tagged = store
            .chats
            .list(&ChatQuery::for_user(h.clone()).with_tags([h.clone()]))
            .await
            .expect("tag filter");
        assert_eq!(tagged.total, 1, "tagged chats of user {h:?}");
        let tags = store.tags.list(h).await.expect("tags");
        assert_eq!(tags.len(), 1, "tags of {h:?}");
        let usage = store.tags.usage(h).await.expect("usage");
        assert_eq!(usage.len(), 1);
        assert_eq!(usage[0].chats, 1);
    }
    let usage = store.tags.usage(owner).await.expect("usage");
    assert_eq!(usage.len(), HOSTILE.len());
    assert!(usage.iter().all(|u| u.chats == 1), "{usage:?}");

    // Tag scans after hostile keys.
    let all_tags = store.tags.scan(None, 1000).await.expect("tag scan");
    for t in &all_tags {
        let key = TagKey {
            user_id: t.user_id.clone(),
            id: t.id.clone(),
        };
        let got = store.tags.scan(Some(&key), 1000).await.expect("scan");
        let want: Vec<_> = all_tags
            .iter()
            .filter(|x| {
                (x.user_id.as_str(), x.id.as_str()) > (key.user_id.as_str(), key.id.as_str())
            })
            .cloned()
            .collect();
        assert_eq!(got, want, "tags after {key:?}");
    }

    // Messages: hostile message ids; list per chat and scan by key.
    for (n, h) in ids.iter().enumerate() {
        store
            .messages
            .upsert(NewMessage::text(
                format!("cu{n}"),
                h.clone(),
                "user",
                h.clone(),
            ))
            .await
            .expect("message");
    }
    for (n, h) in ids.iter().enumerate() {
        let list = store.messages.list(&format!("cu{n}")).await.expect("list");
        assert_eq!(list.len(), 1);
        assert_eq!(&list[0].id, h);
        let one = store.messages.get(&format!("cu{n}"), h).await.expect("get");
        assert_eq!(&one.id, h);
    }
    let keys: Vec<String> = store
        .messages
        .scan(None, 1000)
        .await
        .expect("scan")
        .iter()
        .map(|m| m.key())
        .collect();
    assert_eq!(keys.len(), ids.len());
    for after in keys.iter().chain(ids.iter()) {
        let got: Vec<String> = store
            .messages
            .scan(Some(after), 1000)
            .await
            .expect("scan")
            .iter()
            .map(|m| m.key())
            .collect();
        let want: Vec<String> = keys.iter().filter(|k| *k > after).cloned().collect();
        assert_eq!(got, want, "messages after {after:?}");
    }

    // Files: hostile owners; list by user, delete_for_user.
    for (n, h) in ids.iter().enumerate() {
        store
            .files
            .put(
                NewFile::new(h.clone(), format!("{h}.txt"), h.as_bytes().to_vec())
                    .with_id(format!("f{n}")),
            )
            .await
            .expect("file");
    }
    for (n, h) in ids.iter().enumerate() {
        let page = store
            .files
            .list(&FileQuery {
                user_id: Some(h.clone()),
                page: PageRequest::default(),
            })
            .await
            .expect("file list");
        let got: Vec<String> = page.items.into_iter().map(|f| f.id).collect();
        assert_eq!(got, vec![format!("f{n}")], "files of {h:?}");
    }
    let first = &ids[0];
    assert_eq!(store.files.delete_for_user(first).await.expect("delete"), 1);
    assert_eq!(store.chats.delete_for_user(first).await.expect("delete"), 1);
    assert_eq!(
        store.files.scan(None, 1000).await.expect("scan").len(),
        ids.len() - 1
    );
    let chats_left = store.chats.scan(None, 1000).await.expect("scan");
    assert_eq!(chats_left.len(), HOSTILE.len() + ids.len() - 1);
}

/// Ids with a character PocketBase forbids in primary keys are refused as `InvalidInput`, and
/// nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_with_characters_pocketbase_forbids_are_invalid_input() {
    let Some(pb) = common::backend().await else {
        return;
    };
    let store = pb.store();
    for c in PB_FORBIDDEN {
        let id = format!("a{c}b");
        let user = store
            .users
            .create(NewUser::new(format!("{c}@x.io"), "x").with_id(&id))
            .await;
        chatstore_contract::assert_kind!(user, InvalidInput);
        let chat = store
            .chats
            .create(NewChat::new("u", "t").with_id(&id).with_tags(["x"]))
            .await;
        chatstore_contract::assert_kind!(chat, InvalidInput);
        let file = store
            .files
            .put(NewFile::new("u", "f", vec![1]).with_id(&id))
            .await;
        chatstore_contract::assert_kind!(file, InvalidInput);
    }
    assert!(store.users.scan(None, 100).await.expect("scan").is_empty());
    assert!(store.chats.scan(None, 100).await.expect("scan").is_empty());
    assert!(store.tags.scan(None, 100).await.expect("scan").is_empty());
    assert!(store.files.scan(None, 100).await.expect("scan").is_empty());
}
