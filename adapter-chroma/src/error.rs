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
use chatstore_core::error::caused_by;
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

/// Maps a transport error. A TLS certificate the client refuses is not retryable and says
/// how to trust it.
pub(crate) fn from_reqwest(what: &str, err: reqwest::Error) -> Error {
    if let Some(detail) = tls_refusal(&err) {
        return Error::backend(
            format!(
                "{what}: {detail}: the server's TLS certificate was refused; when it is signed \
                 by a private CA or self-signed, give that CA certificate (PEM file) with \
                 {} or ChromaConfig::ca_cert",
                crate::config::CA_CERT_ENV
            ),
            err,
        );
    }
    let message = format!("{what}: {}", describe(&err));
    if err.url().is_some_and(|u| u.scheme() == "https") && speaks_no_tls(&message) {
        return Error::backend(
            format!(
                "{message}: the server does not answer TLS; use chroma:// for a plain-HTTP \
                 Chroma server"
            ),
            err,
        );
    }
    // reqwest reports a body cut off on the way (a server killed mid-answer) as a decode
    // error too: only an answer that arrived whole and does not parse is `Backend`.
    let cut_off = (err.is_decode() || err.is_body()) && !caused_by::<serde_json::Error>(&err);
    if err.is_connect() || err.is_timeout() || err.is_request() || cut_off {
        Error::unavailable(message, err)
    } else {
        Error::backend(message, err)
    }
}

/// The error and its causes, each once (reqwest's own message leaves the causes out).
fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = e.source();
    }
    out
}

/// OpenSSL's words for a TLS handshake answered by a plain-HTTP server.
fn speaks_no_tls(message: &str) -> bool {
    [
        "wrong version number",
        "packet length too long",
        "http request",
    ]
    .iter()
    .any(|w| message.to_ascii_lowercase().contains(w))
}

/// The innermost message of an error chain that speaks of a certificate (OpenSSL: "certificate
/// verify failed", "self-signed certificate", "certificate has expired", a name mismatch).
fn tls_refusal(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut found = None;
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if text.contains("certificate") {
            found = Some(text);
        }
        next = e.source();
    }
    found
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

    #[tokio::test]
    async fn an_answer_cut_off_is_unavailable() {
        let cut = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"id\":";
        let url = chatstore_testkit::answer_once(cut);
        let resp = reqwest::get(&url).await.expect("the head arrives");
        let err = resp.bytes().await.expect_err("the body is cut off");
        assert_eq!(from_reqwest("read", err).kind(), ErrorKind::Unavailable);
    }
}
