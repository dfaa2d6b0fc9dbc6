//! Chroma answers mapped to [`chatstore_core::Error`], once, at the edge.
//!
//! | Chroma | chatstore |
//! |---|---|
//! | 404 | `NotFound` (callers that expect a missing collection turn it into "none") |
//! | 409 | `Conflict` |
//! | 400 `InvalidArgumentError`, 422 (a body the server cannot read) | `InvalidInput` |
//! | connection errors, timeouts, 429, 502, 503, 504 | `Unavailable` |
//! | anything else | `Backend` |

use chatstore_core::Error;
use serde_json::Value;

/// An error answer of Chroma (`{"error": "...", "message": "..."}`).
#[derive(Debug)]
pub struct ServerError {
    /// HTTP status.
    pub status: u16,
    /// The body, parsed when it is JSON.
    pub body: Value,
}

impl ServerError {
    /// Chroma's message, or the whole body.
    pub fn message(&self) -> String {
        match self.body.get("message").and_then(Value::as_str) {
            Some(m) => m.to_owned(),
            None => self.body.to_string(),
        }
    }
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Chroma answered {}: {}", self.status, self.body)
    }
}

impl std::error::Error for ServerError {}

/// Maps an error answer; `what` says what was being done ("adding vectors").
pub(crate) fn from_status(what: &str, status: u16, body: Value) -> Error {
    let server = ServerError { status, body };
    let message = format!("{what}: {}", server.message());
    match status {
        404 => Error::NotFound {
            entity: "chroma resource",
            id: message,
        },
        409 => Error::conflict("vector", message),
        400 | 422 => Error::invalid(message),
        429 | 502..=504 => Error::unavailable(message, server),
        // Chroma 1.5.9: a get by ids that races with a delete of one of those ids answers 500
        // "Error finding id"; the same read succeeds when asked again.
        500 if server.message().contains("Error finding id") => Error::unavailable(message, server),
        _ => Error::backend(message, server),
    }
}

/// Maps a transport error.
pub(crate) fn from_reqwest(what: &str, err: reqwest::Error) -> Error {
    if err.is_connect() || err.is_timeout() || err.is_request() {
        Error::unavailable(format!("{what}: {err}"), err)
    } else {
        Error::backend(format!("{what}: {err}"), err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatstore_core::ErrorKind;
    use serde_json::json;

    #[test]
    fn statuses_map_to_kinds() {
        let body = json!({"error": "InvalidArgumentError", "message": "bad"});
        assert_eq!(
            from_status("x", 400, body.clone()).kind(),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            from_status("x", 404, body.clone()).kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            from_status("x", 409, body.clone()).kind(),
            ErrorKind::Conflict
        );
        assert!(from_status("x", 503, body.clone()).is_retryable());
        assert_eq!(from_status("x", 500, body).kind(), ErrorKind::Backend);
    }
}
