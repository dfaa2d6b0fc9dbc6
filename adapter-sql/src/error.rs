//! sqlx errors mapped to chatstore's [`Error`], in one place.
//!
//! - PostgreSQL failures go through core's one classification
//!   ([`chatstore_core::sqlstate`]), the same the pgvector adapter uses: unique violations are
//!   conflicts; lost connections, shutdowns, lock timeouts, serialization failures, deadlocks,
//!   pool timeouts and a closed pool are [`Error::Unavailable`]; data exceptions are
//!   [`Error::InvalidInput`];
//! - SQLite: a unique or primary-key violation is a [`Error::Conflict`], `BUSY`/`LOCKED` (the
//!   busy timeout ran out) is [`Error::Unavailable`];
//! - anything else is [`Error::Backend`], with the driver's error kept as its source.
//!
//! Row writes ([`crate::rows`]) classify one step further with [`integrity`]: a foreign key,
//! check or not-null rule the database refused becomes [`Error::InvalidInput`] with a message
//! naming the table and column (see the rows module).

use chatstore_core::Error;
use chatstore_core::sqlstate::{PgFailure, pg_error};
use sqlx::error::{DatabaseError, ErrorKind};
use sqlx::sqlite::SqliteError;

/// SQLite's primary result codes that mean "another connection holds the lock".
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;

/// Maps a sqlx error met while working on `entity` (`"user"`, `"chat"`, ...).
pub(crate) fn db_error(entity: &'static str, err: sqlx::Error) -> Error {
    if let sqlx::Error::Database(db) = &err
        && let Some(e) = db.try_downcast_ref::<SqliteError>()
    {
        let message = format!("{entity}: {}", e.message());
        return if db.kind() == ErrorKind::UniqueViolation {
            Error::conflict(entity, db.message().to_owned())
        } else if sqlite_retryable(e.code()) {
            Error::unavailable(message, err)
        } else {
            Error::backend(message, err)
        };
    }
    let code = match &err {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    };
    let failure = pg_failure(&err, code.as_deref());
    let message = match &err {
        sqlx::Error::Database(db) => format!(
            "{entity}: {} (SQLSTATE {})",
            db.message(),
            code.as_deref().unwrap_or("?")
        ),
        e if failure == PgFailure::Other => format!("{entity}: {e}"),
        e => format!("database unreachable ({entity}): {e}"),
    };
    pg_error(&failure, entity, message, err)
}

/// An integrity rule a write broke, other than a unique key (a unique key is a conflict,
/// mapped by [`db_error`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Integrity {
    /// A foreign key: a row names a parent that does not exist (or a parent still has
    /// children). `detail` is PostgreSQL's `Key (column)=(value) is not present in table "t".`
    ForeignKey { detail: Option<String> },
    /// A `CHECK` constraint or a `NOT NULL` column.
    Rule,
}

/// The integrity rule `err` reports, if it reports one (same on both dialects).
pub(crate) fn integrity(err: &sqlx::Error) -> Option<Integrity> {
    let sqlx::Error::Database(db) = err else {
        return None;
    };
    match db.kind() {
        ErrorKind::ForeignKeyViolation => Some(Integrity::ForeignKey {
            detail: db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .and_then(|e| e.detail())
                .map(str::to_owned),
        }),
        ErrorKind::CheckViolation | ErrorKind::NotNullViolation => Some(Integrity::Rule),
        _ => None,
    }
}

/// What sqlx reported, in the words of core's PostgreSQL classification.
fn pg_failure<'a>(err: &sqlx::Error, code: Option<&'a str>) -> PgFailure<'a> {
    match err {
        sqlx::Error::Database(_) => code.map_or(PgFailure::Other, PgFailure::Sqlstate),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => PgFailure::Connection,
        sqlx::Error::PoolTimedOut => PgFailure::PoolTimedOut,
        sqlx::Error::PoolClosed => PgFailure::PoolClosed,
        _ => PgFailure::Other,
    }
}

/// Whether `err` says the connection itself is gone: the socket failed, or the server ended
/// the session (SQLSTATE class 08, or 57P01-57P03 and 57P05: terminated by an administrator, a server
/// shutdown or crash, a server still starting, an idle session timed out). Nothing the statement asked for was done on a
/// connection found lost before its answer, so a read may run again on another connection.
pub(crate) fn connection_lost(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03" | "57P05")
        }),
        err => pg_failure(err, None) == PgFailure::Connection,
    }
}

/// SQLite: the error is `BUSY` or `LOCKED` (another connection holds the lock).
pub(crate) fn sqlite_busy(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<SqliteError>()
            .is_some_and(|e| sqlite_retryable(e.code())),
        _ => false,
    }
}

/// SQLite: `BUSY` or `LOCKED`, primary or extended (the low byte is the primary code).
fn sqlite_retryable(code: Option<std::borrow::Cow<'_, str>>) -> bool {
    code.and_then(|c| c.parse::<i64>().ok())
        .is_some_and(|n| matches!(n & 0xff, SQLITE_BUSY | SQLITE_LOCKED))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatstore_core::ErrorKind as Kind;

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
    fn lost_connections_and_closed_pools_are_unavailable() {
        for err in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::WorkerCrashed,
            sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into()),
        ] {
            assert_eq!(db_error("chat", err).kind(), Kind::Unavailable);
        }
        assert_eq!(
            db_error("chat", sqlx::Error::RowNotFound).kind(),
            Kind::Backend
        );
    }
}
