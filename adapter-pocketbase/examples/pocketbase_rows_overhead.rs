//! What the row store costs over the HTTP request it sends: list-by-user and get-by-id on
//! `note` rows through `store.rows()` against a raw reqwest baseline sending the same request
//! (same filter, sort, page and `skipTotal`) and parsing the same JSON. Prints p50s and the
//! ratio (target: within 1.15x). Quick and noisy: a shared machine, a few hundred calls.
//!
//! ```sh
//! eval "$(scripts/services.sh start)"
//! cargo run -p chatstore-pocketbase --example pocketbase_rows_overhead  # debug build
//! cargo run --release -p chatstore-pocketbase --example pocketbase_rows_overhead  # release
//! ```

use std::time::{Duration, Instant};

use chatstore_core::rows::tables::NOTE;
use chatstore_core::rows::{Cond, Dir, RowOp, RowQuery, row};
use chatstore_pocketbase::{PocketBase, PocketBaseConfig};
use serde_json::{Value, json};

const USERS: usize = 20;
const NOTES: usize = 2000;
const CALLS: usize = 300;

fn p50(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let var = |name: &str| {
        std::env::var(name).map_err(|_| format!("{name} is not set: run scripts/services.sh start"))
    };
    let (url, email, password) = (
        var("CHATSTORE_TEST_POCKETBASE_URL")?,
        var("CHATSTORE_TEST_POCKETBASE_ADMIN_EMAIL")?,
        var("CHATSTORE_TEST_POCKETBASE_ADMIN_PASSWORD")?,
    );
    let prefix = format!("bench{}_", std::process::id());
    let pb = PocketBase::connect(
        PocketBaseConfig::new(&url, &email, &password)
            .with_prefix(&prefix)
            .dropping_collections_on_drop(),
    )
    .await?;
    let rows = pb.store().rows()?;
    let notes: Vec<RowOp> = (0..NOTES)
        .map(|i| RowOp::Insert {
            table: &NOTE,
            row: row([
                (
                    "id",
                    json!(format!(
                        "{:08x}-note-{i}",
                        i * 2_654_435_761 % 4_294_967_291
                    )),
                ),
                ("user_id", json!(format!("user-{}", i % USERS))),
                ("title", json!(format!("Note {i}"))),
                ("data", json!({"content": {"md": "x".repeat(200)}})),
                ("meta", Value::Null),
                (
                    "created_at",
                    json!(1_764_000_000_123_456_789_i64 + i as i64),
                ),
                (
                    "updated_at",
                    json!(1_764_000_000_123_456_789_i64 + (i * 7 % 1000) as i64),
                ),
            ]),
        })
        .collect();
    for chunk in notes.chunks(1000) {
        rows.write(chunk.to_vec()).await?;
    }
    let ids: Vec<String> = rows
        .select(&NOTE, &RowQuery::default().page(0, Some(CALLS as u64)))
        .await?
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_owned))
        .collect();

    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!(
            "{url}/api/collections/_superusers/auth-with-password"
        ))
        .json(&json!({"identity": email, "password": password}))
        .send()
        .await?
        .json()
        .await?;
    let token = token["token"].as_str().unwrap_or_default().to_owned();
    let records = format!("{url}/api/collections/{prefix}owui_rows_note/records");
    let raw = |query: Vec<(&'static str, String)>| {
        let request = http
            .get(&records)
            .header("Authorization", &token)
            .query(&query);
        async move {
            let body: Value = request.send().await?.error_for_status()?.json().await?;
            Ok::<usize, reqwest::Error>(body["items"].as_array().map_or(0, Vec::len))
        }
    };

    let (mut list_adapter, mut list_raw, mut get_adapter, mut get_raw) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..CALLS {
        let user = format!("user-{}", i % USERS);
        let id = &ids[i % ids.len()];
        // Adapter and raw take turns going first, so neither always finds a warmer server.
        for pass in 0..2 {
            if (i + pass) % 2 == 0 {
                let q = RowQuery::filter(vec![Cond::Eq("user_id", json!(user))])
                    .order_by("updated_at", Dir::Desc)
                    .page(0, Some(30));
                let t = Instant::now();
                let got = rows.select(&NOTE, &q).await?;
                list_adapter.push(t.elapsed());
                assert_eq!(got.len(), 30);
                let q = RowQuery::filter(vec![Cond::Eq("id", json!(id))]).page(0, Some(1));
                let t = Instant::now();
                let got = rows.select(&NOTE, &q).await?;
                get_adapter.push(t.elapsed());
                assert_eq!(got.len(), 1);
            } else {
                let t = Instant::now();
                let n = raw(vec![
                    ("page", "1".into()),
                    ("perPage", "30".into()),
                    ("filter", format!("user_id = \"{user}\"")),
                    ("sort", "-updated_at,owui_id".into()),
                    ("skipTotal", "1".into()),
                ])
                .await?;
                list_raw.push(t.elapsed());
                assert_eq!(n, 30);
                let t = Instant::now();
                let n = raw(vec![
                    ("page", "1".into()),
                    ("perPage", "1".into()),
                    ("filter", format!("owui_id = \"{id}\"")),
                    ("sort", "owui_id".into()),
                    ("skipTotal", "1".into()),
                ])
                .await?;
                get_raw.push(t.elapsed());
                assert_eq!(n, 1);
            }
        }
    }
    for (name, adapter, raw) in [
        ("list notes by user (30)", list_adapter, list_raw),
        ("get note by id", get_adapter, get_raw),
    ] {
        let (a, r) = (p50(adapter), p50(raw));
        println!(
            "{name:<24} adapter {a:>10.2?}  raw {r:>10.2?}  ratio {:.2}",
            a.as_secs_f64() / r.as_secs_f64()
        );
    }
    drop(rows);
    drop(pb);
    Ok(())
}
