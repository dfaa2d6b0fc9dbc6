//! Streaming file calls through the router: uploads reach both stores in the phases that write
//! both, reads and links come from the store the phase reads.

mod common;

use chatstore_core::transfer::stream_bytes;
use chatstore_core::{NewFile, Store, memory};
use chatstore_router::Phase;
use futures::TryStreamExt;

fn pdf(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

async fn user(old: &Store, new: &Store) -> String {
    common::same_user(&[old, new], "u-ada").await;
    "u-ada".to_owned()
}

async fn read_all(store: &Store, id: &str) -> Vec<u8> {
    let stream = store
        .files
        .read_stream(id, None)
        .await
        .expect("read stream");
    let chunks: Vec<_> = stream.body.try_collect().await.expect("whole body");
    chunks.concat()
}

/// In the dual phase a streamed upload lands in both stores with the same bytes and hash.
#[tokio::test]
async fn a_streamed_upload_reaches_both_stores_in_dual() {
    let (old, new) = (memory::store(), memory::store());
    let owner = user(&old, &new).await;
    let router = common::router(old.clone(), &new, Phase::Dual);
    let routed = router.store();
    let bytes = pdf(3 * 1024 * 1024 + 17);
    let meta = routed
        .files
        .put_stream(
            NewFile::new(&owner, "report.pdf", Vec::new()),
            stream_bytes(bytes.clone()),
            None,
        )
        .await
        .expect("streamed upload");
    assert_eq!(read_all(&old, &meta.id).await, bytes);
    assert_eq!(read_all(&new, &meta.id).await, bytes);
    let copied = new.files.get(&meta.id).await.expect("new store's record");
    assert_eq!((copied.sha256, copied.size), (meta.sha256, meta.size));
    assert!(
        router
            .repair_log()
            .pending()
            .expect("repair log")
            .is_empty()
    );
}

/// When the new store refuses the copy, the caller still gets the old store's answer and the
/// file is logged for repair.
#[tokio::test]
async fn a_copy_the_new_store_refuses_is_logged_for_repair() {
    let (old, new) = (memory::store(), memory::store());
    let owner = user(&old, &new).await;
    // The new store already holds another file under the id the upload will use.
    new.files
        .put(NewFile::new(&owner, "other.txt", b"other".to_vec()).with_id("f-1"))
        .await
        .expect("a clashing file in the new store");
    let router = common::router(old.clone(), &new, Phase::Shadow);
    let meta = router
        .store()
        .files
        .put_stream(
            NewFile::new(&owner, "notes.md", Vec::new()).with_id("f-1"),
            stream_bytes(b"# notes".to_vec()),
            None,
        )
        .await
        .expect("the old store's answer");
    assert_eq!(read_all(&old, &meta.id).await, b"# notes");
    let pending = router.repair_log().pending().expect("repair log");
    assert_eq!(pending.len(), 1, "{pending:?}");
}

/// In the new phase streams are read from the new store.
#[tokio::test]
async fn streams_are_read_from_the_store_the_phase_reads() {
    let (old, new) = (memory::store(), memory::store());
    let owner = user(&old, &new).await;
    new.files
        .put(NewFile::new(&owner, "only-new.txt", b"new bytes".to_vec()).with_id("f-new"))
        .await
        .expect("a file only the new store has");
    let old_phase = common::router(old.clone(), &new, Phase::Dual).store();
    assert!(old_phase.files.read_stream("f-new", None).await.is_err());
    let new_phase = common::router(old, &new, Phase::New).store();
    assert_eq!(read_all(&new_phase, "f-new").await, b"new bytes");
}
