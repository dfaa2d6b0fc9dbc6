//! The layers every store can wear: validation refuses bad input before a backend is touched,
//! and the metrics layer records calls, errors by kind and latencies with the right labels.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chatstore_core::layers::metrics::{CALLS, DURATION, ERRORS, Metrics};
use chatstore_core::vectors::VectorItem;
use chatstore_core::{
    ChatQuery, ErrorKind, FileQuery, NewChat, NewMessage, NewUser, PageRequest, Store, memory,
};
use metrics::{
    Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

/// Every counter total and histogram sample, keyed by name and sorted labels.
#[derive(Default)]
struct Recorded {
    counters: Mutex<BTreeMap<String, u64>>,
    histograms: Mutex<BTreeMap<String, Vec<f64>>>,
}

/// A recorder keeping everything in memory, for one test thread.
#[derive(Default, Clone)]
struct TestRecorder(Arc<Recorded>);

/// `name{k=v,...}` with the labels sorted.
fn key_text(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

struct CounterCell(Arc<Recorded>, String);

impl CounterFn for CounterCell {
    fn increment(&self, value: u64) {
        if let Ok(mut c) = self.0.counters.lock() {
            *c.entry(self.1.clone()).or_default() += value;
        }
    }
    fn absolute(&self, value: u64) {
        if let Ok(mut c) = self.0.counters.lock() {
            c.insert(self.1.clone(), value);
        }
    }
}

struct HistogramCell(Arc<Recorded>, String);

impl HistogramFn for HistogramCell {
    fn record(&self, value: f64) {
        if let Ok(mut h) = self.0.histograms.lock() {
            h.entry(self.1.clone()).or_default().push(value);
        }
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::new(CounterCell(self.0.clone(), key_text(key))))
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(HistogramCell(self.0.clone(), key_text(key))))
    }
}

impl TestRecorder {
    fn counter(&self, name: &str, labels: &str) -> u64 {
        let key = format!("{name}{{{labels}}}");
        self.0
            .counters
            .lock()
            .expect("counters")
            .get(&key)
            .copied()
            .unwrap_or(0)
    }

    fn samples(&self, name: &str, labels: &str) -> usize {
        let key = format!("{name}{{{labels}}}");
        self.0
            .histograms
            .lock()
            .expect("histograms")
            .get(&key)
            .map_or(0, Vec::len)
    }

    fn total_calls(&self) -> u64 {
        self.0
            .counters
            .lock()
            .expect("counters")
            .iter()
            .filter(|(k, _)| k.starts_with(CALLS))
            .map(|(_, v)| v)
            .sum()
    }
}

/// Runs `test` on a current-thread runtime with `recorder` installed for this thread only.
fn with_recorder<F: std::future::Future<Output = ()>>(recorder: &TestRecorder, test: F) {
    metrics::with_local_recorder(recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(test)
    });
}

fn metered() -> Store {
    memory::store().with_layer(&Metrics::new())
}

/// Calls that reach the backend are counted and timed, labelled by backend, group and
/// operation; a failure counts again under its error kind.
#[test]
fn calls_errors_and_latencies_are_recorded_per_backend_group_and_operation() {
    let recorder = TestRecorder::default();
    with_recorder(&recorder, async {
        let store = metered();
        let user = store
            .users
            .create(NewUser::new("ada@example.com", "Ada"))
            .await
            .expect("create");
        store
            .chats
            .create(NewChat::new(&user.id, "Engines"))
            .await
            .expect("chat");
        let missing = store.chats.get("no-such-chat").await.expect_err("missing");
        assert_eq!(missing.kind(), ErrorKind::NotFound);
        store
            .chats
            .list(&ChatQuery::for_user(&user.id))
            .await
            .expect("list");
    });
    let users = "backend=memory,group=users,operation=users.create";
    assert_eq!(recorder.counter(CALLS, users), 1);
    assert_eq!(recorder.samples(DURATION, users), 1);
    let get = "backend=memory,group=chats,operation=chats.get";
    assert_eq!(recorder.counter(CALLS, get), 1);
    assert_eq!(
        recorder.counter(
            ERRORS,
            "backend=memory,group=chats,kind=NotFound,operation=chats.get"
        ),
        1
    );
    assert_eq!(
        recorder.counter(CALLS, "backend=memory,group=chats,operation=chats.list"),
        1
    );
    assert_eq!(recorder.total_calls(), 4);
}

/// A store labelled on purpose (a router's old and new sides) reports that name.
#[test]
fn the_backend_label_can_be_chosen() {
    let recorder = TestRecorder::default();
    with_recorder(&recorder, async {
        let store = memory::store().with_layer(&Metrics::with_backend("old"));
        store
            .users
            .list(PageRequest::default())
            .await
            .expect("list");
    });
    assert_eq!(
        recorder.counter(CALLS, "backend=old,group=users,operation=users.list"),
        1
    );
}

/// Bad input is refused by the validation layer every store has: the backend (here behind
/// the metrics layer, which counts every call that reaches it) is never called.
#[test]
fn validation_refuses_before_the_backend_is_touched() {
    let recorder = TestRecorder::default();
    with_recorder(&recorder, async {
        let store = metered();
        let user = store
            .users
            .create(NewUser::new("ada@example.com", "Ada"))
            .await
            .expect("create");
        let chat = store
            .chats
            .create(NewChat::new(&user.id, "Engines"))
            .await
            .expect("chat");
        let before = recorder.total_calls();
        let refused = [
            store
                .chats
                .set_tags(&chat.id, &["ok".into(), " ".into()])
                .await
                .map(drop),
            store.chats.add_tag(&chat.id, "none").await.map(drop),
            store.chats.remove_tag(&chat.id, "").await.map(drop),
            store
                .chats
                .list(&ChatQuery::for_user(&user.id).with_tags(["work", ""]))
                .await
                .map(drop),
            store.tags.ensure("a/b", "work").await.map(drop),
            store.tags.list("").await.map(drop),
            store
                .messages
                .upsert_many(
                    &chat.id,
                    vec![NewMessage::text("another-chat", "m1", "user", "hi")],
                )
                .await
                .map(drop),
            store
                .messages
                .upsert(NewMessage::text(&chat.id, "m1", "wizard", "hi"))
                .await
                .map(drop),
            store
                .files
                .list(&FileQuery {
                    user_id: Some("a b".into()),
                    page: PageRequest::default(),
                })
                .await
                .map(drop),
            store.users.list(PageRequest::first(0)).await.map(drop),
            store.users.scan(None, 0).await.map(drop),
            store
                .vectors
                .search("kb", &[vec![0.0, 0.0]], None, 3)
                .await
                .map(drop),
            store
                .vectors
                .insert(
                    "kb",
                    vec![VectorItem {
                        id: "v1".into(),
                        text: "t".into(),
                        vector: vec![f32::NAN],
                        metadata: Default::default(),
                    }],
                )
                .await
                .map(drop),
            store.vectors.delete("kb", None, None).await.map(drop),
            store.vectors.get("").await.map(drop),
        ];
        for (i, result) in refused.into_iter().enumerate() {
            let err = result.expect_err("refused");
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "case {i}: {err}");
        }
        assert_eq!(
            recorder.total_calls(),
            before,
            "no refused call reached the backend"
        );
        // Nothing changed: the chat has no tags and no messages.
        assert!(
            store
                .chats
                .get(&chat.id)
                .await
                .expect("get")
                .tags
                .is_empty()
        );
        assert!(
            store
                .messages
                .list(&chat.id)
                .await
                .expect("list")
                .is_empty()
        );
    });
}

/// The memory reference model itself is behind the same validation.
#[tokio::test]
async fn the_memory_model_validates_like_every_store() {
    let store = memory::store();
    let err = store.tags.list("").await.expect_err("empty user id");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = store
        .chats
        .delete_for_user("a/b")
        .await
        .expect_err("bad user id");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}
