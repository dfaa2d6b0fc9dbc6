//! The pgvector backend against the memory reference model, on a fresh database per test.

mod common;

use std::collections::HashSet;

use chatstore_core::ErrorKind;
use chatstore_core::memory::MemoryBackend;
use chatstore_core::vectors::{SearchHit, VectorFilter, VectorItem, VectorRepo};
use chatstore_pgvector::{CollectionPlan, IndexKey, PgVectorConfig, PgVectorStore, SearchPlan};
use common::{Rng, fresh_database, fresh_store, indexing_config};
use serde_json::{Map, Value, json};
use sqlx::Connection;

fn meta(v: Value) -> Map<String, Value> {
    v.as_object().cloned().expect("object")
}

fn item(id: &str, vector: Vec<f32>, metadata: Value) -> VectorItem {
    VectorItem {
        id: id.to_owned(),
        text: format!("text of {id}"),
        vector,
        metadata: meta(metadata),
    }
}

fn random_items(rng: &mut Rng, prefix: &str, n: usize, dim: usize) -> Vec<VectorItem> {
    (0..n)
        .map(|i| {
            let vector = rng.unit_vector(dim);
            let file = rng.below(4);
            item(
                &format!("{prefix}-{i:04}"),
                vector,
                json!({"file_id": format!("f{file}"), "page": file, "flag": file.is_multiple_of(2)}),
            )
        })
        .collect()
}

fn assert_same_hits(got: &[Vec<SearchHit>], want: &[Vec<SearchHit>]) {
    assert_eq!(got.len(), want.len(), "one list per query vector");
    for (g, w) in got.iter().zip(want) {
        let gi: Vec<&str> = g.iter().map(|h| h.id.as_str()).collect();
        let wi: Vec<&str> = w.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(gi, wi, "same neighbours in the same order");
        for (a, b) in g.iter().zip(w) {
            assert!(
                (a.distance - b.distance).abs() < 1e-5,
                "{} vs {}",
                a.distance,
                b.distance
            );
            assert!((a.score - (2.0 - a.distance) / 2.0).abs() < 1e-12);
            assert_eq!(a.metadata, b.metadata);
            assert_eq!(a.text, b.text);
        }
    }
}

/// Search, get and query agree with the memory model, with and without filters, for many query
/// vectors at once; vectors shorter than the column come back at their own dimension.
#[tokio::test]
async fn search_get_and_query_match_the_memory_model() {
    let Some(store) = fresh_store(64).await else {
        return;
    };
    let model = MemoryBackend::new();
    let mut rng = Rng::new(11);
    for (name, n, dim) in [("small", 30, 16), ("big", 300, 16), ("wide", 40, 64)] {
        let items = random_items(&mut rng, name, n, dim);
        store.insert(name, items.clone()).await.expect("insert");
        model.insert(name, items).await.expect("model insert");
    }
    let filters = [
        None,
        Some(VectorFilter::eq("file_id", "f1")),
        Some(VectorFilter::eq("page", 2)),
        Some(VectorFilter::eq("page", "2")),
        Some(VectorFilter::eq("flag", true)),
        Some(VectorFilter::default().and_in("file_id", vec![json!("f0"), json!("f3")])),
        Some(VectorFilter::eq("file_id", "f1").and_eq("page", 3)),
        Some(VectorFilter::eq("missing", "x")),
    ];
    for (name, dim) in [("small", 16), ("big", 16), ("wide", 64)] {
        let queries: Vec<Vec<f32>> = (0..5).map(|_| rng.unit_vector(dim)).collect();
        for f in &filters {
            for limit in [1, 7, 50] {
                let got = store
                    .search(name, &queries, f.as_ref(), limit)
                    .await
                    .expect("search");
                let want = model
                    .search(name, &queries, f.as_ref(), limit)
                    .await
                    .expect("model");
                assert_same_hits(&got, &want);
            }
            if let Some(f) = f {
                let got = store.query(name, f, Some(5)).await.expect("query");
                let want = model.query(name, f, Some(5)).await.expect("model query");
                assert_eq!(got.len(), want.len());
                let got = store.query(name, f, None).await.expect("query");
                let want = model.query(name, f, None).await.expect("model query");
                assert_eq!(got, want);
            }
        }
        assert_eq!(
            store.get(name).await.expect("get"),
            model.get(name).await.expect("model get")
        );
    }
    assert_eq!(
        store.collections().await.expect("collections"),
        vec!["big", "small", "wide"]
    );
}

/// Ties in distance are broken by id, byte order (not the database's collation).
#[tokio::test]
async fn equal_distances_are_ordered_by_id() {
    let Some(store) = fresh_store(8).await else {
        return;
    };
    let v = vec![1.0, 0.0, 0.0];
    let items = vec![
        item("b", v.clone(), json!({})),
        item("B", v.clone(), json!({})),
        item("a", v.clone(), json!({})),
        item("_", v.clone(), json!({})),
    ];
    store.insert("c", items).await.expect("insert");
    let hits = store
        .search("c", &[vec![2.0, 0.0, 0.0]], None, 10)
        .await
        .expect("search");
    let ids: Vec<&str> = hits[0].iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, vec!["B", "_", "a", "b"]);
    assert!(hits[0][0].distance.abs() < 1e-6);
    assert!((hits[0][0].score - 1.0).abs() < 1e-6);
    let got: Vec<String> = store
        .get("c")
        .await
        .expect("get")
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(got, vec!["B", "_", "a", "b"]);
}

/// Inserting an id that exists in any collection is a conflict and inserts nothing.
#[tokio::test]
async fn insert_with_an_existing_id_conflicts_and_changes_nothing() {
    let Some(store) = fresh_store(8).await else {
        return;
    };
    store
        .insert("one", vec![item("x", vec![1.0, 2.0], json!({}))])
        .await
        .expect("insert");
    let err = store
        .insert(
            "two",
            vec![
                item("y", vec![1.0, 0.0], json!({})),
                item("x", vec![0.0, 1.0], json!({})),
            ],
        )
        .await
        .expect_err("duplicate id");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(!store.has_collection("two").await.expect("has"));
    assert_eq!(store.get("one").await.expect("get").len(), 1);
    // The failed insert left no dimension behind: "two" takes any dimension now.
    store
        .insert("two", vec![item("z", vec![1.0, 0.0, 3.0], json!({}))])
        .await
        .expect("fresh collection");
}

/// Bad input is InvalidInput and changes nothing: mismatched and oversized dimensions, zero
/// vectors, ids twice in a call, bad limits, delete with neither ids nor filter (through a
/// Store, as every caller reaches the backend).
#[tokio::test]
async fn bad_input_is_invalid_and_changes_nothing() {
    let Some(store) = fresh_store(8).await else {
        return;
    };
    // Input checks shared by every backend live in the validation layer every Store has; a
    // delete naming neither ids nor a filter is refused by the repository itself too (it
    // deleted the whole collection).
    let raw = store.clone();
    let store = store.into_store(&chatstore_core::memory::store()).vectors;
    store
        .insert("c", vec![item("a", vec![1.0, 2.0, 3.0], json!({"k": 1}))])
        .await
        .expect("insert");
    let e = raw
        .delete("c", None, None)
        .await
        .expect_err("the repository refuses it");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let cases: Vec<Vec<VectorItem>> = vec![
        vec![item("b", vec![1.0, 2.0], json!({}))],
        vec![item("b", vec![1.0; 9], json!({}))],
        vec![item("b", vec![0.0, 0.0, 0.0], json!({}))],
        vec![item("b", vec![f32::NAN, 0.0, 1.0], json!({}))],
        vec![
            item("b", vec![1.0, 2.0, 3.0], json!({})),
            item("b", vec![1.0, 2.0, 3.0], json!({})),
        ],
        vec![item("b", vec![1.0, 2.0, 3.0], json!({"t": "nul\u{0}"}))],
        vec![item("b c", vec![1.0, 2.0, 3.0], json!({}))],
    ];
    for items in cases {
        let e = store
            .insert("c", items.clone())
            .await
            .expect_err("insert refused");
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        let e = store.upsert("c", items).await.expect_err("upsert refused");
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    }
    // A vector longer than the column is refused even for a new collection.
    let e = store
        .insert("new", vec![item("b", vec![1.0; 9], json!({}))])
        .await
        .expect_err("too long");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("at most 8"), "{e}");
    for (vectors, limit) in [
        (vec![vec![1.0, 2.0]], 3),
        (vec![], 3),
        (vec![vec![1.0, 2.0, 3.0]], 0),
        (vec![vec![0.0, 0.0, 0.0]], 3),
    ] {
        let e = store
            .search("c", &vectors, None, limit)
            .await
            .expect_err("search refused");
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }
    let e = store
        .delete("c", None, None)
        .await
        .expect_err("delete refused");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let e = store
        .query("c", &VectorFilter::eq("k", 1), Some(0))
        .await
        .expect_err("limit 0");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let e = store.get("").await.expect_err("no name");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    // A read takes any name a store may list (other programs name collections by their own
    // rules): one no write could have made holds nothing.
    assert!(store.get("a/b").await.expect("read").is_empty());
    assert_eq!(store.get("c").await.expect("get").len(), 1);
    assert_eq!(store.collections().await.expect("list"), vec!["c"]);
}

/// A large write checks its rows while the server works through its COPY (the checks run
/// once the last rows are sent): a bad row near the end of one, called on the backend itself
/// (no validation layer in front), is still InvalidInput, naming the row, and changes nothing;
/// the store writes normally afterwards (the abandoned COPY left no connection astray).
#[tokio::test]
async fn a_bad_row_late_in_a_large_write_changes_nothing() {
    let Some(store) = fresh_store(16).await else {
        return;
    };
    let mut rng = Rng::new(77);
    let kept = random_items(&mut rng, "k", 400, 12);
    store.insert("a", kept.clone()).await.expect("insert");
    store
        .insert("b", random_items(&mut rng, "b", 300, 12))
        .await
        .expect("insert");
    let before_a = store.get("a").await.expect("get");
    let before_b = store.get("b").await.expect("get");
    // How to spoil row `i` of a batch, and what the refusal then says.
    type Spoil = fn(&mut [VectorItem], usize);
    let spoils: [(&str, Spoil); 8] = [
        ("non-finite", |b, i| b[i].vector[3] = f32::NAN),
        ("all zeros", |b, i| b[i].vector = vec![0.0; 12]),
        ("dimensions", |b, i| b[i].vector.truncate(11)),
        ("at most 16", |b, i| b[i].vector = vec![0.5; 17]),
        // Past what the COPY encoding takes (65,535 dimensions): it stops mid-COPY.
        ("at most 16", |b, i| b[i].vector = vec![0.5; 70_000]),
        ("contains", |b, i| b[i].id = "a b".into()),
        ("NUL", |b, i| b[i].text = "nul\u{0}".into()),
        ("appears", |b, i| b[i].id = b[0].id.clone()),
    ];
    for (says, spoil) in spoils {
        // Replacing every row of "a" and moving "b"'s (the DELETE and the COPY both run
        // before the checks), as an insert of new ids, and as one call across collections.
        let mut replace = kept.clone();
        replace.extend(random_items(&mut rng, "b", 300, 12));
        spoil(&mut replace, 650);
        let mut fresh = random_items(&mut rng, "n", 400, 12);
        spoil(&mut fresh, 390);
        let mut many = fresh[200..].to_vec();
        many.extend(kept[..50].iter().cloned());
        let first = fresh[..200].to_vec();
        for n in 0..4 {
            let outcome = match n {
                0 => store.upsert("a", replace.clone()).await,
                1 => store.insert("c", fresh.clone()).await,
                2 => store.upsert("c", fresh.clone()).await,
                _ => {
                    store
                        .upsert_many(vec![
                            ("c".into(), first.clone()),
                            ("d".into(), many.clone()),
                        ])
                        .await
                }
            };
            // As many reads as the pool has connections: each reads back what it should,
            // none an answer another statement left behind.
            for _ in 0..4 {
                assert_eq!(
                    store.get("b").await.expect("get"),
                    before_b,
                    "{says}, call {n}"
                );
            }
            let e = outcome.expect_err("a bad row is refused");
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "call {n}, {says}: {e}");
            assert!(e.to_string().contains(says), "call {n}: {e}");
        }
        assert_eq!(store.get("a").await.expect("get"), before_a, "{says}");
        assert_eq!(store.get("b").await.expect("get"), before_b, "{says}");
        assert_eq!(store.collections().await.expect("list"), ["a", "b"]);
    }
    // Every pooled connection still works: large writes in a row, then reads.
    for round in 0..6 {
        let items = random_items(&mut rng, &format!("r{round}"), 300, 12);
        store.upsert("e", items).await.expect("a good large upsert");
    }
    assert_eq!(store.get("e").await.expect("get").len(), 1800);
    assert_eq!(store.get("a").await.expect("get"), before_a);
}

/// A collection exists while it has rows; searching a missing one gives empty lists; once the
/// last row goes, the name takes a new dimension.
#[tokio::test]
async fn collections_live_while_they_have_rows() {
    let Some(store) = fresh_store(8).await else {
        return;
    };
    let hits = store
        .search("none", &[vec![1.0], vec![0.5]], None, 3)
        .await
        .expect("search missing");
    assert_eq!(hits, vec![Vec::<SearchHit>::new(), Vec::new()]);
    store
        .insert(
            "c",
            vec![
                item("a", vec![1.0, 0.0], json!({"f": "x"})),
                item("b", vec![0.0, 1.0], json!({"f": "y"})),
            ],
        )
        .await
        .expect("insert");
    assert!(store.has_collection("c").await.expect("has"));
    assert_eq!(
        store
            .delete("c", None, Some(&VectorFilter::eq("f", "x")))
            .await
            .expect("delete by filter"),
        1
    );
    assert_eq!(
        store
            .delete(
                "c",
                Some(&["b".to_owned(), "zz".to_owned()]),
                Some(&VectorFilter::eq("f", "x"))
            )
            .await
            .expect("ids and filter must both hold"),
        0
    );
    assert_eq!(
        store
            .delete("c", Some(&["b".to_owned()]), None)
            .await
            .expect("delete by id"),
        1
    );
    assert!(!store.has_collection("c").await.expect("has"));
    store
        .insert("c", vec![item("a", vec![1.0, 0.0, 1.0, 1.0], json!({}))])
        .await
        .expect("new dimension after the collection emptied");
    store
        .delete_collection("c")
        .await
        .expect("delete collection");
    store
        .delete_collection("c")
        .await
        .expect("deleting a missing collection is a no-op");
    store
        .insert("d", vec![item("a", vec![1.0], json!({}))])
        .await
        .expect("insert");
    store.reset().await.expect("reset");
    assert!(store.collections().await.expect("list").is_empty());
}

/// Upsert replaces an item, moves an id from another collection (which disappears when
/// emptied), and may change the dimension only when it replaces every row.
#[tokio::test]
async fn upsert_replaces_and_moves_items() {
    let Some(store) = fresh_store(8).await else {
        return;
    };
    let model = MemoryBackend::new();
    let steps: Vec<(&str, Vec<VectorItem>)> = vec![
        (
            "a",
            vec![
                item("1", vec![1.0, 0.0], json!({"v": 1})),
                item("2", vec![0.0, 1.0], json!({})),
            ],
        ),
        ("b", vec![item("3", vec![1.0, 1.0], json!({}))]),
        ("a", vec![item("1", vec![1.0, 2.0], json!({"v": 2}))]),
        ("b", vec![item("1", vec![2.0, 1.0], json!({"moved": true}))]),
        ("a", vec![item("2", vec![1.0, 2.0, 3.0], json!({}))]),
        ("b", vec![item("4", vec![1.0, 2.0, 3.0], json!({}))]),
    ];
    for (collection, items) in steps {
        let got = store
            .upsert(collection, items.clone())
            .await
            .map_err(|e| e.kind());
        let want = model.upsert(collection, items).await.map_err(|e| e.kind());
        assert_eq!(got, want, "upsert into {collection}");
        for c in ["a", "b"] {
            assert_eq!(
                store.get(c).await.expect("get"),
                model.get(c).await.expect("get")
            );
        }
        assert_eq!(
            store.collections().await.expect("list"),
            model.collections().await.expect("list")
        );
    }
    // Moving the last item out of a collection removes it.
    store
        .upsert("c", vec![item("2", vec![0.0, 0.0, 1.0], json!({}))])
        .await
        .expect("move");
    assert!(!store.has_collection("a").await.expect("has"));
    store
        .insert("a", vec![item("9", vec![1.0], json!({}))])
        .await
        .expect("a is new again, any dimension");
}

/// The statements that bind a large write's ids are planned at every call, with the ids in
/// hand: they are never left prepared on the connection, where PostgreSQL may keep a generic
/// plan for them (one made on an empty table scans the whole table). The other statements stay
/// prepared.
#[tokio::test]
async fn large_writes_plan_their_id_lists_at_every_call() {
    let Some(url) = fresh_database("template1").await else {
        return;
    };
    let store = PgVectorStore::connect(
        PgVectorConfig::new(url)
            .dimension(4)
            .auto_index(false)
            .pool_size(1),
    )
    .await
    .expect("open");
    let mut rng = Rng::new(11);
    let rows = random_items(&mut rng, "r", 300, 4);
    // Written, then replaced (deleting the collection's own rows), then moved to another
    // collection (the COPY refused, the merge asks which collections hold the ids).
    for collection in ["a", "a", "b"] {
        store
            .upsert(collection, rows.clone())
            .await
            .expect("upsert");
    }
    assert!(!store.has_collection("a").await.expect("has"));
    assert_eq!(store.get("b").await.expect("get").len(), 300);

    // One connection: the statements it keeps prepared are the ones these writes used.
    let kept: Vec<String> = sqlx::query_scalar("SELECT statement FROM pg_prepared_statements")
        .fetch_all(store.pool())
        .await
        .expect("prepared statements");
    assert!(
        kept.iter().any(|s| s.contains("chatstore_collection")),
        "the collection claims stay prepared: {kept:#?}"
    );
    for per_call in [
        "DELETE FROM document_chunk WHERE id = ANY",
        "SELECT DISTINCT collection_name FROM document_chunk WHERE id = ANY",
    ] {
        assert!(
            !kept.iter().any(|s| s.starts_with(per_call)),
            "{per_call:?} is kept prepared: {kept:#?}"
        );
    }
}

/// An Open WebUI table (vector(1536), created by Open WebUI's DDL) is detected and used as is;
/// small vectors are zero-padded into it and come back unpadded.
#[tokio::test]
async fn an_open_webui_table_is_detected_and_padded() {
    let Some(url) = fresh_database("template1").await else {
        return;
    };
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    sqlx::raw_sql(
        "CREATE EXTENSION IF NOT EXISTS vector; \
         CREATE TABLE document_chunk (id TEXT NOT NULL, vector VECTOR(1536), \
         collection_name TEXT NOT NULL, text TEXT, vmetadata JSONB, PRIMARY KEY (id)); \
         CREATE INDEX idx_document_chunk_collection_name ON document_chunk (collection_name); \
         CREATE INDEX idx_document_chunk_vector ON document_chunk USING hnsw \
         (vector vector_cosine_ops) WITH (m = 16, ef_construction = 64)",
    )
    .execute(&pool)
    .await
    .expect("Open WebUI DDL");
    let store = PgVectorStore::from_pool(pool.clone(), PgVectorConfig::new("").dimension(8))
        .await
        .expect("open");
    assert_eq!(store.schema().dimension, Some(1536));
    assert!(store.schema().pgvector_version >= (0, 5, 0));
    let own: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         WHERE i.indrelid = 'document_chunk'::regclass AND i.indisvalid \
         AND c.relname LIKE 'chatstore\\_%' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .expect("own indexes");
    assert_eq!(
        own,
        [
            "chatstore_document_chunk_file_id",
            "chatstore_document_chunk_hash",
            "chatstore_document_chunk_name",
            "chatstore_document_chunk_scan",
            "chatstore_document_chunk_source",
        ],
        "Open WebUI's table gains chatstore's filter and walk indexes at the first opening"
    );
    assert_eq!(
        primary_key_options(&pool).await,
        vec!["deduplicate_items=off".to_owned()],
        "the primary key stops merging replaced versions; its constraint stays"
    );
    store
        .insert(
            "kb",
            vec![item("a", vec![3.0, 4.0], json!({"file_id": "f"}))],
        )
        .await
        .expect("insert");
    let stored: i32 = sqlx::query_scalar("SELECT vector_dims(vector) FROM document_chunk")
        .fetch_one(&pool)
        .await
        .expect("dims");
    assert_eq!(stored, 1536);
    let (attstorage, options, _) = storage(&pool).await;
    assert_eq!(
        (attstorage.as_str(), options),
        ("e", None),
        "Open WebUI's table keeps its storage"
    );
    assert_eq!(
        store.get("kb").await.expect("get")[0].vector,
        vec![3.0, 4.0]
    );
    let e = store
        .insert("kb2", vec![item("b", vec![1.0; 1537], json!({}))])
        .await
        .expect_err("longer than the column");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

/// The storage options of `document_chunk`'s primary key.
async fn primary_key_options(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT coalesce(c.reloptions, '{}')::text[] FROM pg_index i \
         JOIN pg_class c ON c.oid = i.indexrelid \
         WHERE i.indrelid = 'document_chunk'::regclass AND i.indisprimary",
    )
    .fetch_one(pool)
    .await
    .expect("primary key options")
}

/// The primary key of a table chatstore creates does not deduplicate (an upsert's replacing
/// copy meets each row's deleted version there); an operator's own choice for it is kept.
#[tokio::test]
async fn the_primary_key_does_not_merge_replaced_versions() {
    let Some(url) = fresh_database("template1").await else {
        return;
    };
    let store = PgVectorStore::connect(PgVectorConfig::new(url.clone()).dimension(4))
        .await
        .expect("open");
    assert_eq!(
        primary_key_options(store.pool()).await,
        vec!["deduplicate_items=off".to_owned()]
    );
    let rows = |v: f32| {
        (0..500)
            .map(|i| {
                item(
                    &format!("r{i}"),
                    vec![v, 1.0, 2.0, 3.0],
                    json!({"file_id": "f"}),
                )
            })
            .collect::<Vec<_>>()
    };
    store.upsert("kb", rows(1.0)).await.expect("insert");
    store.upsert("kb", rows(5.0)).await.expect("replace");
    let stored = store.get("kb").await.expect("get");
    assert_eq!(stored.len(), 500);
    assert!(stored.iter().all(|r| r.vector[0] == 5.0));

    let pool = store.pool().clone();
    sqlx::raw_sql("ALTER INDEX document_chunk_pkey SET (deduplicate_items = on)")
        .execute(&pool)
        .await
        .expect("an operator's choice");
    drop(store);
    let _store = PgVectorStore::connect(PgVectorConfig::new(url).dimension(4))
        .await
        .expect("reopen");
    assert_eq!(
        primary_key_options(&pool).await,
        vec!["deduplicate_items=on".to_owned()],
        "kept"
    );
}

/// How `document_chunk` stores its rows: the vector column's storage, the table's options and the
/// bytes its TOAST table holds.
async fn storage(pool: &sqlx::PgPool) -> (String, Option<Vec<String>>, i64) {
    sqlx::query_as(
        "SELECT a.attstorage::text, c.reloptions, pg_relation_size(c.reltoastrelid) \
         FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid \
         WHERE c.oid = 'document_chunk'::regclass AND a.attname = 'vector'",
    )
    .fetch_one(pool)
    .await
    .expect("storage")
}

/// A table chatstore creates keeps a row whole on its page while it fits one: a 1536-d vector
/// with a long text and metadata is not moved out of line (TOAST), so exact scans and filters
/// read one page per row. A vector wider than a page may hold is left to PostgreSQL's default.
#[tokio::test]
async fn a_new_table_keeps_rows_whole_on_their_page() {
    for (dimension, inline) in [(1536, true), (2048, false)] {
        let Some(url) = fresh_database("template1").await else {
            return;
        };
        let store = PgVectorStore::connect(PgVectorConfig::new(url).dimension(dimension))
            .await
            .expect("open");
        let text = "a chunk of a document, ".repeat(45);
        let items: Vec<VectorItem> = (0..20)
            .map(|i| VectorItem {
                id: format!("row-{i}"),
                text: text.clone(),
                vector: (0..dimension)
                    .map(|j| ((i * 7 + j) % 13) as f32 - 6.0)
                    .collect(),
                metadata: meta(json!({"file_id": format!("f{i}"), "name": "report.pdf",
                    "source": "report.pdf", "hash": format!("{i:064}")})),
            })
            .collect();
        store.insert("kb", items).await.expect("insert");
        let (attstorage, options, toast_bytes) = storage(store.pool()).await;
        assert_eq!(
            options,
            Some(vec!["toast_tuple_target=8160".to_owned()]),
            "{dimension}"
        );
        if inline {
            assert_eq!(
                attstorage, "m",
                "{dimension}: the vector is the last value to leave"
            );
            assert_eq!(toast_bytes, 0, "{dimension}: nothing moved out of line");
        } else {
            assert_eq!(attstorage, "e", "{dimension}: too wide for a page");
            assert!(toast_bytes > 0, "{dimension}: the vectors live in TOAST");
        }
        let hits = store
            .search(
                "kb",
                &[vec![1.0; dimension]],
                Some(&VectorFilter::eq("file_id", "f3")),
                5,
            )
            .await
            .expect("search");
        assert_eq!(hits[0].len(), 1);
        assert_eq!(hits[0][0].text, text);
    }
}

/// A halfvec column is detected; vectors go in and come out through casts.
#[tokio::test]
async fn a_halfvec_table_works() {
    let Some(url) = fresh_database("template1").await else {
        return;
    };
    let mut config = PgVectorConfig::new(url).dimension(16);
    config.use_halfvec = true;
    let store = PgVectorStore::connect(config).await.expect("open");
    assert_eq!(
        store.schema().column_type,
        chatstore_pgvector::ColumnType::HalfVec
    );
    store
        .insert(
            "h",
            vec![
                item("a", vec![0.5, 0.25], json!({})),
                item("b", vec![0.25, 0.5], json!({})),
            ],
        )
        .await
        .expect("insert");
    let hits = store
        .search("h", &[vec![1.0, 0.0]], None, 2)
        .await
        .expect("search");
    assert_eq!(hits[0][0].id, "a");
    assert_eq!(
        store.get("h").await.expect("get")[0].vector,
        vec![0.5, 0.25]
    );
    // What half precision cannot keep is refused by item, and nothing is written: a component
    // beyond its range (the server's error named no item), and a vector whose every component
    // rounds to zero (stored as zeros, it had no direction).
    for (bad, why) in [
        (vec![70_000.0, 1.0], "at most 65504"),
        (vec![1e-9, -2e-8], "stored as zeros"),
    ] {
        for result in [
            store
                .insert("h", vec![item("c", bad.clone(), json!({}))])
                .await,
            store
                .upsert_many(vec![
                    ("h".into(), vec![item("c", bad.clone(), json!({}))]),
                    ("h2".into(), vec![item("d", vec![1.0, 1.0], json!({}))]),
                ])
                .await,
        ] {
            let e = result.expect_err("refused");
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            assert!(
                e.to_string().contains(why) && e.to_string().contains("\"c\""),
                "{e}"
            );
        }
    }
    assert_eq!(store.get("h").await.expect("get").len(), 2);
    assert!(store.get("h2").await.expect("get").is_empty());
}

/// A database without the extension, with creation disabled, is a clear error.
#[tokio::test]
async fn a_database_without_the_extension_is_a_clear_error() {
    let Some(url) = fresh_database("template0").await else {
        return;
    };
    let mut config = PgVectorConfig::new(url);
    config.create_extension = false;
    let e = PgVectorStore::connect(config)
        .await
        .expect_err("no extension");
    assert!(e.to_string().contains("vector"), "{e}");
    assert_eq!(e.kind(), ErrorKind::Backend);
    assert!(chatstore_pgvector::is_missing_extension(&e), "{e:?}");
}

/// Reused statements never fall back to a generic plan: searching many times, alternating a
/// large HNSW-indexed collection and a tiny one, keeps the tiny one's results exact.
#[tokio::test]
async fn repeated_searches_keep_exact_results_in_small_collections() {
    let Some(url) = fresh_database("template1").await else {
        return;
    };
    let store = PgVectorStore::connect(
        PgVectorConfig::new(url)
            .dimension(16)
            .exact_max_rows(500)
            .auto_index(false)
            .pool_size(1),
    )
    .await
    .expect("open");
    let model = MemoryBackend::new();
    let mut rng = Rng::new(5);
    for (name, n) in [("large", 3_000), ("tiny", 20)] {
        let items = random_items(&mut rng, name, n, 16);
        store.insert(name, items.clone()).await.expect("insert");
        model.insert(name, items).await.expect("insert");
    }
    store.create_global_index().await.expect("global index");
    let plan = store.optimize("large").await.expect("optimize");
    assert_eq!(plan.rows, 3_000);
    assert!(plan.measured_recall.is_some());
    assert_eq!(store.plan("tiny").await.expect("plan"), SearchPlan::Exact);
    for i in 0..12u32 {
        let name = if i.is_multiple_of(2) { "large" } else { "tiny" };
        let q = vec![rng.unit_vector(16)];
        let got = store.search(name, &q, None, 10).await.expect("search");
        if name == "tiny" {
            let want = model.search(name, &q, None, 10).await.expect("model");
            assert_same_hits(&got, &want);
        } else {
            assert_eq!(got[0].len(), 10);
        }
    }
}

/// Optimises `collection` and checks that it is searched through an index keyed by `key`.
async fn optimize_keyed(store: &PgVectorStore, collection: &str, key: IndexKey) -> CollectionPlan {
    let plan = store.optimize(collection).await.expect("optimize");
    assert!(
        matches!(plan.plan, SearchPlan::Hnsw { key: k, .. } if k == key),
        "{plan:?}"
    );
    plan
}

async fn own_indexes(store: &PgVectorStore) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_indexes WHERE tablename = 'document_chunk' \
         AND indexname LIKE 'chatstore_hnsw_%'",
    )
    .fetch_one(store.pool())
    .await
    .expect("count indexes")
}

/// A large collection gets its own partial HNSW index; it goes when the collection shrinks
/// below the threshold (on the next optimize) or loses its last row.
#[tokio::test]
async fn partial_indexes_follow_the_collection_size() {
    let Some(url) = fresh_database("template1").await else {
        return;
    };
    let store = PgVectorStore::connect(indexing_config(url, 8))
        .await
        .expect("open");
    let mut rng = Rng::new(9);
    // Low-dimensional clustered data: HNSW reaches the target recall here.
    let items = random_items(&mut rng, "big", 3_000, 4);
    store.insert("big", items.clone()).await.expect("insert");
    store
        .insert("small", random_items(&mut rng, "small", 50, 4))
        .await
        .expect("insert");
    let plans = store.optimize_all().await.expect("optimize");
    assert_eq!(
        plans.len(),
        1,
        "only the large collection is optimised: {plans:?}"
    );
    assert_eq!(plans[0].collection, "big");
    assert!(
        matches!(plans[0].plan, SearchPlan::Hnsw { .. }),
        "{plans:?}"
    );
    assert!(plans[0].measured_recall.is_some_and(|r| r >= 0.995));
    assert_eq!(own_indexes(&store).await, 1);
    assert_eq!(store.plan("big").await.expect("plan"), plans[0].plan);

    let ids: Vec<String> = items.iter().skip(100).map(|i| i.id.clone()).collect();
    assert_eq!(
        store.delete("big", Some(&ids), None).await.expect("delete"),
        2_900
    );
    let plan = store.optimize("big").await.expect("optimize");
    assert_eq!(plan.plan, SearchPlan::Exact);
    assert_eq!(own_indexes(&store).await, 0);

    store.optimize("big").await.expect("optimize again");
    store.delete_collection("big").await.expect("delete");
    assert_eq!(own_indexes(&store).await, 0);
    store
        .insert("big", random_items(&mut rng, "big", 3_000, 4))
        .await
        .expect("insert");
    let plan = store.optimize("big").await.expect("optimize");
    assert!(matches!(plan.plan, SearchPlan::Hnsw { .. }), "{plan:?}");
    assert_eq!(own_indexes(&store).await, 1);
    store.delete_collection("big").await.expect("delete");
    assert_eq!(
        own_indexes(&store).await,
        0,
        "the index goes with the last row"
    );
    assert_eq!(store.plan("big").await.expect("plan"), SearchPlan::Exact);
}

async fn own_index_options(store: &PgVectorStore) -> Vec<Vec<String>> {
    sqlx::query_scalar(
        "SELECT coalesce(c.reloptions, '{}')::text[] FROM pg_class c \
         WHERE c.relkind = 'i' AND c.relname LIKE 'chatstore_hnsw_%' ORDER BY c.relname",
    )
    .fetch_all(store.pool())
    .await
    .expect("index options")
}

/// `optimize` builds the partial index with the configured `m` / `ef_construction` (default
/// 32 / 128), and rebuilds an index that was built with other parameters.
#[tokio::test]
async fn partial_indexes_use_the_configured_parameters() {
    let Some(url) = fresh_database("template1").await else {
        return;
    };
    let config = indexing_config(url, 8);
    assert_eq!((config.hnsw_m, config.hnsw_ef_construction), (32, 128));
    let store = PgVectorStore::connect(config.clone().hnsw(8, 32))
        .await
        .expect("open");
    let mut rng = Rng::new(10);
    // Large enough that the index clearly beats the exact scan on a busy machine (calibration
    // drops an index that does not).
    store
        .insert("big", random_items(&mut rng, "big", 3_000, 4))
        .await
        .expect("insert");
    store.optimize("big").await.expect("optimize");
    assert_eq!(
        own_index_options(&store).await,
        vec![vec!["m=8".to_owned(), "ef_construction=32".to_owned()]]
    );
    // Same parameters: the index stays; new ones (here the defaults): it is rebuilt.
    store.optimize("big").await.expect("optimize again");
    assert_eq!(own_index_options(&store).await.len(), 1);
    let store = PgVectorStore::connect(config).await.expect("reopen");
    let plan = store.optimize("big").await.expect("optimize with defaults");
    assert!(matches!(plan.plan, SearchPlan::Hnsw { .. }), "{plan:?}");
    assert_eq!(
        own_index_options(&store).await,
        vec![vec!["m=32".to_owned(), "ef_construction=128".to_owned()]]
    );
}

async fn own_index_definitions(store: &PgVectorStore) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'document_chunk' \
         AND indexname LIKE 'chatstore_hnsw_%' ORDER BY indexname",
    )
    .fetch_all(store.pool())
    .await
    .expect("index definitions")
}

/// Index scans of the indexes named `LIKE pattern` so far, and the index entries they read,
/// as the server's statistics count them (a server process reports its counts when it ends,
/// or in its own time while it lives).
async fn index_reads(url: &str, pattern: &str) -> (i64, i64) {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    let reads = sqlx::query_as(
        "SELECT coalesce(sum(idx_scan), 0)::bigint, coalesce(sum(idx_tup_read), 0)::bigint \
         FROM pg_stat_user_indexes WHERE indexrelname LIKE $1",
    )
    .bind(pattern)
    .fetch_one(&mut conn)
    .await
    .expect("index scans");
    conn.close().await.ok();
    reads
}

/// Index scans of the indexes named `LIKE pattern` so far (see [`index_reads`]).
async fn index_scans(url: &str, pattern: &str) -> i64 {
    index_reads(url, pattern).await.0
}

/// Index scans of chatstore's partial indexes so far.
async fn own_index_scans(url: &str) -> i64 {
    index_scans(url, "chatstore_hnsw_%").await
}

/// Waits (up to 5 s) until the server has counted more scans of chatstore's partial indexes
/// than `before`, after the store's pool was closed (its server processes then report).
async fn own_index_scans_after(url: &str, before: i64) -> i64 {
    index_scans_after(url, "chatstore_hnsw_%", before).await
}

/// Waits (up to 5 s) until the server has counted more scans of the indexes named `LIKE
/// pattern` than `before`, after the store's pool was closed.
async fn index_scans_after(url: &str, pattern: &str, before: i64) -> i64 {
    let mut scans = index_scans(url, pattern).await;
    for _ in 0..50 {
        if scans > before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        scans = index_scans(url, pattern).await;
    }
    scans
}

/// Walks `collection` in pages of `page`, checking each page's order; returns the ids and the
/// number of pages read.
async fn walk(store: &PgVectorStore, collection: &str, page: u32) -> (Vec<String>, usize) {
    let mut ids: Vec<String> = Vec::new();
    let mut pages = 0;
    loop {
        let items = store
            .scan(collection, ids.last().map(String::as_str), page)
            .await
            .expect("scan");
        pages += 1;
        ids.extend(items.iter().map(|i| i.id.clone()));
        if items.len() < page as usize {
            break;
        }
    }
    assert!(ids.is_sorted(), "a walk returns ids in byte order");
    (ids, pages)
}

#[tokio::test]
async fn a_collection_is_walked_along_its_own_index() {
    let Some(url) = fresh_database("template1").await else {
        return;
    };
    let open = || PgVectorStore::connect(PgVectorConfig::new(url.clone()).dimension(4));
    let store = open().await.expect("open");
    let mut rng = Rng::new(41);
    // Ids in no particular order (upper and lower case: byte order is not a locale's).
    let mut want: Vec<String> = Vec::new();
    for (collection, n) in [("big", 3_000), ("small", 200)] {
        let items: Vec<VectorItem> = (0..n)
            .map(|i| {
                let id = format!("{}{:012x}", ["a", "B", "c"][i % 3], rng.next_u64() >> 16);
                if collection == "big" {
                    want.push(id.clone());
                }
                item(&id, rng.unit_vector(4), json!({"i": i}))
            })
            .collect();
        store.insert(collection, items).await.expect("insert");
    }
    want.sort();
    let pattern = "chatstore_document_chunk_scan";
    let options: Option<Vec<String>> =
        sqlx::query_scalar("SELECT reloptions::text[] FROM pg_class WHERE relname = $1")
            .bind(pattern)
            .fetch_one(store.pool())
            .await
            .expect("the walk's index");
    assert_eq!(
        options,
        Some(vec!["deduplicate_items=off".to_owned()]),
        "an upsert's new keys are not merged with their replaced versions"
    );
    // Before statistics and after them (autovacuum's ANALYZE), past the five calls after
    // which a prepared statement may take a generic plan: every page reads the walk's index,
    // none sorts the collection.
    for analyzed in [false, true] {
        if analyzed {
            sqlx::raw_sql("ANALYZE document_chunk")
                .execute(store.pool())
                .await
                .expect("analyze");
        }
        let store = open().await.expect("open");
        let (before, entries_before) = index_reads(&url, pattern).await;
        let (ids, pages) = walk(&store, "big", 100).await;
        assert_eq!(
            ids, want,
            "the walk reads every row once (analyzed: {analyzed})"
        );
        store.pool().close().await;
        let scans = index_scans_after(&url, pattern, before + pages as i64 - 1).await;
        assert!(
            scans - before >= pages as i64,
            "each of the {pages} pages reads {pattern}, not a sort of the collection \
             (analyzed: {analyzed}; {} scans counted)",
            scans - before
        );
        // With statistics each page reads its own entries from the cursor on. (Without them
        // PostgreSQL guesses the collection at a few rows and reads every entry after the
        // cursor for a page, then sorts them: 12 times as many here, until autovacuum's first
        // ANALYZE of the table.)
        let entries = index_reads(&url, pattern).await.1 - entries_before;
        assert!(
            !analyzed || entries <= 2 * want.len() as i64,
            "the walk read {entries} entries of {pattern} for {} rows (analyzed: {analyzed})",
            want.len()
        );
    }
}

/// The hits of `found` (ten per query) that the memory model's exact search of `items` also
/// returns for `queries`; where both put the same id at the same rank, the distances agree
/// within `tolerance` (a halfvec column keeps about three digits).
async fn shared_with_exact(
    collection: &str,
    items: Vec<VectorItem>,
    queries: &[Vec<f32>],
    found: &[Vec<SearchHit>],
    tolerance: f64,
) -> usize {
    let model = MemoryBackend::new();
    model.insert(collection, items).await.expect("model insert");
    let truth = model
        .search(collection, queries, None, 10)
        .await
        .expect("model search");
    let mut shared = 0usize;
    for (f, t) in found.iter().zip(&truth) {
        assert_eq!(f.len(), 10);
        let want: HashSet<&str> = t.iter().map(|h| h.id.as_str()).collect();
        shared += f.iter().filter(|h| want.contains(h.id.as_str())).count();
        for (hit, exact) in f.iter().zip(t) {
            if hit.id == exact.id {
                assert!((hit.distance - exact.distance).abs() < tolerance);
            }
        }
    }
    shared
}

/// Beside Open WebUI's global index (`m` 16, over every collection), a collection holding
/// most of the table is still searched through its own partial index (`m` 32, calibrated for
/// it), unfiltered and with an iterative filtered walk: the partial index orders by the
/// vectors scaled to unit length, an ordering the global index cannot serve. (Ordered by the
/// bare column, the planner took the global index, whose walk lost neighbours now and then.)
#[tokio::test]
async fn a_collection_holding_most_of_the_table_walks_its_own_index() {
    let Some(url) = fresh_database("template1").await else {
        return;
    };
    let store = PgVectorStore::connect(indexing_config(url.clone(), 8))
        .await
        .expect("open");
    let mut rng = Rng::new(41);
    store
        .insert("most", random_items(&mut rng, "most", 6_000, 8))
        .await
        .expect("insert");
    store
        .insert("rest", random_items(&mut rng, "rest", 300, 8))
        .await
        .expect("insert");
    store.create_global_index().await.expect("global index");
    optimize_keyed(&store, "most", IndexKey::Normalised).await;
    let definitions = own_index_definitions(&store).await;
    assert!(
        definitions.len() == 1 && definitions[0].contains("l2_normalize(vector)"),
        "{definitions:?}"
    );
    let unindexed = VectorFilter::eq("page", 1);
    assert!(
        matches!(
            store
                .plan_for("most", Some(&unindexed), 10)
                .await
                .expect("plan"),
            SearchPlan::FilteredHnsw {
                key: IndexKey::Normalised,
                ..
            }
        ),
        "an iterative walk"
    );

    let global = "idx_document_chunk_vector";
    let (own_before, global_before) =
        (own_index_scans(&url).await, index_scans(&url, global).await);
    let queries: Vec<Vec<f32>> = (0..20).map(|_| rng.unit_vector(8)).collect();
    for filter in [None, Some(&unindexed)] {
        let found = store
            .search("most", &queries, filter, 10)
            .await
            .expect("search");
        assert!(found.iter().all(|hits| hits.len() == 10));
    }
    store.pool().close().await;
    let own = own_index_scans_after(&url, own_before).await;
    assert!(
        own >= own_before + 2,
        "both searches walked the partial index"
    );
    assert_eq!(
        index_scans(&url, global).await,
        global_before,
        "no search walked the global index"
    );
}

/// A collection whose vectors are narrower than the zero-padded column (Open WebUI's 384-wide
/// default model in its 1536 column) gets a narrow index on its own components, which searches
/// use; a collection with a row wider than its dimension (written by another program) gets an
/// index on the whole column; a collection whose rows are all replaced by another dimension
/// is searched exactly until `optimize` rebuilds its index for the new one.
#[tokio::test]
async fn narrow_collections_get_narrow_indexes() {
    let Some(url) = fresh_database("template1").await else {
        return;
    };
    let config = indexing_config(url.clone(), 8);
    let store = PgVectorStore::connect(config.clone()).await.expect("open");
    let mut rng = Rng::new(31);
    let items = random_items(&mut rng, "narrow", 3_000, 4);
    store.insert("narrow", items.clone()).await.expect("insert");
    let plan = optimize_keyed(&store, "narrow", IndexKey::Prefix(4)).await;
    assert_eq!(store.plan("narrow").await.expect("plan"), plan.plan);
    let definitions = own_index_definitions(&store).await;
    assert_eq!(definitions.len(), 1, "{definitions:?}");
    assert!(
        definitions[0].contains("subvector(vector, 1, 4)"),
        "{definitions:?}"
    );

    // Searches walk the narrow index and find what an exact search finds.
    let queries: Vec<Vec<f32>> = (0..20).map(|_| rng.unit_vector(4)).collect();
    let before = own_index_scans(&url).await;
    let found = store
        .search("narrow", &queries, None, 10)
        .await
        .expect("search");
    // The store's server processes end with its pool and report their counts.
    store.pool().close().await;
    let scans = own_index_scans_after(&url, before).await;
    assert!(scans > before, "the search used the narrow index");
    let store = PgVectorStore::connect(config).await.expect("reopen");
    let shared = shared_with_exact("narrow", items, &queries, &found, 1e-5).await;
    assert!(shared >= 190, "recall@10 {} of 200", shared);

    // A row another program wrote wider than the collection's dimension: the whole column.
    store
        .insert("wide", random_items(&mut rng, "wide", 3_000, 4))
        .await
        .expect("insert");
    sqlx::query(
        "UPDATE document_chunk SET vector = '[0.5,0.5,0,0,0,0,0,0.7]' \
         WHERE collection_name = 'wide' AND id = 'wide-0007'",
    )
    .execute(store.pool())
    .await
    .expect("widen a row");
    optimize_keyed(&store, "wide", IndexKey::Normalised).await;
    let definitions = own_index_definitions(&store).await;
    assert_eq!(
        definitions
            .iter()
            .filter(|d| !d.contains("subvector"))
            .count(),
        1,
        "{definitions:?}"
    );

    // Every row replaced by six-dimensional vectors: exact until the next optimize.
    let wider: Vec<VectorItem> = random_items(&mut rng, "narrow", 3_000, 6);
    store.upsert("narrow", wider).await.expect("upsert");
    assert_eq!(store.plan("narrow").await.expect("plan"), SearchPlan::Exact);
    optimize_keyed(&store, "narrow", IndexKey::Prefix(6)).await;
    let definitions = own_index_definitions(&store).await;
    assert_eq!(definitions.len(), 2, "{definitions:?}");
    assert!(
        definitions
            .iter()
            .any(|d| d.contains("subvector(vector, 1, 6)")),
        "{definitions:?}"
    );
}

/// Large batches (binary COPY straight into the table, or through the staging table) keep the
/// same semantics as small ones: all-or-nothing inserts, upserts that replace and move.
#[tokio::test]
async fn large_batches_keep_the_semantics() {
    let Some(store) = fresh_store(32).await else {
        return;
    };
    let model = MemoryBackend::new();
    let mut rng = Rng::new(21);
    let first = random_items(&mut rng, "x", 600, 16);
    for s in [&store as &dyn VectorRepo, &model] {
        s.insert("a", first[..400].to_vec()).await.expect("insert");
        s.insert("b", first[400..].to_vec()).await.expect("insert");
    }
    // A large insert with one taken id inserts nothing.
    let mut clash = random_items(&mut rng, "y", 500, 16);
    clash[250].id = first[10].id.clone();
    let e = store
        .insert("c", clash.clone())
        .await
        .expect_err("taken id");
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(!store.has_collection("c").await.expect("has"));
    // A large upsert replaces ids of "a", moves every id of "b" and adds new ones.
    let mut batch: Vec<VectorItem> = first[300..].to_vec();
    for it in &mut batch {
        it.vector = rng.unit_vector(16);
        it.text = format!("new {}", it.id);
    }
    batch.extend(random_items(&mut rng, "z", 100, 16));
    for s in [&store as &dyn VectorRepo, &model] {
        s.upsert("a", batch.clone()).await.expect("upsert");
    }
    // A large upsert of new ids only goes straight into the table.
    let fresh = random_items(&mut rng, "w", 300, 16);
    for s in [&store as &dyn VectorRepo, &model] {
        s.upsert("d", fresh.clone()).await.expect("upsert new ids");
    }
    for c in ["a", "b", "d"] {
        assert_eq!(
            store.get(c).await.expect("get"),
            model.get(c).await.expect("get")
        );
    }
    assert_eq!(store.collections().await.expect("list"), vec!["a", "d"]);
    let q = vec![rng.unit_vector(16), rng.unit_vector(16)];
    assert_same_hits(
        &store.search("a", &q, None, 20).await.expect("search"),
        &model.search("a", &q, None, 20).await.expect("search"),
    );
}

/// A halfvec column takes large batches through the staging table.
#[tokio::test]
async fn a_halfvec_table_takes_large_batches() {
    let Some(url) = fresh_database("template1").await else {
        return;
    };
    let mut config = PgVectorConfig::new(url).dimension(16);
    config.use_halfvec = true;
    let store = PgVectorStore::connect(config).await.expect("open");
    let mut rng = Rng::new(3);
    let items = random_items(&mut rng, "h", 300, 8);
    store.insert("h", items.clone()).await.expect("insert");
    store.upsert("h", items.clone()).await.expect("upsert");
    let got = store.get("h").await.expect("get");
    assert_eq!(got.len(), 300);
    for (g, w) in got.iter().zip(&items) {
        assert_eq!(g.id, w.id);
        for (a, b) in g.vector.iter().zip(&w.vector) {
            assert!((a - b).abs() < 2e-3, "halfvec keeps about 3 digits");
        }
    }
}

/// One `upsert_many` of several large collections into a halfvec column (Open WebUI's
/// `PGVECTOR_USE_HALFVEC`; a migration writes pages of several collections in one call): each
/// collection keeps its own rows. The staging table is emptied only at commit, so the second
/// collection's `INSERT ... SELECT` used to take the first one's rows too and move them over,
/// and the call returned Ok with the first collection empty.
#[tokio::test]
async fn a_halfvec_upsert_of_several_large_collections_keeps_each_its_rows() {
    let Some(url) = fresh_database("template1").await else {
        return;
    };
    let mut config = PgVectorConfig::new(url).dimension(16);
    config.use_halfvec = true;
    let store = PgVectorStore::connect(config).await.expect("open");
    let mut rng = Rng::new(41);
    let a = random_items(&mut rng, "a", 300, 8);
    let b = random_items(&mut rng, "b", 280, 8);
    store
        .upsert_many(vec![("a".into(), a.clone()), ("b".into(), b.clone())])
        .await
        .expect("upsert both");
    for (name, want) in [("a", &a), ("b", &b)] {
        let got = store.get(name).await.expect("get");
        assert_eq!(got.len(), want.len(), "{name}: its own rows");
        assert!(
            got.iter().zip(want.iter()).all(|(g, w)| g.id == w.id),
            "{name}: the ids it was given"
        );
    }
}

/// An unfiltered search through the HNSW index near rows just deleted: the index still holds
/// them (until VACUUM) and pgvector drops them after the walk, so the walk's `ef_search`
/// candidates can all be dead and the answer short. Such a search is answered again exactly:
/// the nearest live rows, as an exact search finds them.
#[tokio::test]
async fn an_index_search_near_deleted_rows_still_finds_k_neighbours() {
    let Some(url) = fresh_database("template1").await else {
        return;
    };
    // A recall target the clustered data meets at once: the plan then only needs the index to
    // beat the exact scan, which calibration times (tried again on a busy machine).
    let mut config = indexing_config(url, 32);
    config.target_recall = 0.9;
    let store = PgVectorStore::connect(config).await.expect("open");
    let mut rng = Rng::new(77);
    let centres: Vec<Vec<f32>> = (0..20).map(|_| rng.unit_vector(32)).collect();
    let mut items = Vec::new();
    for (c, centre) in centres.iter().enumerate() {
        for i in 0..300 {
            let noise = rng.unit_vector(32);
            let v: Vec<f32> = centre
                .iter()
                .zip(&noise)
                .map(|(x, n)| x + 0.05 * n)
                .collect();
            items.push(item(&format!("c{c:02}-{i:03}"), v, json!({"cluster": c})));
        }
    }
    store.insert("k", items).await.expect("insert");
    let mut plan = store.optimize("k").await.expect("optimize");
    for _ in 0..2 {
        if matches!(plan.plan, SearchPlan::Hnsw { .. }) {
            break;
        }
        plan = store.optimize("k").await.expect("optimize again");
    }
    assert!(matches!(plan.plan, SearchPlan::Hnsw { .. }), "{plan:?}");
    // The whole cluster around the query goes; nothing vacuums the index meanwhile.
    let gone: Vec<String> = (0..300).map(|i| format!("c00-{i:03}")).collect();
    store
        .delete("k", Some(&gone), None)
        .await
        .expect("delete a cluster");
    let query = vec![centres[0].clone()];
    let hits = store.search("k", &query, None, 10).await.expect("search");
    let exact: Vec<VectorItem> = store.get("k").await.expect("get");
    let refs: Vec<&VectorItem> = exact.iter().collect();
    let want = chatstore_core::vectors::exact_search(&refs, &query[0], None, 10);
    assert_eq!(hits[0].len(), 10, "{:?}", hits[0]);
    assert_same_hits(&hits, &[want]);
}

/// A narrow collection of 256 or more dimensions in a `vector` column is indexed as unit-length
/// `halfvec`: components far beyond halfvec's range (here 100,000 times a unit vector) index
/// without overflow, and searches find what exact search finds.
#[tokio::test]
async fn a_wide_narrow_collection_is_indexed_as_unit_halfvec() {
    let Some(url) = fresh_database("template1").await else {
        return;
    };
    let store = PgVectorStore::connect(indexing_config(url, 512))
        .await
        .expect("open");
    let mut rng = Rng::new(35);
    // Twenty tight clusters: HNSW reaches the target recall on them.
    let centres: Vec<Vec<f32>> = (0..20).map(|_| rng.unit_vector(256)).collect();
    let draw = |rng: &mut Rng| -> Vec<f32> {
        let c = &centres[rng.below(centres.len())];
        let noise = rng.unit_vector(256);
        c.iter()
            .zip(&noise)
            .map(|(x, n)| (x + 0.5 * n) * 100_000.0)
            .collect()
    };
    let items: Vec<VectorItem> = (0..2_000)
        .map(|i| item(&format!("w-{i:04}"), draw(&mut rng), json!({})))
        .collect();
    store.insert("w", items.clone()).await.expect("insert");
    optimize_keyed(&store, "w", IndexKey::Prefix(256)).await;
    let definitions = own_index_definitions(&store).await;
    assert!(
        definitions.len() == 1
            && definitions[0].contains("l2_normalize(subvector(vector, 1, 256))")
            && definitions[0].contains("halfvec(256)"),
        "{definitions:?}"
    );
    let queries: Vec<Vec<f32>> = (0..10).map(|_| draw(&mut rng)).collect();
    let found = store.search("w", &queries, None, 10).await.expect("search");
    let shared = shared_with_exact("w", items, &queries, &found, 1e-5).await;
    assert!(shared >= 90, "recall@10 {shared} of 100");
}

/// A halfvec column's narrow collections get narrow indexes too (the padding checked with
/// halfvec's norm), and searches through them find what exact search finds. (Eight
/// dimensions: in four, halfvec's rounding makes distances tie often enough that the
/// calibration's recall against exact search falls under its target.)
#[tokio::test]
async fn a_halfvec_table_gets_narrow_indexes() {
    let Some(url) = fresh_database("template1").await else {
        return;
    };
    let mut config = indexing_config(url, 16);
    config.use_halfvec = true;
    let store = PgVectorStore::connect(config).await.expect("open");
    let mut rng = Rng::new(33);
    let items = random_items(&mut rng, "h", 3_000, 8);
    store.insert("h", items.clone()).await.expect("insert");
    optimize_keyed(&store, "h", IndexKey::Prefix(8)).await;
    let definitions = own_index_definitions(&store).await;
    assert!(
        definitions.len() == 1 && definitions[0].contains("subvector(vector, 1, 8)"),
        "{definitions:?}"
    );
    let queries: Vec<Vec<f32>> = (0..10).map(|_| rng.unit_vector(8)).collect();
    let found = store.search("h", &queries, None, 10).await.expect("search");
    let shared = shared_with_exact("h", items, &queries, &found, 5e-3).await;
    assert!(shared >= 90, "recall@10 {shared} of 100");
}

/// Several processes opening one empty database at once create the schema once, without errors.
#[tokio::test]
async fn concurrent_opens_create_the_schema_once() {
    let Some(url) = fresh_database("template1").await else {
        return;
    };
    let opens = (0..4).map(|_| {
        let url = url.clone();
        tokio::spawn(async move {
            PgVectorStore::connect(PgVectorConfig::new(url).dimension(8).pool_size(1)).await
        })
    });
    for open in opens {
        open.await.expect("task").expect("open");
    }
    let store = PgVectorStore::connect(PgVectorConfig::new(url).pool_size(1))
        .await
        .expect("open again");
    assert_eq!(store.schema().dimension, Some(8), "the first table stays");
}

/// A table encrypted by Open WebUI's PGVECTOR_PGCRYPTO (bytea text and metadata) is refused.
#[tokio::test]
async fn a_pgcrypto_table_is_refused() {
    let Some(url) = fresh_database("template1").await else {
        return;
    };
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    sqlx::raw_sql(
        "CREATE EXTENSION IF NOT EXISTS vector; \
         CREATE TABLE document_chunk (id TEXT NOT NULL, vector VECTOR(1536), \
         collection_name TEXT NOT NULL, text BYTEA, vmetadata BYTEA, PRIMARY KEY (id))",
    )
    .execute(&pool)
    .await
    .expect("pgcrypto layout");
    let e = PgVectorStore::from_pool(pool, PgVectorConfig::new(""))
        .await
        .expect_err("refused");
    assert!(e.to_string().contains("PGCRYPTO"), "{e}");
}

/// A server that cannot be reached is Unavailable (retryable), not a panic.
#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    // Port 1 on loopback: nothing listens there.
    let config = PgVectorConfig::new("postgres://postgres@127.0.0.1:1/none")
        .pool_size(1)
        .acquire_timeout(std::time::Duration::from_secs(2));
    let e = PgVectorStore::connect(config)
        .await
        .expect_err("unreachable");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.is_retryable());
}

/// A store built on a base without vectors (PostgreSQL app data) reports the vectors
/// capability once pgvector supplies them, and its vectors answer.
#[tokio::test]
async fn into_store_reports_the_vectors_capability() {
    let Some(vectors) = fresh_store(8).await else {
        return;
    };
    let memory = MemoryBackend::new().store();
    let base = chatstore_core::Store::new(
        "app-only",
        chatstore_core::Capabilities {
            vectors: false,
            ..chatstore_core::Capabilities::ALL
        },
        chatstore_core::StoreParts {
            users: memory.users.clone(),
            chats: memory.chats.clone(),
            messages: memory.messages.clone(),
            tags: memory.tags.clone(),
            files: memory.files.clone(),
            vectors: std::sync::Arc::new(chatstore_core::unsupported::NoVectors {
                backend: "app-only",
            }),
        },
    );
    let store = vectors.into_store(&base);
    assert!(store.capabilities().vectors);
    assert_eq!(store.backend_name(), "app-only+pgvector");
    assert!(
        !store
            .vectors
            .has_collection("kb")
            .await
            .expect("pgvector answers")
    );
}

async fn index_builds_running(conn: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_progress_create_index WHERE datname = current_database()",
    )
    .fetch_one(conn)
    .await
    .expect("progress")
}

/// A collection that crosses `exact_max_rows` gets its index by itself, in the background and
/// `CONCURRENTLY`: writes go through while it builds, searches stay exact until the index is
/// calibrated, and afterwards the collection is searched through it.
#[tokio::test]
async fn background_builds_let_writes_through_and_keep_searches_exact() {
    use sqlx::Connection;
    use std::time::{Duration, Instant};

    let Some(url) = fresh_database("template1").await else {
        return;
    };
    let store = PgVectorStore::connect(
        PgVectorConfig::new(url.clone())
            .dimension(8)
            .exact_max_rows(500)
            .auto_index_delay(Duration::from_millis(100)),
    )
    .await
    .expect("open");
    let model = MemoryBackend::new();
    let mut rng = Rng::new(31);
    // A transaction with an older snapshot holds the concurrent build in its last phase until
    // it ends, so the test can write and search while the build is certainly running.
    let mut holder = sqlx::PgConnection::connect(&url).await.expect("connect");
    let mut monitor = sqlx::PgConnection::connect(&url).await.expect("connect");
    sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut holder)
        .await
        .expect("begin");
    sqlx::raw_sql("SELECT count(*) FROM chatstore_collection")
        .execute(&mut holder)
        .await
        .expect("snapshot");

    let items = random_items(&mut rng, "big", 2_000, 4);
    store.insert("big", items.clone()).await.expect("insert");
    model.insert("big", items).await.expect("insert");
    let started = Instant::now();
    while index_builds_running(&mut monitor).await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no background build started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Writes to the collection and to others go through during the build.
    for (name, n) in [("big", 40), ("other", 30)] {
        let more = random_items(&mut rng, &format!("{name}-more"), n, 4);
        let t = Instant::now();
        store.insert(name, more.clone()).await.expect("insert");
        model.insert(name, more).await.expect("insert");
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "a write waited for the build"
        );
    }
    let victims = vec!["big-0001".to_owned(), "big-0002".to_owned()];
    assert_eq!(
        store
            .delete("big", Some(&victims), None)
            .await
            .expect("delete"),
        2
    );
    model
        .delete("big", Some(&victims), None)
        .await
        .expect("delete");
    assert!(
        index_builds_running(&mut monitor).await > 0,
        "the writes finished while the build ran"
    );
    // Searches are exact meanwhile, with and without a filter.
    assert_eq!(store.plan("big").await.expect("plan"), SearchPlan::Exact);
    let filter = VectorFilter::eq("file_id", "f1");
    for _ in 0..5 {
        let q = vec![rng.unit_vector(4)];
        for f in [None, Some(&filter)] {
            let got = store.search("big", &q, f, 10).await.expect("search");
            let want = model.search("big", &q, f, 10).await.expect("model");
            assert_same_hits(&got, &want);
        }
    }

    sqlx::raw_sql("COMMIT")
        .execute(&mut holder)
        .await
        .expect("commit");
    // Through a whole store's layers, as an application shutting down would wait.
    let whole = store.clone().into_store(&chatstore_core::memory::store());
    tokio::time::timeout(Duration::from_secs(120), whole.vectors.settle())
        .await
        .expect("the background build ends")
        .expect("settle");
    assert!(
        matches!(
            store.plan("big").await.expect("plan"),
            SearchPlan::Hnsw { .. }
        ),
        "the collection is searched through its index"
    );
    assert_eq!(own_indexes(&store).await, 1);
    // Through the index the answers keep their neighbours; filtered ones stay complete.
    let mut recall = 0.0;
    for _ in 0..20 {
        let q = vec![rng.unit_vector(4)];
        let got = store.search("big", &q, None, 10).await.expect("search");
        let want = model.search("big", &q, None, 10).await.expect("model");
        let want_ids: Vec<&str> = want[0].iter().map(|h| h.id.as_str()).collect();
        recall += got[0]
            .iter()
            .filter(|h| want_ids.contains(&h.id.as_str()))
            .count() as f64
            / 10.0;
        let got = store
            .search("big", &q, Some(&filter), 10)
            .await
            .expect("search");
        let want = model
            .search("big", &q, Some(&filter), 10)
            .await
            .expect("model");
        assert_eq!(
            got[0].len(),
            want[0].len(),
            "filtered searches stay complete"
        );
    }
    assert!(recall / 20.0 >= 0.95, "recall {}", recall / 20.0);
}

/// Waits (30 s at most) until a session of the database at `url` whose statement is `LIKE`
/// `statement` waits on a lock.
async fn wait_for_a_lock_wait(url: &str, statement: &str) {
    let mut watch = <sqlx::PgConnection as sqlx::Connection>::connect(url)
        .await
        .expect("connect");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE wait_event_type = 'Lock' AND query LIKE $1",
        )
        .bind(statement)
        .fetch_one(&mut watch)
        .await
        .expect("watch the sessions");
        if waiting > 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no statement like {statement:?} waited on a lock"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A large upsert whose COPY meets an id another writer added after the upsert's delete (the
/// unique index makes the COPY wait for that writer, then fail) is rolled back and written
/// again by merging: the call succeeds, the id ends in the upserted collection with the
/// upserted data, and the collection it came from is left empty.
#[tokio::test]
async fn a_large_upsert_raced_by_another_writer_is_merged() {
    let Some(url) = fresh_database("template1").await else {
        return;
    };
    let config = PgVectorConfig::new(url.clone()).dimension(16).pool_size(4);
    let store = PgVectorStore::connect(config).await.expect("open store");
    let mut rng = Rng::new(31);
    let items = random_items(&mut rng, "race", 300, 16);
    let raced = items[150].id.clone();

    // Another writer adds one of the ids and keeps its transaction open.
    let mut other = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("connect");
    sqlx::raw_sql("BEGIN")
        .execute(&mut other)
        .await
        .expect("BEGIN");
    let zeros = format!("[{}]", vec!["0.5"; 16].join(","));
    sqlx::query(
        "INSERT INTO document_chunk (id, vector, collection_name, text, vmetadata) \
         VALUES ($1, $2::vector, 'other', 'written by another', '{}'::jsonb)",
    )
    .bind(&raced)
    .bind(&zeros)
    .execute(&mut other)
    .await
    .expect("insert the raced id");

    let writer = store.clone();
    let batch = items.clone();
    let upsert = tokio::spawn(async move { writer.upsert("kb", batch).await });

    // The upsert's COPY waits on the other writer's row before that one commits.
    wait_for_a_lock_wait(&url, "COPY document_chunk%").await;
    sqlx::raw_sql("COMMIT")
        .execute(&mut other)
        .await
        .expect("COMMIT");

    upsert
        .await
        .expect("the upsert task")
        .expect("the raced upsert succeeds");
    let got = store.get("kb").await.expect("get");
    assert_eq!(got.len(), 300);
    let moved = got.iter().find(|i| i.id == raced).expect("the raced id");
    assert_eq!(moved.text, items[150].text);
    assert!(store.get("other").await.expect("get").is_empty());
    assert_eq!(store.collections().await.expect("list"), ["kb"]);
}

/// An upsert that moves the last row out of a collection while another writer is adding rows
/// to that collection (holding its side-table row, as every chatstore write does, until it
/// commits) keeps the collection's dimension: the other writer's rows come back at their own
/// length, not padded to the column's, and the collection is still listed.
#[tokio::test]
async fn moving_the_last_row_out_keeps_a_collection_another_writer_fills() {
    let Some(url) = fresh_database("template1").await else {
        return;
    };
    let config = PgVectorConfig::new(url.clone()).dimension(8).pool_size(4);
    let store = PgVectorStore::connect(config).await.expect("open store");
    store
        .insert("x", vec![item("m", vec![1.0, 0.0], json!({}))])
        .await
        .expect("insert");

    // Another replica writes into `x` and keeps its transaction open.
    let mut other = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("connect");
    sqlx::raw_sql(
        "BEGIN; \
         UPDATE chatstore_collection SET written = written + 1 WHERE name = 'x'; \
         INSERT INTO document_chunk (id, vector, collection_name, text, vmetadata) \
         VALUES ('n', '[0.6,0.8,0,0,0,0,0,0]', 'x', 'written by another', '{}'::jsonb)",
    )
    .execute(&mut other)
    .await
    .expect("the other writer's rows");

    let writer = store.clone();
    let upsert = tokio::spawn(async move {
        writer
            .upsert("y", vec![item("m", vec![0.0, 1.0], json!({}))])
            .await
    });

    // The upsert, having moved `m`, waits on the other writer's hold of `x`.
    wait_for_a_lock_wait(&url, "%chatstore_collection%").await;
    sqlx::raw_sql("COMMIT")
        .execute(&mut other)
        .await
        .expect("COMMIT");
    upsert.await.expect("the upsert task").expect("upsert");

    let got = store.get("x").await.expect("get");
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].vector,
        vec![0.6, 0.8],
        "the other writer's row at its collection's dimension"
    );
    assert_eq!(store.collections().await.expect("list"), ["x", "y"]);
    let e = store
        .insert("x", vec![item("o", vec![1.0, 1.0, 1.0], json!({}))])
        .await
        .expect_err("x still holds 2-dimensional rows");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

/// Deleting a collection that has its own index while another transaction holds the table (a
/// long search, another collection's `CREATE INDEX CONCURRENTLY`) waits for neither, and
/// searches and writes of other collections go on meanwhile; the index is gone once the table
/// is free. (Dropped inside the delete's transaction, the index needed an exclusive lock on
/// the table: the delete waited for the other transaction, and every statement on the table
/// queued behind it.)
#[tokio::test]
async fn dropping_an_emptied_collections_index_never_stalls_the_table() {
    let Some(url) = fresh_database("template1").await else {
        return;
    };
    let store = PgVectorStore::connect(indexing_config(url.clone(), 8))
        .await
        .expect("open");
    let mut rng = Rng::new(12);
    store
        .insert("big", random_items(&mut rng, "big", 3_000, 4))
        .await
        .expect("insert");
    store
        .insert("other", random_items(&mut rng, "other", 50, 4))
        .await
        .expect("insert");
    optimize_keyed(&store, "big", IndexKey::Prefix(4)).await;
    assert_eq!(own_indexes(&store).await, 1);

    // Another session reads the table and keeps its transaction open.
    let mut holder = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("connect");
    sqlx::raw_sql("BEGIN; SELECT count(*) FROM document_chunk")
        .execute(&mut holder)
        .await
        .expect("hold the table");

    let deleter = store.clone();
    let deleting = tokio::spawn(async move { deleter.delete_collection("big").await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let limit = std::time::Duration::from_secs(20);
    let others = tokio::time::timeout(limit, async {
        let hits = store
            .search("other", &[vec![1.0, 0.0, 0.0, 0.0]], None, 3)
            .await
            .expect("search");
        store
            .upsert("other", random_items(&mut rng, "more", 5, 4))
            .await
            .expect("upsert");
        hits
    })
    .await
    .expect("another collection's search and write answer while the table is held");
    assert_eq!(others[0].len(), 3);
    tokio::time::timeout(limit, deleting)
        .await
        .expect("the delete answers while the table is held")
        .expect("the delete task")
        .expect("delete");
    assert!(!store.has_collection("big").await.expect("has"));

    sqlx::raw_sql("COMMIT")
        .execute(&mut holder)
        .await
        .expect("COMMIT");
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        store.wait_for_index_builds(),
    )
    .await
    .expect("the index drop finishes once the table is free");
    assert_eq!(
        own_indexes(&store).await,
        0,
        "the emptied collection's index is gone"
    );
}

/// A second process opening a database that has everything takes no lock on a table: not
/// while another process builds an index concurrently (a share update exclusive lock on
/// `document_chunk`, for minutes) nor while a write holds the side table. Opening used to queue
/// behind both (`CREATE INDEX IF NOT EXISTS` and `ALTER TABLE ... ADD COLUMN IF NOT EXISTS`
/// lock before they look), and every later write and search of every process behind it.
#[tokio::test]
async fn opening_a_ready_database_waits_for_no_index_build_or_write() {
    let Some(url) = common::fresh_database("template1").await else {
        return;
    };
    let first = PgVectorStore::connect(PgVectorConfig::new(&url).dimension(3).pool_size(2))
        .await
        .expect("first open creates the schema");
    first
        .insert("c", vec![item("a", vec![1.0, 2.0, 3.0], json!({}))])
        .await
        .expect("insert");
    let mut holder = sqlx::PgConnection::connect(&url).await.expect("connect");
    sqlx::raw_sql(
        "BEGIN; LOCK TABLE document_chunk IN SHARE UPDATE EXCLUSIVE MODE; \
         LOCK TABLE chatstore_collection IN ROW EXCLUSIVE MODE;",
    )
    .execute(&mut holder)
    .await
    .expect("hold the locks an index build and a write hold");
    let second = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        PgVectorStore::connect(PgVectorConfig::new(&url).dimension(3).pool_size(2)),
    )
    .await
    .expect("the second open waits for no lock")
    .expect("second open");
    assert_eq!(second.get("c").await.expect("read").len(), 1);
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut holder)
        .await
        .expect("release");
}

/// The side table's write count of collection `c`.
async fn written_of_c(conn: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar("SELECT written FROM chatstore_collection WHERE name = 'c'")
        .fetch_one(conn)
        .await
        .expect("the write count")
}

/// An index build that fails (here cancelled while it waits for the table) leaves the
/// collection due for a build: its write count is settled only by a build that finished. It
/// was reset before the build began, so a build cut short by a restart or a cancel left the
/// collection exact, and any failed build's leftover index slowing its inserts, until as many
/// rows again were written.
#[tokio::test]
async fn a_failed_index_build_leaves_the_collection_due() {
    let Some(url) = fresh_database("template1").await else {
        return;
    };
    let store = PgVectorStore::connect(indexing_config(&url, 8))
        .await
        .expect("open");
    let mut rng = Rng::new(7);
    store
        .insert("c", random_items(&mut rng, "r", 400, 8))
        .await
        .expect("insert");
    let mut admin = sqlx::PgConnection::connect(&url).await.expect("connect");
    assert_eq!(written_of_c(&mut admin).await, 400);
    let mut holder = sqlx::PgConnection::connect(&url).await.expect("connect");
    sqlx::raw_sql("BEGIN; LOCK TABLE document_chunk IN SHARE UPDATE EXCLUSIVE MODE;")
        .execute(&mut holder)
        .await
        .expect("hold the table");
    let build = tokio::spawn({
        let store = store.clone();
        async move { store.optimize("c").await }
    });
    let mut cancelled = false;
    for _ in 0..200 {
        cancelled = sqlx::query_scalar::<_, bool>(
            "SELECT coalesce(bool_or(pg_cancel_backend(pid)), false) FROM pg_stat_activity \
             WHERE query LIKE 'CREATE INDEX CONCURRENTLY%' AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut admin)
        .await
        .expect("look for the build");
        if cancelled {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(cancelled, "the build waited for the table");
    let failed = build.await.expect("joined");
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(
        written_of_c(&mut admin).await,
        400,
        "the collection is still due"
    );
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut holder)
        .await
        .expect("release");
    store.optimize("c").await.expect("the next build");
    assert_eq!(written_of_c(&mut admin).await, 0, "settled by it");
}

/// Rows another program (Open WebUI itself) wrote into a collection are not read or written
/// over at a dimension chatstore recorded without them: a first chatstore write narrower than
/// those rows is refused (it recorded its own dimension, and every read then cut the other
/// rows to it), and a collection refilled at another dimension after chatstore recorded one
/// reads back whole and takes writes of the rows' own width. (A write of the stale recorded
/// width is still taken there: checking the rows on every write was not worth its cost.)
#[tokio::test]
async fn rows_another_program_wrote_keep_their_own_dimension() {
    let Some(url) = fresh_database("template1").await else {
        return;
    };
    let store = PgVectorStore::connect(PgVectorConfig::new(&url).dimension(16).pool_size(2))
        .await
        .expect("open");
    let mut raw = sqlx::PgConnection::connect(&url).await.expect("connect");
    let eight = "[1,2,3,4,5,6,7,8,0,0,0,0,0,0,0,0]";
    let foreign = |id: &'static str, collection: &'static str| {
        sqlx::query(
            "INSERT INTO document_chunk (id, vector, collection_name, text, vmetadata) \
             VALUES ($1, $2::vector, $3, 'by Open WebUI', '{}'::jsonb)",
        )
        .bind(id)
        .bind(eight)
        .bind(collection)
    };
    foreign("o1", "kb-1")
        .execute(&mut raw)
        .await
        .expect("Open WebUI's row");
    let e = store
        .insert(
            "kb-1",
            vec![item("c1", vec![1.0, 0.5, 0.25, 0.125], json!({}))],
        )
        .await
        .expect_err("narrower than the collection's rows");
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("8 dimensions"), "{e}");
    let side: i64 =
        sqlx::query_scalar("SELECT count(*) FROM chatstore_collection WHERE name = 'kb-1'")
            .fetch_one(&mut raw)
            .await
            .expect("side rows");
    assert_eq!(side, 0, "nothing recorded");
    store
        .insert(
            "kb-1",
            vec![item("c1", (1..=8).map(|x| x as f32).collect(), json!({}))],
        )
        .await
        .expect("a write of the rows' own width");
    let got = store.get("kb-1").await.expect("get");
    assert!(got.iter().all(|i| i.vector.len() == 8), "{got:?}");

    // chatstore recorded 4 dimensions; Open WebUI then emptied the collection (its delete
    // leaves chatstore's side row) and filled it again at 8.
    store
        .insert(
            "kb-2",
            vec![item("c2", vec![1.0, 0.5, 0.25, 0.125], json!({}))],
        )
        .await
        .expect("insert");
    sqlx::query("DELETE FROM document_chunk WHERE collection_name = 'kb-2'")
        .execute(&mut raw)
        .await
        .expect("Open WebUI's delete");
    foreign("o2", "kb-2")
        .execute(&mut raw)
        .await
        .expect("Open WebUI's row");
    let got = store.get("kb-2").await.expect("get");
    assert_eq!(
        got[0].vector,
        (1..=8).map(|x| x as f32).collect::<Vec<_>>(),
        "read whole, not cut to 4"
    );
    let e = store
        .upsert("kb-2", vec![item("c3", vec![1.0; 5], json!({}))])
        .await
        .expect_err("of neither width");
    assert!(e.to_string().contains("have 8"), "{e}");
    store
        .upsert("kb-2", vec![item("c3", vec![0.5; 8], json!({}))])
        .await
        .expect("a write of the rows' width");
    let hits = store
        .search("kb-2", &[vec![1.0; 8]], None, 2)
        .await
        .expect("a search of the rows' width");
    assert_eq!(hits[0].len(), 2);
}

/// An index build waits for another process's build for `build_lock_wait`, then gives up with
/// `Unavailable` and leaves the collection due: a build stuck elsewhere held this process's
/// builds, and every `optimize` queued after them, for as long as it was stuck.
#[tokio::test]
async fn an_index_build_gives_up_on_another_stuck_build() {
    let Some(url) = fresh_database("template1").await else {
        return;
    };
    let config = indexing_config(&url, 8).build_lock_wait(std::time::Duration::from_secs(1));
    let store = PgVectorStore::connect(config).await.expect("open");
    let mut rng = Rng::new(9);
    store
        .insert("c", random_items(&mut rng, "r", 400, 8))
        .await
        .expect("insert");
    let mut other = sqlx::PgConnection::connect(&url).await.expect("connect");
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(chatstore_pgvector::BUILD_LOCK)
        .execute(&mut other)
        .await
        .expect("another build holds the lock");
    let started = std::time::Instant::now();
    let e = store.optimize("c").await.expect_err("gives up");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(written_of_c(&mut other).await, 400, "still due");
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(chatstore_pgvector::BUILD_LOCK)
        .execute(&mut other)
        .await
        .expect("release");
    store
        .optimize("c")
        .await
        .expect("builds once the other is done");
}

/// Whether some backend of the database at `url` waits for a lock.
async fn someone_waits_for_a_lock(url: &str) -> bool {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    let waiting: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .fetch_one(&mut conn)
    .await
    .expect("pg_stat_activity");
    waiting > 0
}

/// PostgreSQL breaks a deadlock by aborting one of its transactions. When it picks a write of
/// chatstore's (here: moving an id to another collection while another session holds that
/// row and then asks for the collection chatstore claimed), the write runs again once the
/// other session is done, and succeeds; before, the caller got `Unavailable` ("deadlock
/// detected") for a write it had done nothing wrong in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_aborted_to_break_a_deadlock_runs_again() {
    let Some(url) = fresh_database("template1").await else {
        return;
    };
    let store = PgVectorStore::connect(PgVectorConfig::new(url.clone()).dimension(4))
        .await
        .expect("open");
    let x = || item("x", vec![1.0, 0.0, 0.0, 0.0], json!({"page": 1}));
    store.upsert("a", vec![x()]).await.expect("x in a");
    let y = item("y", vec![0.0, 1.0, 0.0, 0.0], json!({"page": 2}));
    store.upsert("b", vec![y]).await.expect("y in b");

    let mut other = sqlx::PgConnection::connect(&url).await.expect("connect");
    // The other session checks for deadlocks late, so that chatstore's (1 s) finds this one.
    sqlx::query("SET deadlock_timeout = '20s'")
        .execute(&mut other)
        .await
        .expect("deadlock_timeout");
    sqlx::query("BEGIN")
        .execute(&mut other)
        .await
        .expect("begin");
    sqlx::query("SELECT 1 FROM document_chunk WHERE id = 'x' FOR UPDATE")
        .execute(&mut other)
        .await
        .expect("hold row x");

    // chatstore claims "b" (its side-table row), then waits for row x.
    let moving = store.clone();
    let write = tokio::spawn(async move { moving.upsert("b", vec![x()]).await });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !someone_waits_for_a_lock(&url).await {
        assert!(
            std::time::Instant::now() < deadline,
            "the write never waited for row x"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The other session now asks for the row chatstore holds: a deadlock, which PostgreSQL
    // breaks by aborting chatstore's transaction.
    sqlx::query("SELECT 1 FROM chatstore_collection WHERE name = 'b' FOR UPDATE")
        .execute(&mut other)
        .await
        .expect("the other session gets b once chatstore's write is aborted");
    sqlx::query("COMMIT")
        .execute(&mut other)
        .await
        .expect("commit");

    write
        .await
        .expect("task")
        .expect("the write runs again and succeeds");
    assert_eq!(
        store
            .get("b")
            .await
            .expect("b")
            .iter()
            .map(|i| i.id.as_str())
            .collect::<Vec<_>>(),
        ["x", "y"]
    );
    assert!(store.get("a").await.expect("a").is_empty());
}
