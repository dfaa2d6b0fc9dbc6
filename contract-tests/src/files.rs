//! Contracts of `FileRepo`: bytes, metadata, sha256, streaming, byte ranges, download links.

use std::time::Duration;

use chatstore_core::files::sha256_hex;
use chatstore_core::{ByteRange, ErrorKind, FileQuery, PageRequest, Result, Store};
use serde_json::json;

use crate::assert_kind;
use crate::fixtures::{
    T0, chunked, cut_off, file, ids, new_file, new_stream_file, obj, pattern, stalled,
};

/// Reads a whole stream (whole file or range) of `id`.
async fn read_range(store: &Store, id: &str, range: Option<ByteRange>) -> Result<Vec<u8>> {
    store.files.read_stream(id, range).await?.into_vec().await
}

/// Nothing of file `id` is visible: no metadata, no bytes, not listed.
async fn assert_nothing_stored(store: &Store, id: &str) -> Result<()> {
    assert_kind!(store.files.get(id).await, NotFound);
    assert_kind!(store.files.read_stream(id, None).await, NotFound);
    assert_eq!(store.files.list(&FileQuery::default()).await?.total, 0);
    Ok(())
}

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

/// A streamed upload stores exactly the bytes of the stream, with their size and sha256, and
/// reads back the same through both the stream and the whole-buffer call.
pub async fn streamed_upload_round_trips_and_records_size_and_hash(store: &Store) -> Result<()> {
    let bytes = pattern(3 * 1024 * 1024 + 17);
    let body = chunked(&bytes, &[1, 65_536, 7_777, 300_000]);
    let meta = store
        .files
        .put_stream(new_stream_file("user-1", "big", T0), body, None)
        .await?;
    assert_eq!(meta.size, bytes.len() as u64);
    assert_eq!(meta.sha256, sha256_hex(&bytes));
    assert_eq!(store.files.get("big").await?, meta);
    let stream = store.files.read_stream("big", None).await?;
    assert!(stream.is_whole());
    assert_eq!(stream.meta, meta);
    assert_eq!(stream.into_vec().await?, bytes);
    assert_eq!(store.files.read("big").await?, bytes);
    // The expected hash, in any case, is accepted when it matches.
    let upper = sha256_hex(b"abc").to_uppercase();
    let meta = store
        .files
        .put_stream(
            new_stream_file("user-1", "abc", T0),
            chunked(b"abc", &[2]),
            Some(&upper),
        )
        .await?;
    assert_eq!(meta.sha256, sha256_hex(b"abc"));
    Ok(())
}

/// A byte range reads exactly bytes `start..end` (the end clamped to the size, open ends to
/// the end of the file), with the range reported on the stream.
pub async fn byte_ranges_read_exactly_the_asked_bytes(store: &Store) -> Result<()> {
    let bytes = pattern(200_000);
    let size = bytes.len() as u64;
    store
        .files
        .put_stream(
            new_stream_file("user-1", "r", T0),
            chunked(&bytes, &[50_000]),
            None,
        )
        .await?;
    let cases = [
        (ByteRange::new(0, 1), 0, 1),
        (ByteRange::new(10, 20), 10, 20),
        (ByteRange::new(65_530, 65_545), 65_530, 65_545),
        (ByteRange::from(size - 5), size - 5, size),
        (ByteRange::new(199_000, 10_000_000), 199_000, size),
        (ByteRange::from(0), 0, size),
    ];
    for (range, start, end) in cases {
        let stream = store.files.read_stream("r", Some(range)).await?;
        assert_eq!((stream.start, stream.end), (start, end), "{range:?}");
        assert_eq!(
            stream.into_vec().await?,
            bytes[start as usize..end as usize],
            "{range:?}"
        );
    }
    Ok(())
}

/// A range that starts at or past the end, or is empty, is `InvalidInput` (HTTP's 416).
pub async fn a_range_outside_the_file_is_invalid(store: &Store) -> Result<()> {
    file(store, "user-1", "r", b"0123456789", T0).await?;
    assert_kind!(
        store
            .files
            .read_stream("r", Some(ByteRange::from(10)))
            .await,
        InvalidInput
    );
    assert_kind!(
        store
            .files
            .read_stream("r", Some(ByteRange::new(4, 4)))
            .await,
        InvalidInput
    );
    assert_kind!(
        store
            .files
            .read_stream("nope", Some(ByteRange::new(0, 1)))
            .await,
        NotFound
    );
    assert_eq!(
        read_range(store, "r", Some(ByteRange::new(9, 10))).await?,
        b"9"
    );
    Ok(())
}

/// An upload whose bytes hash to something else than the expected sha256 is `InvalidInput`
/// and stores nothing; a malformed expected hash or buffered bytes are refused before any
/// byte moves.
pub async fn a_hash_mismatch_is_refused_and_stores_nothing(store: &Store) -> Result<()> {
    let bytes = pattern(300_000);
    let wrong = sha256_hex(b"something else");
    assert_kind!(
        store
            .files
            .put_stream(
                new_stream_file("user-1", "f1", T0),
                chunked(&bytes, &[64 * 1024]),
                Some(&wrong)
            )
            .await,
        InvalidInput
    );
    assert_nothing_stored(store, "f1").await?;
    assert_kind!(
        store
            .files
            .put_stream(
                new_stream_file("user-1", "f1", T0),
                chunked(&bytes, &[64 * 1024]),
                Some("not-a-hash")
            )
            .await,
        InvalidInput
    );
    assert_kind!(
        store
            .files
            .put_stream(
                new_file("user-1", "f1", b"buffered", T0),
                chunked(&bytes, &[64 * 1024]),
                None
            )
            .await,
        InvalidInput
    );
    assert_nothing_stored(store, "f1").await?;
    // The same id stores fine afterwards: nothing was left half written.
    let right = sha256_hex(&bytes);
    store
        .files
        .put_stream(
            new_stream_file("user-1", "f1", T0),
            chunked(&bytes, &[64 * 1024]),
            Some(&right),
        )
        .await?;
    assert_eq!(store.files.read("f1").await?, bytes);
    Ok(())
}

/// An upload whose stream fails half way (the client went away) is an error and stores
/// nothing; the id stays free.
pub async fn an_upload_cut_off_mid_stream_stores_nothing(store: &Store) -> Result<()> {
    let bytes = pattern(500_000);
    let outcome = store
        .files
        .put_stream(new_stream_file("user-1", "f1", T0), cut_off(&bytes), None)
        .await;
    assert!(outcome.is_err(), "a cut-off upload must fail: {outcome:?}");
    assert_nothing_stored(store, "f1").await?;
    file(store, "user-1", "f1", b"later", T0).await?;
    assert_eq!(store.files.read("f1").await?, b"later");
    Ok(())
}

/// An upload abandoned half way (its future dropped while the stream waits) stores nothing.
pub async fn an_upload_dropped_half_way_stores_nothing(store: &Store) -> Result<()> {
    let bytes = pattern(300_000);
    let upload = store
        .files
        .put_stream(new_stream_file("user-1", "f1", T0), stalled(&bytes), None);
    let outcome = tokio::time::timeout(Duration::from_millis(500), upload).await;
    assert!(outcome.is_err(), "a stalled upload cannot complete");
    // PocketBase: the server notices the closed connection on its own time.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_nothing_stored(store, "f1").await?;
    file(store, "user-1", "f1", b"later", T0).await?;
    assert_eq!(store.files.read("f1").await?, b"later");
    Ok(())
}

/// A streamed upload to a taken id is a `Conflict` and keeps the first file's bytes.
pub async fn a_streamed_upload_to_a_taken_id_is_a_conflict(store: &Store) -> Result<()> {
    file(store, "user-1", "f1", b"first", T0).await?;
    assert_kind!(
        store
            .files
            .put_stream(
                new_stream_file("user-2", "f1", T0),
                chunked(&pattern(100_000), &[10_000]),
                None
            )
            .await,
        Conflict
    );
    assert_eq!(store.files.read("f1").await?, b"first");
    assert_eq!(store.files.get("f1").await?.user_id, "user-1");
    Ok(())
}

/// An empty stream stores an empty file; it streams back nothing and has no byte range.
pub async fn an_empty_streamed_file_is_a_file(store: &Store) -> Result<()> {
    let meta = store
        .files
        .put_stream(
            new_stream_file("user-1", "e", T0),
            chunked(b"", &[1]),
            Some(&sha256_hex(b"")),
        )
        .await?;
    assert_eq!(meta.size, 0);
    assert!(read_range(store, "e", None).await?.is_empty());
    assert_kind!(
        store.files.read_stream("e", Some(ByteRange::from(0))).await,
        InvalidInput
    );
    Ok(())
}

/// `download_url` gives a link that expires within its lifetime, or `Unsupported` when the
/// backend cannot sign (never an unsigned link); a missing file is `NotFound` when it can.
pub async fn download_url_is_a_signed_link_or_unsupported(store: &Store) -> Result<()> {
    file(store, "user-1", "f1", b"link me", T0).await?;
    let before = chatstore_core::validate::now();
    match store
        .files
        .download_url("f1", Duration::from_secs(60))
        .await
    {
        Ok(link) => {
            assert!(link.url.starts_with("http"), "{}", link.url);
            assert!(
                link.url.contains("sig=") || link.url.contains("token="),
                "a link must carry its credential: {}",
                link.url
            );
            assert!(link.expires_at > before, "{link:?}");
            assert!(
                link.expires_at <= before + 3600,
                "short-lived link expected: {link:?}"
            );
            assert_kind!(
                store
                    .files
                    .download_url("nope", Duration::from_secs(60))
                    .await,
                NotFound
            );
            assert_kind!(
                store.files.download_url("f1", Duration::ZERO).await,
                InvalidInput
            );
        }
        Err(e) => assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}"),
    }
    Ok(())
}
