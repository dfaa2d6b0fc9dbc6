//! One classification of PostgreSQL failures, shared by every adapter that talks to PostgreSQL
//! (the SQL adapter and pgvector), so the same server failure is the same [`ErrorKind`]
//! whichever repository met it.
//!
//! An adapter describes what its driver reported as a [`PgFailure`] (a SQLSTATE, a lost
//! connection, a pool that timed out or was closed) and calls [`pg_error`] once at its edge:
//!
//! | failure | kind |
//! |---|---|
//! | `23505` unique violation, `23P01` exclusion violation | `Conflict` |
//! | class `08` connection exception; `57P01` admin shutdown, `57P02` crash shutdown, `57P03` cannot connect now, `57P05` idle session timeout; `57014` statement timeout or cancel; class `53` insufficient resources (too many connections); `40001` serialization failure, `40P01` deadlock, `40003` completion unknown; `55P03` lock timeout; `25P03`/`25P04` idle-in-transaction and transaction timeouts | `Unavailable` (retryable) |
//! | class `22` data exception (a value the column cannot hold) | `InvalidInput` |
//! | a lost or refused connection, a pool acquire timeout, a closed pool | `Unavailable` |
//! | anything else | `Backend` |
//!
//! `Unavailable` says only that trying again may succeed. Whether a retry is safe is the
//! caller's decision: after a lost connection or `40003` a write may have been applied.
//!
//! ```
//! use chatstore_core::ErrorKind;
//! use chatstore_core::sqlstate::{PgFailure, classify};
//!
//! assert_eq!(classify(&PgFailure::Sqlstate("40P01")), ErrorKind::Unavailable);
//! assert_eq!(classify(&PgFailure::Sqlstate("23505")), ErrorKind::Conflict);
//! assert_eq!(classify(&PgFailure::PoolClosed), ErrorKind::Unavailable);
//! ```

use crate::{BoxError, Error, ErrorKind};

/// Whether a server's refusal at connection start (`message`) is a pooler such as PgBouncer
/// refusing a startup parameter it does not know ("unsupported startup parameter: options"):
/// a read-only store's `default_transaction_read_only` is then set per transaction instead.
pub fn refuses_startup_parameter(message: &str) -> bool {
    message.contains("unsupported startup parameter")
}

/// What a PostgreSQL driver reported, described without naming the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgFailure<'a> {
    /// The server answered with an error carrying this SQLSTATE.
    Sqlstate(&'a str),
    /// The connection could not be made or was lost (refused, reset, TLS, protocol).
    Connection,
    /// No pooled connection became free within the acquire timeout.
    PoolTimedOut,
    /// The pool was closed: this store is shutting down; another replica may answer.
    PoolClosed,
    /// Anything else (decoding a row, a missing column, a driver bug).
    Other,
}

/// The kind of error `failure` is (see the module table).
pub fn classify(failure: &PgFailure<'_>) -> ErrorKind {
    match failure {
        PgFailure::Sqlstate(code) => classify_sqlstate(code),
        PgFailure::Connection | PgFailure::PoolTimedOut | PgFailure::PoolClosed => {
            ErrorKind::Unavailable
        }
        PgFailure::Other => ErrorKind::Backend,
    }
}

/// The kind of error a SQLSTATE is (see the module table).
pub fn classify_sqlstate(code: &str) -> ErrorKind {
    let class = code.get(..2).unwrap_or_default();
    match (class, code) {
        (_, "23505" | "23P01") => ErrorKind::Conflict,
        ("08" | "53", _) => ErrorKind::Unavailable,
        (
            _,
            "57P01" | "57P02" | "57P03" | "57P05" | "57014" | "40001" | "40P01" | "40003" | "55P03"
            | "25P03" | "25P04",
        ) => ErrorKind::Unavailable,
        ("22", _) => ErrorKind::InvalidInput,
        _ => ErrorKind::Backend,
    }
}

/// The [`Error`] for `failure` met while working on `entity` (`"chat"`, `"vector"`, ...):
/// `message` says what failed, `source` is the driver's error, kept where the kind has one.
pub fn pg_error(
    failure: &PgFailure<'_>,
    entity: &'static str,
    message: String,
    source: impl Into<BoxError>,
) -> Error {
    match classify(failure) {
        ErrorKind::Conflict => Error::conflict(entity, message),
        ErrorKind::Unavailable => Error::unavailable(message, source),
        ErrorKind::InvalidInput => Error::invalid(message),
        _ => Error::backend(message, source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(code: &str) -> ErrorKind {
        classify(&PgFailure::Sqlstate(code))
    }

    #[test]
    fn unique_and_exclusion_violations_are_conflicts() {
        assert_eq!(kind("23505"), ErrorKind::Conflict);
        assert_eq!(kind("23P01"), ErrorKind::Conflict);
    }

    #[test]
    fn other_integrity_violations_are_backend_errors() {
        for code in ["23503", "23502", "23514", "23000"] {
            assert_eq!(kind(code), ErrorKind::Backend, "{code}");
        }
    }

    #[test]
    fn connection_exceptions_are_unavailable() {
        for code in ["08000", "08003", "08006", "08001", "08004", "08P01"] {
            assert_eq!(kind(code), ErrorKind::Unavailable, "{code}");
        }
    }

    #[test]
    fn shutdown_and_cancel_are_unavailable() {
        // admin shutdown (fast/immediate stop, pg_terminate_backend), crash shutdown, cannot
        // connect now (starting up or recovering), idle session timeout, statement timeout.
        for code in ["57P01", "57P02", "57P03", "57P05", "57014"] {
            assert_eq!(kind(code), ErrorKind::Unavailable, "{code}");
        }
        assert_eq!(kind("57P04"), ErrorKind::Backend, "database dropped");
    }

    #[test]
    fn insufficient_resources_are_unavailable() {
        for code in ["53000", "53100", "53200", "53300", "53400"] {
            assert_eq!(kind(code), ErrorKind::Unavailable, "{code}");
        }
    }

    #[test]
    fn serialization_failures_deadlocks_and_lock_timeouts_are_unavailable() {
        for code in ["40001", "40P01", "40003", "55P03", "25P03", "25P04"] {
            assert_eq!(kind(code), ErrorKind::Unavailable, "{code}");
        }
        assert_eq!(kind("40002"), ErrorKind::Backend);
        assert_eq!(kind("55006"), ErrorKind::Backend);
    }

    #[test]
    fn data_exceptions_are_invalid_input() {
        // numeric out of range, invalid text representation, NUL in text, bad JSON.
        for code in ["22003", "22P02", "22021", "22P05", "22023", "22000"] {
            assert_eq!(kind(code), ErrorKind::InvalidInput, "{code}");
        }
    }

    #[test]
    fn syntax_and_schema_errors_are_backend_errors() {
        for code in [
            "42P01", "42601", "42703", "25006", "XX000", "58030", "", "4",
        ] {
            assert_eq!(kind(code), ErrorKind::Backend, "{code:?}");
        }
    }

    #[test]
    fn lost_connections_and_pool_failures_are_unavailable() {
        assert_eq!(classify(&PgFailure::Connection), ErrorKind::Unavailable);
        assert_eq!(classify(&PgFailure::PoolTimedOut), ErrorKind::Unavailable);
        assert_eq!(classify(&PgFailure::PoolClosed), ErrorKind::Unavailable);
        assert_eq!(classify(&PgFailure::Other), ErrorKind::Backend);
    }

    #[test]
    fn pg_error_builds_the_classified_error() {
        let e = pg_error(
            &PgFailure::Sqlstate("40P01"),
            "chat",
            "deadlock".into(),
            "src",
        );
        assert!(e.is_retryable());
        let e = pg_error(&PgFailure::Sqlstate("23505"), "chat", "dup".into(), "src");
        assert_eq!(e.kind(), ErrorKind::Conflict);
        let e = pg_error(&PgFailure::Sqlstate("22P02"), "chat", "bad".into(), "src");
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let e = pg_error(
            &PgFailure::Sqlstate("42P01"),
            "chat",
            "no table".into(),
            "src",
        );
        assert_eq!(e.kind(), ErrorKind::Backend);
    }
}
