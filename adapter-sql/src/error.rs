//! sqlx errors mapped to chatstore's [`Error`], in one place.
//!
//! - a unique or primary-key violation is a [`Error::Conflict`];
//! - SQLite `BUSY`/`LOCKED`, PostgreSQL connection failures, lock timeouts, serialization
//!   failures and deadlocks, I/O errors and pool timeouts are [`Error::Unavailable`] (retryable);
//! - anything else is [`Error::Backend`], with the driver's error kept as its source.

use chatstore_core::Error;
use sqlx::error::{DatabaseError, ErrorKind};
use sqlx::postgres::PgDatabaseError;
use sqlx::sqlite::SqliteError;

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
            let retryable = if let Some(e) = db.try_downcast_ref::<SqliteError>() {
                sqlite_retryable(e.code())
            } else if let Some(e) = db.try_downcast_ref::<PgDatabaseError>() {
                pg_retryable(e.code())
            } else {
                false
            };
            let message = format!("{entity}: {}", db.message());
            if retryable {
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

/// SQLite: `BUSY` or `LOCKED`, primary or extended (the low byte is the primary code).
fn sqlite_retryable(code: Option<std::borrow::Cow<'_, str>>) -> bool {
    code.and_then(|c| c.parse::<i64>().ok())
        .is_some_and(|n| matches!(n & 0xff, SQLITE_BUSY | SQLITE_LOCKED))
}

/// PostgreSQL: connection exceptions, server shutting down or starting, too many connections,
/// lock timeout, statement timeout, serialization failure, deadlock.
fn pg_retryable(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "53300" | "55P03" | "57014" | "40001" | "40P01"
        )
}

#[cfg(test)]
mod tests {
    use super::{pg_retryable, sqlite_retryable};

    #[test]
    fn busy_and_locked_are_retryable_on_sqlite() {
        for code in ["5", "517", "6", "262"] {
            assert!(sqlite_retryable(Some(code.into())), "{code}");
        }
        for code in ["19", "2067", "1555", "14"] {
            assert!(!sqlite_retryable(Some(code.into())), "{code}");
        }
        assert!(!sqlite_retryable(None));
    }

    #[test]
    fn connection_and_lock_errors_are_retryable_on_postgres() {
        for code in ["08006", "08001", "40001", "40P01", "57P01", "55P03"] {
            assert!(pg_retryable(code), "{code}");
        }
        for code in ["23505", "42P01", "22P02", "25006"] {
            assert!(!pg_retryable(code), "{code}");
        }
    }
}
