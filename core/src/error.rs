//! The one error type of chatstore, matched by kind, never by message.

use std::fmt;

/// A boxed error from a driver or server, kept as the source of [`Error::Unavailable`] and
/// [`Error::Backend`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result type of every chatstore operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a chatstore operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The record does not exist.
    #[error("{entity} {id:?} not found")]
    NotFound {
        /// What kind of record was looked for (`"user"`, `"chat"`, ...).
        entity: &'static str,
        /// The id that was looked for.
        id: String,
    },
    /// The write collides with an existing record (duplicate id, unique email, ...).
    #[error("conflict on {entity}: {message}")]
    Conflict {
        /// What kind of record collided.
        entity: &'static str,
        /// What collided, for a person to read.
        message: String,
    },
    /// The caller's input is not acceptable; nothing was changed.
    #[error("invalid input: {message}")]
    InvalidInput {
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The backend cannot do this operation.
    #[error("{backend} does not support {operation}")]
    Unsupported {
        /// The backend that was asked.
        backend: &'static str,
        /// The operation that was asked for.
        operation: &'static str,
    },
    /// The backend is unreachable or busy; the operation may succeed if retried.
    #[error("backend unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
        /// The driver's error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// Any other backend failure.
    #[error("backend error: {message}")]
    Backend {
        /// What failed.
        message: String,
        /// The driver's error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
}

/// The kind of an [`Error`], for comparing errors across backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// See [`Error::NotFound`].
    NotFound,
    /// See [`Error::Conflict`].
    Conflict,
    /// See [`Error::InvalidInput`].
    InvalidInput,
    /// See [`Error::Unsupported`].
    Unsupported,
    /// See [`Error::Unavailable`].
    Unavailable,
    /// See [`Error::Backend`].
    Backend,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::InvalidInput { .. } => ErrorKind::InvalidInput,
            Error::Unsupported { .. } => ErrorKind::Unsupported,
            Error::Unavailable { .. } => ErrorKind::Unavailable,
            Error::Backend { .. } => ErrorKind::Backend,
        }
    }

    /// Whether retrying the same call may succeed (connection refused, timeout, busy).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }

    /// A [`Error::NotFound`] for `entity` with `id`.
    pub fn not_found(entity: &'static str, id: impl Into<String>) -> Self {
        Error::NotFound {
            entity,
            id: id.into(),
        }
    }

    /// A [`Error::Conflict`] on `entity`.
    pub fn conflict(entity: &'static str, message: impl Into<String>) -> Self {
        Error::Conflict {
            entity,
            message: message.into(),
        }
    }

    /// An [`Error::InvalidInput`] with a message a person can act on.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidInput {
            message: message.into(),
        }
    }

    /// An [`Error::Unsupported`] for `operation` on `backend`.
    pub fn unsupported(backend: &'static str, operation: &'static str) -> Self {
        Error::Unsupported { backend, operation }
    }

    /// An [`Error::Unavailable`] keeping its source.
    pub fn unavailable(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Unavailable {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// An [`Error::Backend`] keeping its source.
    pub fn backend(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Backend {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// An [`Error::Backend`] without a source.
    pub fn backend_msg(message: impl Into<String>) -> Self {
        Error::Backend {
            message: message.into(),
            source: None,
        }
    }
}

/// Whether `error` or one of its causes (its `source` chain) is a `T`: how an adapter tells,
/// say, an answer that does not parse from one whose connection broke, when its client reports
/// both as one kind of error.
pub fn caused_by<T: std::error::Error + 'static>(
    error: &(dyn std::error::Error + 'static),
) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<T>() {
            return true;
        }
        next = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caused_by_follows_the_source_chain() {
        let parse = "x".parse::<u8>().expect_err("not a number");
        let wrapped = Error::backend("bad answer", parse);
        assert!(caused_by::<std::num::ParseIntError>(&wrapped));
        assert!(!caused_by::<std::io::Error>(&wrapped));
    }

    #[test]
    fn only_unavailable_is_retryable() {
        assert!(Error::unavailable("refused", "io").is_retryable());
        assert!(!Error::backend_msg("x").is_retryable());
        assert!(!Error::invalid("x").is_retryable());
        assert_eq!(Error::not_found("chat", "c1").kind(), ErrorKind::NotFound);
    }
}
