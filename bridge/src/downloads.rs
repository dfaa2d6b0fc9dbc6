//! `GET /files/{id}?exp=..&sig=..`: the download proxy for files kept in local storage (memory,
//! SQLite/PostgreSQL's upload folder). The link is made by `FileRepo::download_url` on any
//! replica and signed with HMAC-SHA256 over the id and the expiry
//! ([`chatstore_core::signing`]); this route checks it with the same key and streams the bytes,
//! chunk by chunk, whatever the file size.
//!
//! - A missing, malformed, altered or expired signature gets `403` and no byte; so does every
//!   request when the bridge has no signing key.
//! - `Range: bytes=a-b`, `bytes=a-` and `bytes=-n` get `206` with `Content-Range`; a range
//!   outside the file gets `416` with `Content-Range: bytes */size`; several ranges, or a
//!   syntax it does not know, get the whole file (`200`), as RFC 9110 allows. `If-Range`
//!   with another ETag also gets the whole file.
//! - `ETag` is the file's sha256 (quoted); `If-None-Match` with it gets `304`.
//! - `Content-Disposition` carries a safe ASCII `filename` and the exact name as RFC 6266's
//!   `filename*`; it is `inline` only for types a browser shows without running them (images
//!   other than SVG, audio, video, PDF, plain text), `attachment` otherwise, with `nosniff`.
//!
//! A whole-file download is checked against the sha256 as it streams: corrupt bytes abort the
//! connection before the last byte, so a client never mistakes them for the file.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chatstore_core::{ByteRange, ErrorKind, FileMeta, FileRepo, UrlSigner, validate};
use serde::Deserialize;

/// What the download route needs: the files and the key links are signed with.
#[derive(Clone)]
pub struct Downloads {
    files: Arc<dyn FileRepo>,
    signer: Option<UrlSigner>,
}

impl std::fmt::Debug for Downloads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downloads")
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

impl Downloads {
    /// Serves `files`, checking links with `signer` (`None`: every request is refused).
    pub fn new(files: Arc<dyn FileRepo>, signer: Option<UrlSigner>) -> Self {
        Downloads { files, signer }
    }

    /// The route `GET /files/{id}` (and `HEAD`), to merge into the bridge's router.
    pub fn router(self) -> Router {
        Router::new()
            .route("/files/{id}", get(download))
            .with_state(self)
    }
}

/// The query of a signed link.
#[derive(Debug, Deserialize)]
struct Signature {
    exp: Option<String>,
    sig: Option<String>,
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

async fn download(
    State(downloads): State<Downloads>,
    Path(id): Path<String>,
    Query(signature): Query<Signature>,
    headers: HeaderMap,
) -> Response {
    let Some(signer) = downloads.signer.as_ref() else {
        return plain(StatusCode::FORBIDDEN, "download links are not enabled\n");
    };
    if let Err(refusal) = signer.verify(
        &id,
        signature.exp.as_deref(),
        signature.sig.as_deref(),
        validate::now(),
    ) {
        tracing::debug!("download of {id:?} refused: {refusal}");
        return plain(StatusCode::FORBIDDEN, "this link is not valid\n");
    }
    let meta = match downloads.files.get(&id).await {
        Ok(meta) => meta,
        Err(e) => return store_error(&id, &e),
    };
    let etag = format!("\"{}\"", meta.sha256);
    if header_has_etag(&headers, header::IF_NONE_MATCH, &etag) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    let wants_range = headers
        .get(header::IF_RANGE)
        .is_none_or(|v| v.to_str().is_ok_and(|v| v.trim() == etag));
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(spec) if wants_range => match parse_range(spec, meta.size) {
            RangeAsk::Whole => None,
            RangeAsk::Part(range) => Some(range),
            RangeAsk::Unsatisfiable => {
                return (
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    [
                        (header::CONTENT_RANGE, format!("bytes */{}", meta.size)),
                        (header::ETAG, etag),
                    ],
                )
                    .into_response();
            }
        },
        _ => None,
    };
    let stream = match downloads.files.read_stream(&id, range).await {
        Ok(stream) => stream,
        Err(e) if e.kind() == ErrorKind::InvalidInput => {
            let range = format!("bytes */{}", meta.size);
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, range)],
            )
                .into_response();
        }
        Err(e) => return store_error(&id, &e),
    };
    let status = if range.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let mut response = Response::new(Body::from_stream(stream.body));
    *response.status_mut() = status;
    let out = response.headers_mut();
    let content_type = content_type(&stream.meta);
    out.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(stream.end - stream.start),
    );
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&content_disposition(
        &stream.meta.filename,
        shown_inline(&content_type),
    )) {
        out.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        out.insert(header::CONTENT_TYPE, v);
    }
    if range.is_some()
        && let Ok(v) = HeaderValue::from_str(&format!(
            "bytes {}-{}/{}",
            stream.start,
            stream.end - 1,
            stream.meta.size
        ))
    {
        out.insert(header::CONTENT_RANGE, v);
    }
    response
}

fn store_error(id: &str, e: &chatstore_core::Error) -> Response {
    match e.kind() {
        ErrorKind::NotFound => plain(StatusCode::NOT_FOUND, "no such file\n"),
        ErrorKind::Unavailable => {
            tracing::warn!("download of {id:?}: {e}");
            plain(StatusCode::SERVICE_UNAVAILABLE, "storage unavailable\n")
        }
        _ => {
            tracing::error!("download of {id:?}: {e}");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "cannot read the file\n")
        }
    }
}

fn header_has_etag(headers: &HeaderMap, name: header::HeaderName, etag: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == etag
        })
}

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAsk {
    /// Serve the whole file (no range, several ranges, or a syntax not understood).
    Whole,
    /// Serve this range.
    Part(ByteRange),
    /// Nothing of the file is in the range: 416.
    Unsatisfiable,
}

/// Reads a `Range` header value: one range in bytes, `a-b`, `a-` or `-n` (the last `n` bytes).
pub fn parse_range(spec: &str, size: u64) -> RangeAsk {
    let Some(set) = spec.trim().strip_prefix("bytes=") else {
        return RangeAsk::Whole;
    };
    if set.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((first, last)) = set.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let number = |s: &str| {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    let range = match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, true) => return RangeAsk::Whole,
        (true, false) => match number(last) {
            Some(0) => return RangeAsk::Unsatisfiable,
            Some(n) => ByteRange::from(size.saturating_sub(n)),
            None => return RangeAsk::Whole,
        },
        (false, true) => match number(first) {
            Some(start) => ByteRange::from(start),
            None => return RangeAsk::Whole,
        },
        (false, false) => match (number(first), number(last)) {
            (Some(start), Some(end)) if start <= end => {
                ByteRange::new(start, end.saturating_add(1))
            }
            _ => return RangeAsk::Whole,
        },
    };
    match range.resolve(size) {
        Ok(_) => RangeAsk::Part(range),
        Err(_) => RangeAsk::Unsatisfiable,
    }
}

fn content_type(meta: &FileMeta) -> String {
    meta.content_type
        .as_deref()
        .map(str::trim)
        .filter(|t| {
            !t.is_empty()
                && t.contains('/')
                && t.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
                && HeaderValue::from_str(t).is_ok()
        })
        .unwrap_or("application/octet-stream")
        .to_owned()
}

/// Whether a browser may show this type in place: it cannot run script.
fn shown_inline(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "image/png"
            | "image/jpeg"
            | "image/gif"
            | "image/webp"
            | "image/avif"
            | "application/pdf"
            | "text/plain"
    ) || essence.starts_with("audio/")
        || essence.starts_with("video/")
}

/// `Content-Disposition` for a file name from a user: an ASCII fallback in `filename` (no
/// quotes, backslashes, separators or control characters) and the name itself, percent-encoded
/// as UTF-8, in `filename*` (RFC 6266 / RFC 8187).
pub fn content_disposition(filename: &str, inline: bool) -> String {
    let cleaned: String = filename
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '/' | '\\') {
                '_'
            } else {
                c
            }
        })
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.');
    let cleaned = if cleaned.is_empty() {
        "download"
    } else {
        cleaned
    };
    let ascii: String = cleaned
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ' | '(' | ')') {
                c
            } else {
                '_'
            }
        })
        .take(150)
        .collect();
    let mut encoded = String::new();
    for b in cleaned.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let kind = if inline { "inline" } else { "attachment" };
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(
            parse_range("bytes=0-0", 10),
            RangeAsk::Part(ByteRange::new(0, 1))
        );
        assert_eq!(
            parse_range("bytes=2-", 10),
            RangeAsk::Part(ByteRange::from(2))
        );
        assert_eq!(
            parse_range("bytes=-3", 10),
            RangeAsk::Part(ByteRange::from(7))
        );
        assert_eq!(
            parse_range("bytes=-30", 10),
            RangeAsk::Part(ByteRange::from(0))
        );
        assert_eq!(
            parse_range("bytes=5-100", 10),
            RangeAsk::Part(ByteRange::new(5, 101))
        );
        assert_eq!(parse_range("bytes=10-", 10), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 10), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,4-5", 10), RangeAsk::Whole);
        assert_eq!(parse_range("bytes=5-2", 10), RangeAsk::Whole);
        assert_eq!(parse_range("items=0-1", 10), RangeAsk::Whole);
        assert_eq!(parse_range("bytes=+1-2", 10), RangeAsk::Whole);
    }

    #[test]
    fn file_names_are_made_safe() {
        assert_eq!(
            content_disposition("report.pdf", true),
            "inline; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
        let d = content_disposition("../a\"b\r\nX: y/Ünï.txt", false);
        assert!(d.starts_with("attachment; filename=\"_a_b__X_ y_"), "{d}");
        assert!(!d.contains('\r') && !d.contains('\n'));
        assert!(
            d.contains("filename*=UTF-8''_a%22b__X%3A%20y_%C3%9Cn%C3%AF.txt"),
            "{d}"
        );
        assert!(content_disposition("", false).contains("filename=\"download\""));
        assert!(!shown_inline("text/html"));
        assert!(!shown_inline("image/svg+xml"));
        assert!(shown_inline("video/mp4"));
    }
}
