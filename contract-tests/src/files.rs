//! Contracts of `FileRepo`: bytes, metadata, sha256.

use chatstore_core::files::sha256_hex;
use chatstore_core::{FileQuery, PageRequest, Result, Store};
use serde_json::json;

use crate::assert_kind;
use crate::fixtures::{T0, file, ids, new_file, obj};

/// Stored bytes read back identically, binary and large ones included.
pub async fn put_then_read_round_trips_bytes(store: &Store) -> Result<()> {
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 256) as u8).collect();
    let mut new = new_file("user-1", "f1", &bytes, T0);
    new.data = obj(json!({"status": "pending"}));
    new.meta = obj(json!({"data": {"knowledge_id": "kb1"}}));
    let meta = store.files.put(new).await?;
    assert_eq!(store.files.read("f1").await?, bytes);
    assert_eq!(store.files.get("f1").await?, meta);
    assert_eq!(meta.size, 200_000);
    assert_eq!(meta.filename, "f1.txt");
    assert_eq!(meta.content_type.as_deref(), Some("text/plain"));
    assert_eq!(meta.data, obj(json!({"status": "pending"})));
    assert_eq!(meta.meta, obj(json!({"data": {"knowledge_id": "kb1"}})));
    Ok(())
}

/// The sha256 of the bytes is recorded as lower-case hex.
pub async fn sha256_of_the_bytes_is_recorded(store: &Store) -> Result<()> {
    let meta = file(store, "user-1", "f1", b"abc", T0).await?;
    assert_eq!(
        meta.sha256,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(store.files.get("f1").await?.sha256, sha256_hex(b"abc"));
    Ok(())
}

/// An empty file is a file.
pub async fn empty_files_are_allowed(store: &Store) -> Result<()> {
    let meta = file(store, "user-1", "f1", b"", T0).await?;
    assert_eq!(meta.size, 0);
    assert!(store.files.read("f1").await?.is_empty());
    Ok(())
}

/// Storing a file under a taken id is a `Conflict` and keeps the first file's bytes.
pub async fn duplicate_file_id_is_a_conflict(store: &Store) -> Result<()> {
    file(store, "user-1", "f1", b"first", T0).await?;
    assert_kind!(file(store, "user-2", "f1", b"second", T0).await, Conflict);
    assert_eq!(store.files.read("f1").await?, b"first");
    Ok(())
}

/// Reading or deleting a missing file is `NotFound`.
pub async fn missing_file_is_not_found(store: &Store) -> Result<()> {
    assert_kind!(store.files.get("nope").await, NotFound);
    assert_kind!(store.files.read("nope").await, NotFound);
    assert_kind!(store.files.delete("nope").await, NotFound);
    Ok(())
}

/// Files list by `updated_at` descending then id, per user or for everyone, with a total.
pub async fn files_list_newest_first_with_total(store: &Store) -> Result<()> {
    file(store, "user-1", "a", b"1", T0 + 1).await?;
    file(store, "user-1", "b", b"2", T0 + 3).await?;
    file(store, "user-1", "c", b"3", T0 + 3).await?;
    file(store, "user-2", "d", b"4", T0 + 2).await?;
    let mine = store
        .files
        .list(&FileQuery {
            user_id: Some("user-1".into()),
            page: PageRequest::new(0, 2),
        })
        .await?;
    assert_eq!(ids(&mine.items), ["b", "c"]);
    assert_eq!(mine.total, 3);
    let all = store.files.list(&FileQuery::default()).await?;
    assert_eq!(ids(&all.items), ["b", "c", "d", "a"]);
    Ok(())
}

/// Deleting a file removes its metadata and its bytes.
pub async fn delete_removes_metadata_and_bytes(store: &Store) -> Result<()> {
    file(store, "user-1", "f1", b"bytes", T0).await?;
    store.files.delete("f1").await?;
    assert_kind!(store.files.get("f1").await, NotFound);
    assert_kind!(store.files.read("f1").await, NotFound);
    file(store, "user-1", "f1", b"again", T0).await?;
    assert_eq!(store.files.read("f1").await?, b"again");
    Ok(())
}

/// Empty names, bad ids and reserved meta keys are `InvalidInput` and store nothing.
pub async fn invalid_file_is_refused_and_changes_nothing(store: &Store) -> Result<()> {
    let mut no_name = new_file("user-1", "f1", b"x", T0);
    no_name.filename = String::new();
    assert_kind!(store.files.put(no_name).await, InvalidInput);
    assert_kind!(
        store
            .files
            .put(new_file("user-1", "../etc", b"x", T0))
            .await,
        InvalidInput
    );
    assert_kind!(
        store.files.put(new_file("", "f1", b"x", T0)).await,
        InvalidInput
    );
    let mut reserved = new_file("user-1", "f1", b"x", T0);
    reserved.meta = obj(json!({"file_hash": "forged"}));
    assert_kind!(store.files.put(reserved).await, InvalidInput);
    assert_eq!(store.files.list(&FileQuery::default()).await?.total, 0);
    Ok(())
}

/// A bulk put with one bad file stores none of them.
pub async fn put_many_is_all_or_nothing(store: &Store) -> Result<()> {
    file(store, "user-1", "taken", b"x", T0).await?;
    let batch = vec![
        new_file("user-1", "n1", b"1", T0),
        new_file("user-1", "taken", b"2", T0),
    ];
    assert_kind!(store.files.put_many(batch).await, Conflict);
    assert_kind!(store.files.get("n1").await, NotFound);
    let made = store
        .files
        .put_many(vec![
            new_file("user-1", "n1", b"1", T0),
            new_file("user-2", "n2", b"2", T0),
        ])
        .await?;
    assert_eq!(ids(&made), ["n1", "n2"]);
    assert_eq!(store.files.read("n2").await?, b"2");
    Ok(())
}

/// A keyset scan walks every file by id.
pub async fn file_scan_walks_by_id(store: &Store) -> Result<()> {
    for id in ["c", "a", "b"] {
        file(store, "user-1", id, id.as_bytes(), T0).await?;
    }
    assert_eq!(ids(&store.files.scan(None, 2).await?), ["a", "b"]);
    assert_eq!(ids(&store.files.scan(Some("b"), 2).await?), ["c"]);
    Ok(())
}

/// `delete_for_user` deletes every file of that user and no other.
pub async fn delete_for_user_removes_only_that_users_files(store: &Store) -> Result<()> {
    file(store, "user-1", "a", b"1", T0).await?;
    file(store, "user-1", "b", b"2", T0).await?;
    file(store, "user-2", "c", b"3", T0).await?;
    assert_eq!(store.files.delete_for_user("user-1").await?, 2);
    assert_eq!(ids(&store.files.scan(None, 10).await?), ["c"]);
    assert_eq!(store.files.read("c").await?, b"3");
    Ok(())
}
