//! Several replicas (stores with pools of their own) on one database and one shared upload
//! folder, as Open WebUI runs 2-3 replicas on one PostgreSQL with a shared volume: a file put by
//! one is read, listed and deleted by another, and replicas writing at once lose nothing.

mod support;

use chatstore_core::{ErrorKind, FileQuery, NewFile, NewUser, Store};
use chatstore_sql::{SqlOptions, SqlStore};

async fn replicas(db: &support::Db, n: usize) -> Vec<Store> {
    let mut out = Vec::new();
    for _ in 0..n {
        let store = SqlStore::connect(&db.url, db.options().max_connections(3))
            .await
            .expect("open a replica");
        out.push(store.store());
    }
    out
}

/// A file put through one replica is read, listed and deleted through another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_put_by_one_replica_is_served_by_another() {
    for db in support::empty_databases().await {
        let stores = replicas(&db, 2).await;
        let (a, b) = (&stores[0], &stores[1]);
        let user = a
            .users
            .create(NewUser::new("r@example.com", "R"))
            .await
            .expect("user");
        let file = a
            .files
            .put(NewFile::new(
                &user.id,
                "notes.txt",
                b"shared bytes".to_vec(),
            ))
            .await
            .expect("put through replica a");
        assert_eq!(
            b.files.read(&file.id).await.expect("read on b"),
            b"shared bytes"
        );
        let listed = b
            .files
            .list(&FileQuery {
                user_id: Some(user.id.clone()),
                ..FileQuery::default()
            })
            .await
            .expect("list on b");
        assert_eq!(listed.items.len(), 1);
        b.files.delete(&file.id).await.expect("delete on b");
        assert_eq!(
            a.files
                .read(&file.id)
                .await
                .map(|_| ())
                .map_err(|e| e.kind()),
            Err(ErrorKind::NotFound)
        );
        db.finish().await;
    }
}

/// Three replicas putting files at once: every acknowledged file is listed once and its bytes
/// read back through any replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_writing_files_at_once_lose_none() {
    for db in support::empty_databases().await {
        let stores = replicas(&db, 3).await;
        let user = stores[0]
            .users
            .create(NewUser::new("w@example.com", "W"))
            .await
            .expect("user");
        let mut tasks = Vec::new();
        for (r, store) in stores.iter().enumerate() {
            let store = store.clone();
            let user_id = user.id.clone();
            tasks.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..8 {
                    let bytes = format!("replica {r} file {i}").into_bytes();
                    let meta = store
                        .files
                        .put(NewFile::new(&user_id, "same-name.txt", bytes))
                        .await
                        .expect("put");
                    ids.push((meta.id, r, i));
                }
                ids
            }));
        }
        let mut acknowledged = Vec::new();
        for task in tasks {
            acknowledged.extend(task.await.expect("writer task"));
        }
        let listed = stores[2]
            .files
            .list(&FileQuery {
                user_id: Some(user.id.clone()),
                ..FileQuery::default()
            })
            .await
            .expect("list");
        assert_eq!(listed.total, 24, "every put listed once");
        for (n, (id, r, i)) in acknowledged.iter().enumerate() {
            let reader = &stores[(n + 1) % stores.len()];
            let bytes = reader.files.read(id).await.expect("read back");
            assert_eq!(bytes, format!("replica {r} file {i}").into_bytes());
        }
        db.finish().await;
    }
}

/// With no upload folder configured, a PostgreSQL store keeps bytes in a durable folder (Open
/// WebUI's `DATA_DIR/uploads`), never in a temporary one a reboot or another replica loses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_uploads_default_to_a_durable_folder() {
    let Some(db) = support::postgres_empty().await else {
        return;
    };
    let store = SqlStore::connect(&db.url, SqlOptions::default().max_connections(1))
        .await
        .expect("open");
    let dir = store.upload_dir().to_path_buf();
    assert!(dir.is_absolute(), "{}", dir.display());
    assert!(
        !dir.starts_with(std::env::temp_dir()),
        "upload folder {} is temporary",
        dir.display()
    );
    if chatstore_core::config::upload_dir_from_env().is_none() {
        let expected = std::path::absolute("data/uploads").expect("absolute");
        assert_eq!(dir, expected);
    }
    store.close().await;
    db.finish().await;
}

/// A pool larger than the server's `max_connections` allows is refused when the store opens,
/// with the numbers and the fix, instead of failing later under load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_the_server_cannot_hold_is_refused() {
    let Some(db) = support::postgres_empty().await else {
        return;
    };
    let err = SqlStore::connect(&db.url, db.options().max_connections(100_000))
        .await
        .map(|_| ())
        .expect_err("a pool of 100000 connections");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let text = err.to_string();
    for needle in [
        "100000 connections",
        "max_connections",
        "in use",
        "CHATSTORE_POOL_SIZE",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from {text}");
    }
    db.finish().await;
}
