//! Times small and large `COPY ... FROM STDIN` transactions on one connection, to check that
//! a TCP connection adds no wait to a COPY. sqlx 0.9.0 left Nagle's algorithm on (no
//! `TCP_NODELAY`), so the small `CopyDone` after the data waited for the server's delayed ACK
//! (about 40 ms on Linux) whenever the data's last segment was still unacknowledged; 0.9.1
//! sets `TCP_NODELAY`, and the workspace requires it.
//!
//! ```sh
//! eval "$(scripts/services.sh start)"
//! cargo run -p chatstore-pgvector --example copy_stall                  # TCP
//! CHATSTORE_TEST_POSTGRES_URL="postgres://postgres@localhost:PORT/chatstore?host=SOCKET_DIR" \
//!     cargo run -p chatstore-pgvector --example copy_stall              # Unix socket
//! ```

use std::time::Instant;

use sqlx::Connection;

const ROUNDS: usize = 15;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("CHATSTORE_TEST_POSTGRES_URL")?;
    let mut conn = sqlx::PgConnection::connect(&url).await?;
    sqlx::query("CREATE TEMP TABLE copy_stall (s text)")
        .execute(&mut conn)
        .await?;
    let line = "x".repeat(99) + "\n";
    for size in [1_000usize, 10_000, 100_000, 1_000_000] {
        let data = line.repeat(size / line.len());
        let mut ms = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            let started = Instant::now();
            let mut tx = conn.begin().await?;
            let mut copy = tx.copy_in_raw("COPY copy_stall (s) FROM STDIN").await?;
            copy.send(data.as_bytes()).await?;
            copy.finish().await?;
            tx.commit().await?;
            ms.push(started.elapsed().as_secs_f64() * 1e3);
        }
        ms.sort_by(f64::total_cmp);
        println!(
            "{size:>9} bytes per COPY: median {:.2} ms, fastest {:.2} ms, slowest {:.2} ms",
            ms[ROUNDS / 2],
            ms[0],
            ms[ROUNDS - 1]
        );
    }
    Ok(())
}
