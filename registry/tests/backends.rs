//! Opening every real backend through the registry: the servers come from the environment
//! (`CHATSTORE_TEST_POSTGRES_URL`, `CHATSTORE_TEST_POCKETBASE_URL` and its superuser;
//! `scripts/services.sh start` sets them). Unset locally: skipped loudly; unset under CI: failed.

use chatstore_contract::require_env;
use chatstore_core::{ErrorKind, NewUser, Store, VectorItem};
use chatstore_registry::{OpenOptions, open};

/// A new, empty database on the test PostgreSQL server; its URL.
async fn postgres_database() -> Option<String> {
    let server = require_env("CHATSTORE_TEST_POSTGRES_URL")?;
    Some(chatstore_testkit::fresh_postgres_database(&server).await)
}

/// The test PocketBase server as `pocketbase://EMAIL:PASSWORD@HOST:PORT?prefix=...` with a
/// fresh collection prefix, and its password.
fn pocketbase_url() -> Option<(String, String)> {
    let base = require_env("CHATSTORE_TEST_POCKETBASE_URL")?;
    let email = std::env::var("CHATSTORE_TEST_POCKETBASE_ADMIN_EMAIL").expect("email set");
    let password = std::env::var("CHATSTORE_TEST_POCKETBASE_ADMIN_PASSWORD").expect("password set");
    let host = base.trim_start_matches("http://").trim_end_matches('/');
    let enc = |s: &str| {
        s.replace('%', "%25")
            .replace('@', "%40")
            .replace(':', "%3A")
    };
    let prefix = format!("r{}_", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let url = format!(
        "pocketbase://{}:{}@{host}?prefix={prefix}",
        enc(&email),
        enc(&password)
    );
    Some((url, password))
}

/// A user goes in and comes back out.
async fn round_trip(store: &Store) {
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    let user = store
        .users
        .create(NewUser::new(&email, "Ada"))
        .await
        .expect("create a user");
    assert_eq!(
        store
            .users
            .get_by_email(&email)
            .await
            .expect("read back")
            .id,
        user.id
    );
}

/// A row of Open WebUI's other tables goes in and comes back out.
async fn rows_work(store: &Store) {
    use chatstore_core::rows::tables::NOTE;
    use chatstore_core::rows::{Cond, RowQuery, row};
    let rows = store.rows().expect("this store has rows");
    let note = row([
        ("id", serde_json::json!("n1")),
        ("title", serde_json::json!("Notes")),
    ]);
    rows.write(vec![chatstore_core::RowOp::Insert {
        table: &NOTE,
        row: note,
    }])
    .await
    .expect("insert a note");
    let found = rows
        .select(&NOTE, &RowQuery::filter(vec![Cond::Eq("id", "n1".into())]))
        .await
        .expect("select it");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["title"], "Notes");
}

/// Vectors go in and are found.
async fn vectors_work(store: &Store) {
    let item = VectorItem {
        id: "v1".into(),
        text: "text".into(),
        vector: vec![1.0, 0.0, 0.0],
        metadata: Default::default(),
    };
    store
        .vectors
        .upsert("registry-test", vec![item])
        .await
        .expect("upsert a vector");
    assert!(
        store
            .vectors
            .has_collection("registry-test")
            .await
            .expect("has")
    );
}

/// A SQLite file opens with its vectors in the same file.
#[tokio::test]
async fn a_sqlite_file_opens_with_its_own_vectors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("webui.db").display());
    let store = open(&url).await.expect("open SQLite");
    assert_eq!(store.backend_name(), "sqlite");
    round_trip(&store).await;
    vectors_work(&store).await;
    rows_work(&store).await;
}

/// Read-only opening never creates a SQLite file, and refuses writes on an existing one.
#[tokio::test]
async fn read_only_opening_creates_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("webui.db").display());
    let err = OpenOptions::new(&url)
        .read_only(true)
        .open()
        .await
        .expect_err("no file yet");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(!dir.path().join("webui.db").exists());
    drop(open(&url).await.expect("create it"));
    let store = OpenOptions::new(&url)
        .read_only(true)
        .open()
        .await
        .expect("open read-only");
    assert!(
        store
            .users
            .create(NewUser::new("a@b.c", "A"))
            .await
            .is_err()
    );
}

/// PostgreSQL opens with pgvector's vectors on the same database.
#[tokio::test]
async fn postgres_opens_with_pgvector_on_the_same_database() {
    let Some(url) = postgres_database().await else {
        return;
    };
    let store = open(&url).await.expect("open PostgreSQL");
    assert_eq!(store.backend_name(), "postgres+pgvector");
    assert!(store.capabilities().vectors);
    round_trip(&store).await;
    vectors_work(&store).await;
    rows_work(&store).await;
}

/// A database without the `vector` extension (and its creation turned off) opens without
/// vectors; a database whose vector table chatstore cannot use is an error, not a database
/// without vectors: opened so, a migration would have found no vectors and verified the copy.
#[tokio::test]
async fn only_a_database_without_pgvector_opens_without_vectors() {
    let Some(server) = require_env("CHATSTORE_TEST_POSTGRES_URL") else {
        return;
    };
    // template1 has the extension on the test server; template0 has nothing.
    let url = chatstore_testkit::fresh_postgres_database_from(&server, "template0").await;
    let no_extension =
        |name: &str| (name == "PGVECTOR_CREATE_EXTENSION").then(|| "false".to_owned());
    let store = OpenOptions::new(&url)
        .with_settings_from(no_extension)
        .expect("settings are read")
        .open()
        .await
        .expect("a database without the extension opens");
    assert_eq!(store.backend_name(), "postgres");
    assert!(!store.capabilities().vectors);
    round_trip(&store).await;
    drop(store);

    let Some(url) = postgres_database().await else {
        return;
    };
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    for statement in [
        "CREATE EXTENSION IF NOT EXISTS vector",
        // Open WebUI's PGVECTOR_PGCRYPTO: text and metadata encrypted as bytea.
        "CREATE TABLE document_chunk (id TEXT PRIMARY KEY, vector vector(4), \
         collection_name TEXT NOT NULL, text BYTEA, vmetadata BYTEA)",
        "INSERT INTO document_chunk VALUES ('v1', '[1,0,0,0]', 'kb', 'secret', 'secret')",
    ] {
        sqlx::query(statement)
            .execute(&pool)
            .await
            .expect(statement);
    }
    pool.close().await;
    let err = open(&url)
        .await
        .expect_err("a vector table chatstore cannot read is an error");
    assert!(err.to_string().contains("PGVECTOR_PGCRYPTO"), "{err}");
}

/// The vector objects on the database at `pool`: pgvector's table and its indexes,
/// chatstore's side table and its collection indexes.
async fn chatstore_objects(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT relname::text FROM pg_class WHERE relname LIKE 'chatstore\\_collection%' \
         OR relname LIKE '%document\\_chunk%' OR relname LIKE 'chatstore\\_hnsw%' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("list relations")
}

/// A read-only opening of PostgreSQL (a migration's source) creates nothing for vectors: a
/// database without pgvector's table opens without vectors, and one with Open WebUI's own
/// table is read as it is, without chatstore's side table or indexes, and refuses writes.
#[tokio::test]
async fn read_only_postgres_creates_nothing_for_vectors() {
    let Some(url) = postgres_database().await else {
        return;
    };
    drop(
        OpenOptions::new(&url)
            .open_sql_database()
            .await
            .expect("Open WebUI's schema"),
    );
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    let before = chatstore_objects(&pool).await;
    let read_only = || async {
        OpenOptions::new(&url)
            .read_only(true)
            .open()
            .await
            .expect("open read-only")
    };
    let store = read_only().await;
    assert!(!store.capabilities().vectors);
    drop(store);
    assert_eq!(chatstore_objects(&pool).await, before);

    for statement in [
        "CREATE EXTENSION IF NOT EXISTS vector",
        "CREATE TABLE document_chunk (id TEXT PRIMARY KEY, vector vector(4), \
         collection_name TEXT NOT NULL, text TEXT, vmetadata JSONB)",
        "INSERT INTO document_chunk VALUES ('v1', '[1,0,0,0]', 'kb', 'hello', \
         '{\"file_id\": \"f1\"}')",
    ] {
        sqlx::query(statement)
            .execute(&pool)
            .await
            .expect(statement);
    }
    let before = chatstore_objects(&pool).await;
    let store = read_only().await;
    assert!(store.capabilities().vectors);
    let items = store.vectors.get("kb").await.expect("read the collection");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].vector, vec![1.0, 0.0, 0.0, 0.0]);
    let hits = store
        .vectors
        .search("kb", &[vec![1.0, 0.0, 0.0, 0.0]], None, 1)
        .await
        .expect("search");
    assert_eq!(hits[0][0].id, "v1");
    let item = VectorItem {
        id: "v2".into(),
        text: "text".into(),
        vector: vec![0.0, 1.0, 0.0, 0.0],
        metadata: Default::default(),
    };
    assert!(store.vectors.upsert("kb", vec![item]).await.is_err());
    drop(store);
    assert_eq!(chatstore_objects(&pool).await, before);
    pool.close().await;
}

/// PocketBase opens with the superuser written (percent-encoded) into the URL.
#[tokio::test]
async fn pocketbase_opens_with_the_superuser_in_the_url() {
    let Some((url, password)) = pocketbase_url() else {
        return;
    };
    let store = OpenOptions::new(&url)
        .throwaway(true)
        .open()
        .await
        .expect("open PocketBase");
    assert_eq!(store.backend_name(), "pocketbase");
    assert!(!store.capabilities().vectors);
    round_trip(&store).await;
    rows_work(&store).await;
    assert!(!format!("{store:?}").contains(&password));
}

/// A wrong PocketBase password fails without showing it.
#[tokio::test]
async fn a_wrong_pocketbase_password_is_not_shown() {
    let Some((url, password)) = pocketbase_url() else {
        return;
    };
    let wrong = url.replace(&password.replace('%', "%25"), "Wr0ng-hunter2");
    let err = open(&wrong).await.expect_err("refused");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("Wr0ng-hunter2"), "{shown}");
}

/// Without a superuser anywhere, PocketBase is InvalidInput naming the variables.
#[tokio::test]
async fn pocketbase_without_a_superuser_names_the_variables() {
    let err = OpenOptions::new("pocketbase://127.0.0.1:9")
        .open()
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("CHATSTORE_POCKETBASE_ADMIN_EMAIL"));
}

/// A vector URL takes the vectors from another backend: PocketBase with pgvector.
#[tokio::test]
async fn a_vector_url_puts_pgvector_under_pocketbase() {
    let (Some((url, _)), Some(vectors)) = (pocketbase_url(), postgres_database().await) else {
        return;
    };
    let store = OpenOptions::new(&url)
        .vectors_url(&vectors)
        .throwaway(true)
        .open()
        .await
        .expect("open PocketBase + pgvector");
    assert_eq!(store.backend_name(), "pocketbase+pgvector");
    assert!(store.capabilities().vectors);
    round_trip(&store).await;
    vectors_work(&store).await;
}

/// Open WebUI's pgvector settings reach the store the registry opens: a new table takes the
/// configured dimension and `halfvec`, and a setting that does not parse is refused by name
/// before anything is created.
#[tokio::test]
async fn pgvector_settings_shape_a_new_table() {
    let Some(url) = postgres_database().await else {
        return;
    };
    let settings = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    let err = OpenOptions::new(&url)
        .with_settings_from(settings(&[("CHATSTORE_PGVECTOR_AUTO_INDEX", "maybe")]))
        .expect("settings are read")
        .open()
        .await
        .expect_err("a bad setting is refused");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(
        err.to_string().contains("CHATSTORE_PGVECTOR_AUTO_INDEX"),
        "{err}"
    );
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    let tables: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            .fetch_one(&pool)
            .await
            .expect("count tables");
    assert_eq!(
        tables, 0,
        "nothing is created before a bad setting is refused"
    );
    let store = OpenOptions::new(&url)
        .with_settings_from(settings(&[
            ("PGVECTOR_INITIALIZE_MAX_VECTOR_LENGTH", "384"),
            ("PGVECTOR_USE_HALFVEC", "true"),
        ]))
        .expect("settings are read")
        .open()
        .await
        .expect("open PostgreSQL");
    vectors_work(&store).await;
    let column: String = sqlx::query_scalar(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
         WHERE attrelid = 'document_chunk'::regclass AND attname = 'vector'",
    )
    .fetch_one(&pool)
    .await
    .expect("the vector column");
    assert_eq!(column, "halfvec(384)");
    // Its vectors read back rounded, and the store says so (verify and shadow reads compare
    // them within half precision).
    let capabilities = store.capabilities();
    assert!(capabilities.half_vectors && !capabilities.exact_vectors);
    let vectors = OpenOptions::new("memory")
        .vectors_url(&url)
        .open()
        .await
        .expect("open the vectors alone");
    assert!(
        vectors.capabilities().half_vectors,
        "an existing halfvec column"
    );
    pool.close().await;
}

/// A vector URL that names PocketBase is refused before anything is opened.
#[tokio::test]
async fn pocketbase_cannot_be_a_vector_store() {
    let err = OpenOptions::new("memory")
        .vectors_url("pocketbase://a:hunter2@h:1")
        .open()
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(!err.to_string().contains("hunter2"));
}

/// A server that does not answer is Unavailable, and the password is not in the message.
#[tokio::test]
async fn an_unreachable_postgres_is_unavailable_without_its_password() {
    let err = open("postgres://owui:hunter2@127.0.0.1:9/webui")
        .await
        .expect_err("nothing listens on port 9");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(!format!("{err} {err:?}").contains("hunter2"));
}

/// Read-only opening of PocketBase checks the schema and creates nothing: a prefix without
/// collections is InvalidInput, one with them opens and reads.
#[tokio::test]
async fn read_only_pocketbase_creates_nothing() {
    let Some((url, _)) = pocketbase_url() else {
        return;
    };
    let err = OpenOptions::new(&url)
        .read_only(true)
        .open()
        .await
        .expect_err("no collections under this prefix yet");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let writer = OpenOptions::new(&url)
        .throwaway(true)
        .open()
        .await
        .expect("create the collections");
    round_trip(&writer).await;
    let reader = OpenOptions::new(&url)
        .read_only(true)
        .open()
        .await
        .expect("open read-only");
    let users = reader
        .users
        .list(chatstore_core::PageRequest::default())
        .await
        .expect("read");
    assert_eq!(users.items.len(), 1);
}

/// `metrics(true)` puts the metrics layer on the opened store (the contract is unchanged).
#[tokio::test]
async fn metrics_can_be_switched_on_when_opening() {
    let store = OpenOptions::new("sqlite::memory:")
        .metrics(true)
        .open()
        .await
        .expect("open");
    assert_eq!(store.backend_name(), "sqlite");
    round_trip(&store).await;
}
