//! PocketBase answers mapped to [`chatstore_core::Error`], once, at the edge.
//!
//! | PocketBase | chatstore |
//! |---|---|
//! | 404, or a batch whose failed request answered 404 | `NotFound` |
//! | 400 with a `validation_not_unique` or `validation_pk_invalid` field code, 409 | `Conflict` |
//! | other 400, 413 | `InvalidInput` |
//! | connection errors, answers cut off, timeouts, 429, 5xx | `Unavailable` (retried on idempotent calls) |
//! | an answer that arrived whole but does not parse | `Backend` |
//! | anything else | `Backend` |

use chatstore_core::Error;
use serde_json::Value;

/// What a failed call was about, so that errors name the record.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// `"user"`, `"chat"`, ...
    pub entity: &'static str,
    /// The id looked for.
    pub id: &'a str,
}

impl<'a> Subject<'a> {
    /// A subject.
    pub fn new(entity: &'static str, id: &'a str) -> Self {
        Subject { entity, id }
    }
}

/// PocketBase: the status the chatstore tx route answers when a chat changed since it was
/// read (optimistic concurrency); the caller reads again and retries.
pub const STALE_STATUS: u16 = 412;

/// An error answer of PocketBase (`{"status", "message", "data"}`).
#[derive(Debug)]
pub struct ServerError {
    /// HTTP status.
    pub status: u16,
    /// The body, parsed when it is JSON.
    pub body: Value,
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PocketBase answered {}: {}", self.status, self.body)
    }
}

impl std::error::Error for ServerError {}

/// Whether the error is the tx route's "changed concurrently" answer.
pub fn is_stale(error: &Error) -> bool {
    matches!(error, Error::Backend { source: Some(s), .. }
        if s.downcast_ref::<ServerError>().is_some_and(|e| e.status == STALE_STATUS))
}

/// The field codes of a validation error body (`data.<field>.code`), batch answers included
/// (`data.requests.<n>.response.data.<field>.code`).
fn field_codes(body: &Value, out: &mut Vec<String>) {
    let Some(data) = body.get("data").and_then(Value::as_object) else {
        return;
    };
    for (key, value) in data {
        if key == "requests" {
            if let Some(requests) = value.as_object() {
                for request in requests.values() {
                    if let Some(inner) = request.get("response") {
                        field_codes(inner, out);
                    }
                }
            }
            continue;
        }
        if let Some(code) = value.get("code").and_then(Value::as_str) {
            out.push(code.to_owned());
        }
    }
}

fn message_of(body: &Value) -> String {
    let mut message = body
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("no message")
        .to_owned();
    let mut details = Vec::new();
    collect_details(body, "", &mut details);
    if !details.is_empty() {
        message.push_str(" (");
        message.push_str(&details.join("; "));
        message.push(')');
    }
    message
}

fn collect_details(body: &Value, prefix: &str, out: &mut Vec<String>) {
    if let Some(data) = body.get("data") {
        walk_details(data, prefix, out);
    }
}

/// Every `{"code", "message"}` below `value`, named by its path (`requests.1.response...`
/// answers of the batch API are followed into their inner error).
fn walk_details(value: &Value, path: &str, out: &mut Vec<String>) {
    let Some(map) = value.as_object() else {
        return;
    };
    if let (Some(code), Some(msg)) = (
        map.get("code").and_then(Value::as_str),
        map.get("message").and_then(Value::as_str),
    ) && code != "batch_request_failed"
    {
        out.push(format!("{path}: {msg}"));
        return;
    }
    for (key, inner) in map {
        let path = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        if key == "response" {
            collect_details(inner, &path, out);
        } else {
            walk_details(inner, &path, out);
        }
    }
}

/// The statuses of the failed requests of a batch answer
/// (`data.requests.<n>.response.status`).
fn batch_statuses(body: &Value) -> Vec<u64> {
    body.get("data")
        .and_then(|d| d.get("requests"))
        .and_then(Value::as_object)
        .map(|requests| {
            requests
                .values()
                .filter_map(|r| r.get("response")?.get("status")?.as_u64())
                .collect()
        })
        .unwrap_or_default()
}

/// The superuser's token was refused by the server (invalidated there) on a call that could
/// not be sent again: nothing was stored, and the next call logs in again.
#[derive(Debug)]
pub struct TokenRefused;

impl std::fmt::Display for TokenRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PocketBase refused the superuser token")
    }
}

impl std::error::Error for TokenRefused {}

/// Whether an error answer says the superuser's token no longer holds: 401 on superuser-only
/// routes, 403 on collections only superusers may use (PocketBase treats an invalid token as
/// a guest's), or a batch refused because a request in it met that 403.
pub fn token_refused(status: u16, body: &Value) -> bool {
    match status {
        401 | 403 => true,
        400 => batch_statuses(body).contains(&403),
        _ => false,
    }
}

/// Maps an error answer of PocketBase.
pub fn from_status(status: u16, body: Value, subject: Subject<'_>) -> Error {
    let mut codes = Vec::new();
    field_codes(&body, &mut codes);
    // PocketBase: a batch fails as a whole with 400; a request in it that found no record
    // answers 404 inside.
    if status == 400 && codes.is_empty() && batch_statuses(&body).contains(&404) {
        return Error::not_found(subject.entity, subject.id);
    }
    let message = message_of(&body);
    // A batch that ran past the server's batch timeout is rolled back and answered with a 400
    // naming no field and no request: nothing was written, and it may go through when tried
    // again, so it is not the caller's bad input.
    let timed_out_batch = status == 400
        && codes.is_empty()
        && batch_statuses(&body).is_empty()
        && message == "Batch transaction failed.";
    let server = ServerError { status, body };
    if timed_out_batch {
        return Error::unavailable(
            "PocketBase rolled back a batch that ran past its batch timeout",
            server,
        );
    }
    match status {
        404 => Error::not_found(subject.entity, subject.id),
        409 => Error::conflict(subject.entity, message),
        400 if codes
            .iter()
            .any(|c| c == "validation_not_unique" || c == "validation_pk_invalid") =>
        {
            Error::conflict(subject.entity, message)
        }
        400 | 413 => Error::invalid(format!(
            "PocketBase refused the {}: {message}",
            subject.entity
        )),
        429 | 500..=599 => Error::unavailable(format!("PocketBase: {message}"), server),
        _ => Error::backend(format!("PocketBase: {message}"), server),
    }
}

/// Maps a transport error of reqwest.
pub fn from_transport(error: reqwest::Error) -> Error {
    // The URL may carry a file token (`?token=`) or a filter holding user data: neither goes
    // into a message that callers log.
    let error = error.without_url();
    if error.is_connect() || error.is_timeout() || error.is_request() {
        Error::unavailable(format!("PocketBase unreachable: {error}"), error)
    } else if error.is_decode() && chatstore_core::error::caused_by::<serde_json::Error>(&error) {
        // reqwest reports a body read that failed (a server killed mid-answer) as a decode
        // error too: only an answer that arrived whole and does not parse is `Backend`.
        Error::backend(
            format!("PocketBase sent an unreadable answer: {error}"),
            error,
        )
    } else {
        Error::unavailable(format!("PocketBase connection failed: {error}"), error)
    }
}

/// A record or answer of PocketBase that lacks what chatstore needs.
pub fn malformed(what: impl std::fmt::Display) -> Error {
    Error::backend_msg(format!("PocketBase sent a malformed answer: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatstore_core::ErrorKind;
    use serde_json::json;

    /// A batch answered without a field or a request to blame ran past the server's batch
    /// timeout and was rolled back: `Unavailable`, not bad input.
    #[test]
    fn a_batch_rolled_back_for_its_timeout_is_unavailable() {
        let timed_out = json!({"data": {}, "message": "Batch transaction failed.", "status": 400});
        let e = from_status(400, timed_out, Subject::new("chat", "c1"));
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
        let refused = json!({
            "data": {"requests": {"2": {"code": "batch_request_failed",
                "message": "Batch request failed.",
                "response": {"status": 400, "message": "Failed to create record.",
                    "data": {"title": {"code": "validation_required", "message": "Missing."}}}}}},
            "message": "Batch transaction failed.", "status": 400});
        let e = from_status(400, refused, Subject::new("chat", "c1"));
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    }

    /// A failed request's URL (a file token, a filter with user data) stays out of the error.
    #[tokio::test]
    async fn a_transport_error_does_not_carry_the_url() {
        let failed = reqwest::get("http://127.0.0.1:1/api/files/c/r/a.txt?token=eyJsecret")
            .await
            .expect_err("nothing listens on port 1");
        let e = from_transport(failed);
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("eyJsecret"), "{shown}");
    }

    #[test]
    fn statuses_and_codes_map_to_kinds() {
        let s = Subject::new("user", "u1");
        let kind = |status, body| from_status(status, body, s).kind();
        assert_eq!(kind(404, json!({})), ErrorKind::NotFound);
        let dup = json!({"data": {"id": {"code": "validation_pk_invalid", "message": "x"}}});
        assert_eq!(kind(400, dup), ErrorKind::Conflict);
        let batch = json!({"data": {"requests": {"1": {"response": {"data": {"email_key": {"code": "validation_not_unique"}}}}}}});
        assert_eq!(kind(400, batch), ErrorKind::Conflict);
        assert_eq!(kind(400, json!({"data": {}})), ErrorKind::InvalidInput);
        let gone = json!({"data": {"requests": {"0": {"code": "batch_request_failed", "response": {"data": {}, "status": 404}}}}});
        assert_eq!(kind(400, gone), ErrorKind::NotFound);
        assert_eq!(kind(503, json!({})), ErrorKind::Unavailable);
        assert_eq!(kind(401, json!({})), ErrorKind::Backend);
        assert!(is_stale(&kind_err(412)));
    }

    async fn body_error(answer: &'static str) -> Error {
        let url = chatstore_testkit::answer_once(answer);
        let resp = reqwest::get(&url).await.expect("the head arrives");
        match resp.json::<Value>().await {
            Ok(v) => panic!("the answer parsed: {v}"),
            Err(e) => from_transport(e),
        }
    }

    #[tokio::test]
    async fn an_answer_cut_off_is_unavailable_and_a_garbled_one_is_backend() {
        let cut = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"id\":";
        assert_eq!(body_error(cut).await.kind(), ErrorKind::Unavailable);
        let garbled = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\n{\"id\":";
        assert_eq!(body_error(garbled).await.kind(), ErrorKind::Backend);
    }

    fn kind_err(status: u16) -> Error {
        from_status(status, json!({}), Subject::new("chat", "c"))
    }

    #[test]
    fn a_refused_token_is_told_apart() {
        assert!(token_refused(401, &json!({})));
        assert!(token_refused(
            403,
            &json!({"message": "Only superusers can perform this action."})
        ));
        let batch = json!({"data": {"requests": {"0": {"response": {"status": 403}}}}});
        assert!(token_refused(400, &batch));
        let taken = json!({"data": {"requests": {"0": {"response": {"status": 400}}}}});
        assert!(!token_refused(400, &taken));
        assert!(!token_refused(404, &json!({})));
    }
}
