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
