//! sqlx errors -> [`chatstore_core::Error`], mapped once at the adapter's edge.

use chatstore_core::Error;

/// SQLSTATE classes and codes that mean "try again": serialization failure, deadlock, too many
/// connections, the server shutting down or starting up, a cancelled statement.
const RETRYABLE_CODES: &[&str] = &[
    "40001", "40P01", "53300", "57P01", "57P02", "57P03", "57014",
];

/// Maps a sqlx error to chatstore's error kinds, keeping the source. `what` says what was being
/// done ("inserting vectors"); it leads the message.
pub(crate) fn map(what: &str, err: sqlx::Error) -> Error {
    match &err {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            if code == "23505" {
                let detail = db.message().to_owned();
                return Error::conflict("vector", format!("{what}: {detail}"));
            }
            if RETRYABLE_CODES.contains(&code.as_str()) || code.starts_with("08") {
                return Error::unavailable(format!("{what}: {}", db.message()), err);
            }
            if code.starts_with("22") {
                // pgvector: dimension or value errors the validation should have caught first.
                return Error::InvalidInput {
                    message: format!("{what}: {}", db.message()),
                };
            }
            Error::backend(format!("{what}: {} (SQLSTATE {code})", db.message()), err)
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => Error::unavailable(format!("{what}: {err}"), err),
        _ => Error::backend(format!("{what}: {err}"), err),
    }
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
