//! Contracts of `VectorRepo`: Open WebUI's vector store interface.

use chatstore_core::vectors::exact_search;
use chatstore_core::{Result, SearchHit, Store, VectorFilter, VectorItem};
use serde_json::json;

use crate::assert_kind;
use crate::fixtures::{ids, item, pseudo_random_vector};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-5
}

fn assert_hits(got: &[SearchHit], want: &[SearchHit]) {
    assert_eq!(ids(got), ids(want), "neighbour ids in order");
    for (g, w) in got.iter().zip(want) {
        assert!(
            close(g.distance, w.distance),
            "distance of {}: {} vs {}",
            g.id,
            g.distance,
            w.distance
        );
        assert!(close(g.score, w.score), "score of {}", g.id);
        assert_eq!(g.text, w.text);
        assert_eq!(g.metadata, w.metadata);
    }
}

fn axis_items() -> Vec<VectorItem> {
    vec![
        item("x", &[1.0, 0.0, 0.0], json!({"file_id": "f1", "page": 1})),
        item("y", &[0.0, 1.0, 0.0], json!({"file_id": "f1", "page": 2})),
        item("z", &[0.0, 0.0, 1.0], json!({"file_id": "f2", "page": 3})),
        item(
            "xy",
            &[1.0, 1.0, 0.0],
            json!({"file_id": "f2", "page": "1"}),
        ),
    ]
}

/// Inserted items read back with text, vector and metadata, ordered by id.
pub async fn insert_then_get_returns_items_by_id(store: &Store) -> Result<()> {
    store.vectors.insert("kb", axis_items()).await?;
    let got = store.vectors.get("kb").await?;
    assert_eq!(ids(&got), ["x", "xy", "y", "z"]);
    let x = &got[0];
    assert_eq!(x.text, "text of x");
    assert_eq!(x.vector, vec![1.0, 0.0, 0.0]);
    assert_eq!(x.metadata["file_id"], "f1");
    assert!(store.vectors.get("other").await?.is_empty());
    Ok(())
}

/// Metadata values read back exactly as written, kind for kind: a float with 17 significant
/// digits to the last bit, an integer as an integer, a boolean as a boolean; a filter on the
/// float finds its item. A store without `exact_vectors` (Chroma, whose server may read such a
/// float one unit in the last place off) keeps the float within that rounding.
pub async fn metadata_values_round_trip_exactly(store: &Store) -> Result<()> {
    let metadata = json!({
        "f": 0.1 + 0.2,
        "g": 0.9522444552911937,
        "i": 7,
        "b": true,
        "s": "é ✓",
    });
    store
        .vectors
        .insert("kb", vec![item("a", &[1.0, 0.0, 0.0], metadata.clone())])
        .await?;
    let got = store.vectors.get("kb").await?;
    assert_eq!(got.len(), 1);
    let exact = store.capabilities().exact_vectors;
    for key in ["f", "g", "i", "b", "s"] {
        let (read, wrote) = (&got[0].metadata[key], &metadata[key]);
        assert_eq!(
            read.is_i64(),
            wrote.is_i64(),
            "metadata {key} stays an integer"
        );
        assert_eq!(
            read.is_f64(),
            wrote.is_f64(),
            "metadata {key} stays a float"
        );
        match (read.as_f64(), wrote.as_f64()) {
            (Some(r), Some(w)) if !exact => {
                assert!(
                    (r - w).abs() <= w.abs() * f64::EPSILON,
                    "metadata {key}: {r} {w}"
                );
            }
            _ => assert_eq!(read, wrote, "metadata {key}"),
        }
        if exact {
            assert_eq!(
                read.as_f64().map(f64::to_bits),
                wrote.as_f64().map(f64::to_bits),
                "metadata {key} to the bit"
            );
        }
    }
    if !exact {
        return Ok(());
    }
    let found = store
        .vectors
        .query("kb", &VectorFilter::eq("g", 0.9522444552911937), None)
        .await?;
    assert_eq!(ids(&found), ["a"]);
    Ok(())
}

/// A collection exists exactly while it has items.
pub async fn has_collection_follows_its_rows(store: &Store) -> Result<()> {
    assert!(!store.vectors.has_collection("kb").await?);
    store.vectors.insert("kb", axis_items()).await?;
    assert!(store.vectors.has_collection("kb").await?);
    store
        .vectors
        .delete(
            "kb",
            Some(&["x".into(), "y".into(), "z".into(), "xy".into()]),
            None,
        )
        .await?;
    assert!(!store.vectors.has_collection("kb").await?);
    Ok(())
}

/// Search returns the nearest items first by cosine distance, scored `(2 - d) / 2`.
pub async fn search_returns_nearest_first_with_open_webui_scores(store: &Store) -> Result<()> {
    store.vectors.insert("kb", axis_items()).await?;
    let hits = store
        .vectors
        .search("kb", &[vec![1.0, 0.2, 0.0]], None, 3)
        .await?;
    assert_eq!(hits.len(), 1);
    assert_eq!(ids(&hits[0]), ["x", "xy", "y"]);
    let q = [1.0f32, 0.2, 0.0];
    let norm = (1.0f64 + 0.04).sqrt();
    let d_x = 1.0 - 1.0 / norm;
    assert!(close(hits[0][0].distance, d_x));
    assert!(close(hits[0][0].score, (2.0 - d_x) / 2.0));
    let items = axis_items();
    let refs: Vec<&VectorItem> = items.iter().collect();
    assert_hits(&hits[0], &exact_search(&refs, &q, None, 3));
    Ok(())
}

/// One search takes several query vectors and answers each in order.
pub async fn search_takes_many_query_vectors(store: &Store) -> Result<()> {
    store.vectors.insert("kb", axis_items()).await?;
    let hits = store
        .vectors
        .search(
            "kb",
            &[
                vec![0.0, 0.0, 2.0],
                vec![0.0, 3.0, 0.1],
                vec![5.0, 4.0, 0.0],
            ],
            None,
            1,
        )
        .await?;
    let firsts: Vec<&str> = hits.iter().map(|h| h[0].id.as_str()).collect();
    assert_eq!(firsts, ["z", "y", "xy"]);
    Ok(())
}

/// Search never returns items of another collection.
pub async fn search_stays_inside_the_collection(store: &Store) -> Result<()> {
    store.vectors.insert("kb", axis_items()).await?;
    store
        .vectors
        .insert("other", vec![item("o1", &[1.0, 0.0, 0.0], json!({}))])
        .await?;
    let hits = store
        .vectors
        .search("other", &[vec![0.0, 1.0, 0.0]], None, 10)
        .await?;
    assert_eq!(ids(&hits[0]), ["o1"]);
    let hits = store
        .vectors
        .search("kb", &[vec![1.0, 0.0, 0.0]], None, 10)
        .await?;
    assert_eq!(hits[0].len(), 4);
    Ok(())
}

/// `{key: value}` filters keep only items whose metadata equals the value.
pub async fn search_filter_equality(store: &Store) -> Result<()> {
    store.vectors.insert("kb", axis_items()).await?;
    let f = VectorFilter::eq("file_id", "f2");
    let hits = store
        .vectors
        .search("kb", &[vec![1.0, 0.0, 0.0]], Some(&f), 10)
        .await?;
    assert_eq!(ids(&hits[0]), ["xy", "z"]);
    let none = VectorFilter::eq("file_id", "f9");
    assert!(
        store
            .vectors
            .search("kb", &[vec![1.0, 0.0, 0.0]], Some(&none), 10)
            .await?[0]
            .is_empty()
    );
    Ok(())
}

/// `{key: {"$in": [...]}}` filters keep items whose metadata equals any listed value.
pub async fn search_filter_in(store: &Store) -> Result<()> {
    store.vectors.insert("kb", axis_items()).await?;
    let f = VectorFilter::from_json(
        &json!({"page": {"$in": [2, 3]}, "file_id": {"$in": ["f1", "f2"]}}),
    )?;
    let hits = store
        .vectors
        .search("kb", &[vec![0.0, 1.0, 1.0]], Some(&f), 10)
        .await?;
    let mut got = ids(&hits[0]);
    got.sort();
    assert_eq!(got, ["y", "z"]);
    Ok(())
}

/// Filter values compare as text: `1` matches metadata `1` and `"1"`.
pub async fn filter_values_compare_as_text(store: &Store) -> Result<()> {
    store.vectors.insert("kb", axis_items()).await?;
    let f = VectorFilter::eq("page", 1);
    let got = store.vectors.query("kb", &f, None).await?;
    assert_eq!(ids(&got), ["x", "xy"]);
    let f = VectorFilter::eq("page", "3");
    assert_eq!(ids(&store.vectors.query("kb", &f, None).await?), ["z"]);
    Ok(())
}

/// Searching a collection that has no items gives one empty list per query vector.
pub async fn searching_a_missing_collection_gives_empty_lists(store: &Store) -> Result<()> {
    let hits = store
        .vectors
        .search("nothing", &[vec![1.0, 0.0], vec![0.0, 1.0]], None, 5)
        .await?;
    assert_eq!(hits, vec![Vec::<SearchHit>::new(), Vec::new()]);
    Ok(())
}

/// Inserting an id that exists in any collection is a `Conflict` and inserts nothing.
pub async fn inserting_a_taken_id_is_a_conflict_and_inserts_nothing(store: &Store) -> Result<()> {
    store.vectors.insert("kb", axis_items()).await?;
    let batch = vec![
        item("new", &[0.5, 0.5, 0.5], json!({})),
        item("x", &[0.1, 0.2, 0.3], json!({})),
    ];
    assert_kind!(store.vectors.insert("other", batch).await, Conflict);
    assert!(!store.vectors.has_collection("other").await?);
    assert_eq!(store.vectors.get("kb").await?.len(), 4);
    // The same in a call of a hundred rows (pgvector's COPY path), the taken id last.
    let mut batch = numbered_items("n", 0..99, 1);
    batch.push(item("y", &[0.1, 0.2, 0.3], json!({})));
    assert_kind!(store.vectors.insert("other", batch).await, Conflict);
    assert!(!store.vectors.has_collection("other").await?);
    assert_eq!(store.vectors.get("kb").await?.len(), 4);
    Ok(())
}

/// Items `{prefix}-{i:03}` for `i` in `range`: 3-dimensional vectors and texts that differ
/// with `seed`.
fn numbered_items(prefix: &str, range: std::ops::Range<u64>, seed: u64) -> Vec<VectorItem> {
    range
        .map(|i| {
            let mut it = item(
                &format!("{prefix}-{i:03}"),
                &pseudo_random_vector(seed + i, 3),
                json!({"n": i}),
            );
            it.text = format!("{prefix} {seed} {i}");
            it
        })
        .collect()
}

/// `got` holds exactly `want`'s items, in id order (vectors within rounding).
fn assert_same_items(got: &[VectorItem], want: &[VectorItem], what: &str) {
    assert_eq!(ids(got), ids(want), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!((&g.text, &g.metadata), (&w.text, &w.metadata), "{}", w.id);
        assert!(
            g.vector
                .iter()
                .zip(&w.vector)
                .all(|(a, b)| (a - b).abs() < 1e-6),
            "{}",
            w.id
        );
    }
}

/// Upsert replaces an item by id, and moves it when it lived in another collection.
pub async fn upsert_replaces_and_moves_items(store: &Store) -> Result<()> {
    store.vectors.insert("kb", axis_items()).await?;
    let changed = item("x", &[0.0, 0.0, 5.0], json!({"file_id": "f3"}));
    store
        .vectors
        .upsert(
            "kb",
            vec![changed.clone(), item("w", &[1.0, 2.0, 3.0], json!({}))],
        )
        .await?;
    let got = store.vectors.get("kb").await?;
    assert_eq!(ids(&got), ["w", "x", "xy", "y", "z"]);
    assert_eq!(got[1], changed);
    store
        .vectors
        .upsert("moved", vec![item("w", &[1.0, 1.0], json!({}))])
        .await?;
    assert_eq!(ids(&store.vectors.get("moved").await?), ["w"]);
    assert_eq!(store.vectors.get("kb").await?.len(), 4);

    // A call of a hundred rows (pgvector's COPY path) replacing its collection's rows and
    // moving every row of another collection, which it leaves empty and forgotten.
    store
        .vectors
        .insert("hundred", numbered_items("h", 0..36, 0))
        .await?;
    store
        .vectors
        .insert("leaving", numbered_items("h", 36..100, 0))
        .await?;
    let upserted = numbered_items("h", 0..100, 500);
    store.vectors.upsert("hundred", upserted.clone()).await?;
    assert!(!store.vectors.has_collection("leaving").await?);
    assert_same_items(&store.vectors.get("hundred").await?, &upserted, "hundred");
    // And again over its own rows only.
    let again = numbered_items("h", 0..100, 900);
    store.vectors.upsert("hundred", again.clone()).await?;
    assert_same_items(
        &store.vectors.get("hundred").await?,
        &again,
        "hundred again",
    );
    Ok(())
}

/// `upsert_many` writes every entry's items into its own collection, replaces existing ids
/// and moves an id from another collection, in small calls and in calls of a few hundred
/// rows (pgvector's COPY path).
pub async fn upsert_many_writes_each_collection(store: &Store) -> Result<()> {
    store.vectors.insert("kb", axis_items()).await?;
    store
        .vectors
        .insert("old", vec![item("w", &[1.0, 1.0], json!({}))])
        .await?;
    let changed = item("x", &[0.0, 0.0, 5.0], json!({"file_id": "f3"}));
    store
        .vectors
        .upsert_many(vec![
            ("kb".to_owned(), vec![changed.clone()]),
            (
                "file-1".to_owned(),
                vec![
                    item("f1-a", &[1.0, 0.5], json!({"file_id": "1"})),
                    item("w", &[0.5, 1.0], json!({"file_id": "1"})),
                ],
            ),
            (
                "file-2".to_owned(),
                vec![item("f2-a", &[0.0, 1.0, 1.0, 1.0], json!({}))],
            ),
            ("empty".to_owned(), vec![]),
        ])
        .await?;
    let kb = store.vectors.get("kb").await?;
    assert_eq!(ids(&kb), ["x", "xy", "y", "z"]);
    assert_eq!(kb[0], changed);
    assert_eq!(ids(&store.vectors.get("file-1").await?), ["f1-a", "w"]);
    assert_eq!(store.vectors.get("file-2").await?[0].vector.len(), 4);
    assert!(!store.vectors.has_collection("old").await?);
    assert!(!store.vectors.has_collection("empty").await?);

    // Enough rows for the bulk paths: 3 collections of 100, one of them replacing itself.
    let many = |prefix: &str, seed: u64| numbered_items(prefix, 0..100, seed);
    let entries = vec![
        ("bulk-a".to_owned(), many("a", 1)),
        ("bulk-b".to_owned(), many("b", 1_000)),
        ("bulk-c".to_owned(), many("c", 2_000)),
    ];
    store.vectors.upsert_many(entries.clone()).await?;
    let again = vec![("bulk-b".to_owned(), many("b", 5_000)), entries[2].clone()];
    store.vectors.upsert_many(again.clone()).await?;
    for (collection, items) in [&entries[0], &again[0], &again[1]] {
        assert_same_items(&store.vectors.get(collection).await?, items, collection);
    }
    // A bulk call moving every row of a collection outside the call: the rows move, and the
    // collection they leave empty is forgotten.
    store.vectors.insert("bulk-src", many("s", 7_000)).await?;
    let moved = many("s", 9_000);
    store
        .vectors
        .upsert_many(vec![
            ("bulk-a".to_owned(), moved.clone()),
            ("bulk-d".to_owned(), many("d", 3_000)),
            ("bulk-e".to_owned(), many("e", 4_000)),
        ])
        .await?;
    assert!(!store.vectors.has_collection("bulk-src").await?);
    let a = store.vectors.get("bulk-a").await?;
    assert_eq!(a.len(), 200);
    for w in &moved {
        let g = a.iter().find(|g| g.id == w.id);
        let got = g.map(|g| (&g.text, &g.metadata));
        assert_eq!(got, Some((&w.text, &w.metadata)), "{}", w.id);
    }
    assert_eq!(store.vectors.get("bulk-d").await?.len(), 100);
    Ok(())
}

/// An `upsert_many` with any bad entry (a bad collection name, an empty id, a dimension its
/// collection's other rows refuse, a collection or an id twice) is `InvalidInput` and writes
/// none of its entries.
pub async fn upsert_many_is_all_or_nothing(store: &Store) -> Result<()> {
    store.vectors.insert("kb", axis_items()).await?;
    let before = store.vectors.get("kb").await?;
    let good = || ("file-1".to_owned(), vec![item("g", &[1.0, 2.0], json!({}))]);
    let replacing = || {
        (
            "kb".to_owned(),
            vec![item("x", &[2.0, 0.0, 0.0], json!({}))],
        )
    };
    let bad_calls = vec![
        vec![good(), ("".to_owned(), vec![item("b", &[1.0], json!({}))])],
        vec![
            good(),
            ("file-2".to_owned(), vec![item("", &[1.0], json!({}))]),
        ],
        vec![
            replacing(),
            good(),
            (
                "kb".to_owned(),
                vec![item("four", &[1.0, 2.0, 3.0, 4.0], json!({}))],
            ),
        ],
        vec![
            good(),
            replacing(),
            (
                "file-2".to_owned(),
                vec![item("two", &[1.0, 2.0], json!({}))],
            ),
            ("file-3".to_owned(), vec![item("g", &[1.0, 2.0], json!({}))]),
        ],
        vec![
            ("kb".to_owned(), vec![item("k", &[1.0, 2.0], json!({}))]),
            good(),
        ],
        vec![
            replacing(),
            good(),
            (
                "file-2".to_owned(),
                vec![item("n", &[1.0, f32::NAN], json!({}))],
            ),
        ],
    ];
    for call in bad_calls {
        assert_kind!(store.vectors.upsert_many(call).await, InvalidInput);
        assert_eq!(store.vectors.get("kb").await?, before);
        assert_eq!(store.vectors.collections().await?, ["kb"]);
    }
    // The wrong dimension in a later entry than the first write: still nothing.
    assert_kind!(
        store
            .vectors
            .upsert_many(vec![
                good(),
                ("kb".to_owned(), vec![item("kb-2", &[1.0, 2.0], json!({}))]),
            ])
            .await,
        InvalidInput
    );
    assert_eq!(store.vectors.get("kb").await?, before);
    assert_eq!(store.vectors.collections().await?, ["kb"]);
    Ok(())
}

/// `optimize_many` prepares several collections at once (a missing one has nothing to
/// prepare) and searches answer as before; a bad collection name is `InvalidInput`.
pub async fn optimize_many_keeps_searches_exact(store: &Store) -> Result<()> {
    store.vectors.insert("kb", axis_items()).await?;
    store
        .vectors
        .insert("file-1", vec![item("o", &[1.0, 2.0], json!({}))])
        .await?;
    let queries = vec![vec![1.0, 0.2, 0.0]];
    let before = store.vectors.search("kb", &queries, None, 3).await?;
    let names = ["kb", "missing", "file-1"].map(str::to_owned);
    store.vectors.optimize_many(&names).await?;
    let after = store.vectors.search("kb", &queries, None, 3).await?;
    assert_hits(&after[0], &before[0]);
    assert_eq!(store.vectors.get("file-1").await?.len(), 1);
    assert_kind!(
        store
            .vectors
            .optimize_many(&["kb".to_owned(), String::new()])
            .await,
        InvalidInput
    );
    Ok(())
}

/// A vector whose dimension differs from its collection's is `InvalidInput`, in writes and
/// searches.
pub async fn a_wrong_dimension_is_refused(store: &Store) -> Result<()> {
    store.vectors.insert("kb", axis_items()).await?;
    assert_kind!(
        store
            .vectors
            .insert("kb", vec![item("four", &[1.0, 2.0, 3.0, 4.0], json!({}))])
            .await,
        InvalidInput
    );
    assert_kind!(
        store
            .vectors
            .upsert("kb", vec![item("two", &[1.0, 2.0], json!({}))])
            .await,
        InvalidInput
    );
    assert_kind!(
        store.vectors.search("kb", &[vec![1.0, 0.0]], None, 1).await,
        InvalidInput
    );
    let mixed = vec![
        item("a", &[1.0, 0.0], json!({})),
        item("b", &[1.0, 0.0, 0.0], json!({})),
    ];
    assert_kind!(store.vectors.insert("fresh", mixed).await, InvalidInput);
    assert!(!store.vectors.has_collection("fresh").await?);
    assert_eq!(store.vectors.get("kb").await?.len(), 4);
    Ok(())
}

/// Empty, zero or non-finite vectors, malformed filters, bad limits and empty names are
/// `InvalidInput` and change nothing.
pub async fn bad_vectors_filters_and_limits_are_refused(store: &Store) -> Result<()> {
    for bad in [vec![], vec![0.0, 0.0], vec![1.0, f32::NAN]] {
        assert_kind!(
            store
                .vectors
                .insert("kb", vec![item("a", &bad, json!({}))])
                .await,
            InvalidInput
        );
    }
    assert_kind!(
        store
            .vectors
            .insert("kb", vec![item("", &[1.0], json!({}))])
            .await,
        InvalidInput
    );
    assert_kind!(
        store
            .vectors
            .insert("", vec![item("a", &[1.0], json!({}))])
            .await,
        InvalidInput
    );
    let twice = vec![item("a", &[1.0], json!({})), item("a", &[2.0], json!({}))];
    assert_kind!(store.vectors.insert("kb", twice).await, InvalidInput);
    assert!(store.vectors.collections().await?.is_empty());
    store.vectors.insert("kb", axis_items()).await?;
    assert_kind!(store.vectors.search("kb", &[], None, 1).await, InvalidInput);
    assert_kind!(
        store
            .vectors
            .search("kb", &[vec![1.0, 0.0, 0.0]], None, 0)
            .await,
        InvalidInput
    );
    for bad in [
        json!({"a": {"$gt": 1}}),
        json!({"a": {"$in": []}}),
        json!({"a": null}),
        json!("x"),
        json!({"a": [1]}),
    ] {
        assert_kind!(VectorFilter::from_json(&bad), InvalidInput);
    }
    let sneaky = VectorFilter::eq("a", json!({"nested": true}));
    assert_kind!(
        store
            .vectors
            .search("kb", &[vec![1.0, 0.0, 0.0]], Some(&sneaky), 1)
            .await,
        InvalidInput
    );
    assert_kind!(store.vectors.query("kb", &sneaky, None).await, InvalidInput);
    assert_eq!(store.vectors.get("kb").await?.len(), 4);
    Ok(())
}

/// `query` returns the items matching a filter, by id, at most `limit`.
pub async fn query_filters_without_a_vector(store: &Store) -> Result<()> {
    store.vectors.insert("kb", axis_items()).await?;
    let f = VectorFilter::eq("file_id", "f1");
    assert_eq!(ids(&store.vectors.query("kb", &f, None).await?), ["x", "y"]);
    assert_eq!(ids(&store.vectors.query("kb", &f, Some(1)).await?), ["x"]);
    let all = store
        .vectors
        .query("kb", &VectorFilter::default(), None)
        .await?;
    assert_eq!(all.len(), 4);
    Ok(())
}

/// `delete` removes items by ids, by filter, or by both at once, inside one collection only.
pub async fn delete_by_ids_and_by_filter(store: &Store) -> Result<()> {
    store.vectors.insert("kb", axis_items()).await?;
    store
        .vectors
        .insert(
            "other",
            vec![item("o", &[1.0, 0.0, 0.0], json!({"file_id": "f1"}))],
        )
        .await?;
    assert_eq!(
        store
            .vectors
            .delete("kb", Some(&["x".into(), "o".into()]), None)
            .await?,
        1
    );
    let f = VectorFilter::eq("file_id", "f2");
    assert_eq!(store.vectors.delete("kb", None, Some(&f)).await?, 2);
    assert_eq!(ids(&store.vectors.get("kb").await?), ["y"]);
    let f1 = VectorFilter::eq("file_id", "f1");
    assert_eq!(
        store
            .vectors
            .delete("kb", Some(&["z".into()]), Some(&f1))
            .await?,
        0
    );
    assert_eq!(ids(&store.vectors.get("other").await?), ["o"]);
    Ok(())
}

/// `delete_collection` empties one collection; `reset` empties all.
pub async fn delete_collection_and_reset(store: &Store) -> Result<()> {
    store.vectors.insert("kb", axis_items()).await?;
    store
        .vectors
        .insert("other", vec![item("o", &[1.0], json!({}))])
        .await?;
    store.vectors.delete_collection("kb").await?;
    assert!(!store.vectors.has_collection("kb").await?);
    assert!(store.vectors.has_collection("other").await?);
    store.vectors.delete_collection("never-existed").await?;
    store.vectors.reset().await?;
    assert!(store.vectors.collections().await?.is_empty());
    Ok(())
}

/// `collections` lists the names of collections that have items, sorted; `collection_names`
/// lists them too (sorted, perhaps with emptied ones besides), and an emptied one scans empty.
pub async fn collections_are_listed(store: &Store) -> Result<()> {
    store
        .vectors
        .insert("b-kb", vec![item("1", &[1.0, 1.0], json!({}))])
        .await?;
    store
        .vectors
        .insert("a-kb", vec![item("2", &[1.0, 1.0, 1.0], json!({}))])
        .await?;
    store
        .vectors
        .insert("c-kb", vec![item("3", &[1.0, 1.0], json!({}))])
        .await?;
    store
        .vectors
        .delete("c-kb", Some(&["3".to_owned()]), None)
        .await?;
    assert_eq!(store.vectors.collections().await?, ["a-kb", "b-kb"]);
    let names = store.vectors.collection_names().await?;
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "collection_names is sorted");
    let rest: Vec<&String> = names.iter().filter(|n| *n != "c-kb").collect();
    assert_eq!(rest, ["a-kb", "b-kb"]);
    assert!(store.vectors.scan("c-kb", None, 10).await?.is_empty());
    Ok(())
}

/// A collection holding a small share of all items still gets its true nearest neighbours,
/// with and without a metadata filter.
pub async fn filtered_search_is_exact_in_a_small_share(store: &Store) -> Result<()> {
    let dim = 16;
    let big: Vec<VectorItem> = (0..600u64)
        .map(|i| {
            item(
                &format!("big-{i:04}"),
                &pseudo_random_vector(i, dim),
                json!({"file_id": format!("f{}", i % 7)}),
            )
        })
        .collect();
    for chunk in big.chunks(200) {
        store.vectors.insert("big", chunk.to_vec()).await?;
    }
    let small: Vec<VectorItem> = (0..12u64)
        .map(|i| {
            item(
                &format!("small-{i:02}"),
                &pseudo_random_vector(10_000 + i, dim),
                json!({"file_id": format!("f{}", i % 3)}),
            )
        })
        .collect();
    store.vectors.insert("small", small.clone()).await?;
    let refs: Vec<&VectorItem> = small.iter().collect();
    let filter = VectorFilter::eq("file_id", "f1");
    for q in 0..5u64 {
        let query = pseudo_random_vector(50_000 + q, dim);
        let hits = store
            .vectors
            .search("small", std::slice::from_ref(&query), None, 5)
            .await?;
        assert_hits(&hits[0], &exact_search(&refs, &query, None, 5));
        let hits = store
            .vectors
            .search("small", std::slice::from_ref(&query), Some(&filter), 5)
            .await?;
        assert_hits(&hits[0], &exact_search(&refs, &query, Some(&filter), 5));
        assert_eq!(hits[0].len(), 4);
    }
    Ok(())
}

/// `delete` without ids or a filter is `InvalidInput` (use `delete_collection`).
pub async fn delete_needs_ids_or_a_filter(store: &Store) -> Result<()> {
    store.vectors.insert("kb", axis_items()).await?;
    assert_kind!(store.vectors.delete("kb", None, None).await, InvalidInput);
    assert_eq!(store.vectors.get("kb").await?.len(), 4);
    Ok(())
}

/// A keyset scan walks one collection by id in byte order, page by page, with whole items;
/// only the last page is short; other collections' items never appear, and a missing
/// collection gives an empty page.
pub async fn vector_scan_walks_a_collection_by_id(store: &Store) -> Result<()> {
    let mut kb = axis_items();
    kb.push(item("B", &[0.5, 0.5, 0.5], json!({"file_id": "f3"})));
    store.vectors.insert("kb", kb).await?;
    store
        .vectors
        .insert("other", vec![item("xa", &[1.0, 2.0], json!({}))])
        .await?;
    let first = store.vectors.scan("kb", None, 2).await?;
    assert_eq!(ids(&first), ["B", "x"]);
    assert_eq!(first[1].vector, vec![1.0, 0.0, 0.0]);
    assert_eq!(first[1].text, "text of x");
    assert_eq!(first[1].metadata["page"], 1);
    assert_eq!(
        ids(&store.vectors.scan("kb", Some("x"), 2).await?),
        ["xy", "y"]
    );
    assert_eq!(ids(&store.vectors.scan("kb", Some("y"), 2).await?), ["z"]);
    assert!(store.vectors.scan("kb", Some("z"), 2).await?.is_empty());
    // A page is cut short only at the collection's end (a walk may stop at the first short
    // page), also when an item it would have held was deleted during the walk.
    store
        .vectors
        .delete("kb", Some(&["xy".to_owned()]), None)
        .await?;
    assert_eq!(
        ids(&store.vectors.scan("kb", Some("x"), 2).await?),
        ["y", "z"]
    );
    assert_eq!(ids(&store.vectors.scan("other", None, 10).await?), ["xa"]);
    assert!(store.vectors.scan("missing", None, 10).await?.is_empty());
    assert_kind!(store.vectors.scan("kb", None, 0).await, InvalidInput);
    store.vectors.optimize("kb").await?;
    assert_eq!(store.vectors.scan("kb", None, 10).await?.len(), 4);
    Ok(())
}
