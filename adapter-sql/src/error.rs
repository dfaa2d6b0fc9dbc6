//! sqlx errors mapped to chatstore's [`Error`], in one place.
//!
//! - a unique or primary-key violation is a [`Error::Conflict`];
//! - SQLite `BUSY`/`LOCKED`, PostgreSQL connection failures, lock timeouts, serialization
//!   failures and deadlocks, I/O errors and pool timeouts are [`Error::Unavailable`] (retryable);
//! - anything else is [`Error::Backend`], with the driver's error kept as its source.

use chatstore_core::Error;
use sqlx::error::ErrorKind;

/// SQLite's primary result codes that mean "another connection holds the lock".
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;

/// Maps a sqlx error met while working on `entity` (`"user"`, `"chat"`, ...).
pub(crate) fn db_error(entity: &'static str, err: sqlx::Error) -> Error {
    match err {
        sqlx::Error::Database(db) => {
            if db.kind() == ErrorKind::UniqueViolation {
                return Error::conflict(entity, db.message().to_owned());
            }
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let message = format!("{entity}: {}", db.message());
            if is_retryable_code(&code) {
                Error::unavailable(message, sqlx::Error::Database(db))
            } else {
                Error::backend(message, sqlx::Error::Database(db))
            }
        }
        e @ (sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed) => {
            Error::unavailable(format!("database unreachable ({entity}): {e}"), e)
        }
        e => Error::backend(format!("{entity}: {e}"), e),
    }
}

/// Whether a driver error code (SQLite result code or PostgreSQL SQLSTATE) is worth a retry.
fn is_retryable_code(code: &str) -> bool {
    if let Ok(n) = code.parse::<i64>() {
        // SQLite: extended codes keep the primary code in the low byte.
        return matches!(n & 0xff, SQLITE_BUSY | SQLITE_LOCKED);
    }
    // PostgreSQL: connection exceptions, server shutting down or starting, too many
    // connections, lock timeout, statement timeout, serialization failure, deadlock.
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "53300" | "55P03" | "57014" | "40001" | "40P01"
        )
}

#[cfg(test)]
mod tests {
    use super::is_retryable_code;

    #[test]
    fn busy_locked_and_connection_errors_are_retryable() {
        assert!(is_retryable_code("5"));
        assert!(is_retryable_code("517")); // SQLITE_BUSY_SNAPSHOT
        assert!(is_retryable_code("6"));
        assert!(is_retryable_code("262")); // SQLITE_LOCKED_SHAREDCACHE
        assert!(is_retryable_code("08006"));
        assert!(is_retryable_code("40001"));
        assert!(!is_retryable_code("19"));
        assert!(!is_retryable_code("2067"));
        assert!(!is_retryable_code("23505"));
        assert!(!is_retryable_code("42P01"));
    }
}
