//! sqlx errors -> [`chatstore_core::Error`], mapped once at the adapter's edge.

use chatstore_core::Error;
use chatstore_core::sqlstate::{PgFailure, pg_error};

/// Maps a sqlx error to chatstore's error kinds through core's one PostgreSQL classification
/// ([`chatstore_core::sqlstate`], shared with the SQL adapter), keeping the source. `what` says
/// what was being done ("inserting vectors"); it leads the message.
pub(crate) fn map(what: &str, err: sqlx::Error) -> Error {
    let code = match &err {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    };
    let failure = match &err {
        sqlx::Error::Database(_) => code
            .as_deref()
            .map_or(PgFailure::Other, PgFailure::Sqlstate),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => PgFailure::Connection,
        sqlx::Error::PoolTimedOut => PgFailure::PoolTimedOut,
        sqlx::Error::PoolClosed => PgFailure::PoolClosed,
        _ => PgFailure::Other,
    };
    let message = match &err {
        sqlx::Error::Database(db) => format!(
            "{what}: {} (SQLSTATE {})",
            db.message(),
            code.as_deref().unwrap_or("?")
        ),
        e => format!("{what}: {e}"),
    };
    pg_error(&failure, "vector", message, err)
}

/// The source of the error [`crate::PgVectorStore::connect`] answers when the database has no
/// `vector` extension and chatstore cannot make it (not installed on the server, creation
/// disabled, or refused for want of rights): a database without vectors, not a failure of one
/// with them. [`is_missing_extension`] tells it from every other error.
#[derive(Debug, thiserror::Error)]
#[error("the database has no `vector` extension")]
struct MissingExtension(#[source] Option<sqlx::Error>);

/// An [`Error::Backend`] saying `message`, marked as a database without the extension.
pub(crate) fn missing_extension(message: &str, cause: Option<sqlx::Error>) -> Error {
    Error::backend(message, MissingExtension(cause))
}

/// Whether `err` says that the database has no `vector` extension (and chatstore could not
/// create it), so that a caller may open the database without vectors; any other error (a
/// refused setting, an encrypted table, a pool that does not fit, a lost connection) is not.
pub fn is_missing_extension(err: &Error) -> bool {
    std::error::Error::source(err).is_some_and(|s| s.is::<MissingExtension>())
}

/// Whether PostgreSQL aborted the transaction `err` ended to break a deadlock (`40P01`) or a
/// serialization conflict (`40001`): it rolled back whole, so it may run again from the start.
pub(crate) fn is_conflict(err: &Error) -> bool {
    let code = std::error::Error::source(err)
        .and_then(|s| s.downcast_ref::<sqlx::Error>())
        .and_then(|e| match e {
            sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
            _ => None,
        });
    matches!(code.as_deref(), Some("40P01" | "40001"))
}

/// Runs the transaction `run` makes, and runs it again when PostgreSQL aborted it to break a
/// conflict ([`is_conflict`]): up to three more times, after 20 ms and then longer (with
/// jitter, so two writers that deadlocked do not meet again in step). `what` names it in the
/// log.
pub(crate) async fn retrying_conflicts<T, F, Fut>(what: &'static str, run: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    use backon::Retryable;
    let backoff = backon::ExponentialBuilder::default()
        .with_min_delay(std::time::Duration::from_millis(20))
        .with_max_delay(std::time::Duration::from_millis(500))
        .with_max_times(3)
        .with_jitter();
    run.retry(backoff)
        .when(is_conflict)
        .notify(|err, wait| {
            tracing::warn!(error = %err, ?wait, "{what}: PostgreSQL aborted the transaction to break a conflict; running it again");
        })
        .await
}

/// `map` with its first argument bound, for `map_err`.
pub(crate) fn during(what: &'static str) -> impl Fn(sqlx::Error) -> Error {
    move |err| map(what, err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatstore_core::ErrorKind;

    #[test]
    fn pool_timeouts_are_retryable() {
        let e = map("searching", sqlx::Error::PoolTimedOut);
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.is_retryable());
    }

    #[test]
    fn row_not_found_is_a_backend_error() {
        assert_eq!(
            map("reading", sqlx::Error::RowNotFound).kind(),
            ErrorKind::Backend
        );
    }
}
