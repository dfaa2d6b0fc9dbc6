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
