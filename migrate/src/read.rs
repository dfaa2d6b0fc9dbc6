//! Reading the source page by page: keyset scans by id, with records the source cannot decode
//! (invalid JSON in a row) found by id and reported one by one instead of failing the page.

use std::future::Future;
use std::time::Duration;

use chatstore_core::{Error, ErrorKind, Result};

/// How often a call that failed with a retryable error (`Unavailable`) is tried in all.
pub const ATTEMPTS: u32 = 5;

/// Runs `call` until it succeeds, fails with an error that is not retryable, or has failed
/// [`ATTEMPTS`] times (waiting 0.2 s, 0.4 s, 0.8 s, 1.6 s between tries).
pub async fn retrying<T, F, Fut>(what: &str, mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut delay = Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        match call().await {
            Err(e) if e.is_retryable() && attempt < ATTEMPTS => {
                tracing::warn!(%what, attempt, error = %e, "retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(e) if e.is_retryable() => {
                return Err(Error::Unavailable {
                    message: format!("{what}: still failing after {ATTEMPTS} attempts: {e}"),
                    source: Some(Box::new(e)),
                });
            }
            other => return other,
        }
    }
}

/// One record of a source page: read, or its id with the error that kept it from being read.
/// An error of kind [`ErrorKind::NotFound`] means the record is gone: listed, then deleted
/// before it was read (a live source), and no longer listed ([`page`] asks again).
pub type Read<T> = std::result::Result<T, (String, Error)>;

/// Whether a read failed because its record was deleted from the source meanwhile.
pub fn gone<T>(read: &Read<T>) -> bool {
    matches!(read, Err((_, e)) if e.kind() == ErrorKind::NotFound)
}

/// A record read from the source, by its key in the source's order (a record's id; a tag's
/// owner and id).
pub(crate) trait Keyed {
    fn key(&self) -> String;
}

/// The key of a read, whether the record decoded or not.
pub(crate) fn read_key<T: Keyed>(r: &Read<T>) -> String {
    match r {
        Ok(t) => t.key(),
        Err((id, _)) => id.clone(),
    }
}

/// A page of records after `after`: the scan when it succeeds; when it fails for a reason other
/// than availability, the page's ids (read without decoding) and each record fetched alone, so
/// that one unreadable record costs only itself. A record listed but not found alone is gone
/// when the page's ids, asked again, no longer hold it (deleted meanwhile: kept as `NotFound`,
/// see [`Read`]); one still listed is unreadable (the source lists an id it cannot find).
pub async fn page<T, S, SFut, I, IFut, G, GFut>(
    what: &str,
    scan: S,
    scan_ids: I,
    get: G,
) -> Result<Vec<Read<T>>>
where
    S: Fn() -> SFut,
    SFut: Future<Output = Result<Vec<T>>>,
    I: Fn() -> IFut,
    IFut: Future<Output = Result<Vec<String>>>,
    G: Fn(String) -> GFut,
    GFut: Future<Output = Result<T>>,
{
    match retrying(what, &scan).await {
        Ok(items) => Ok(items.into_iter().map(Ok).collect()),
        Err(e) if e.is_retryable() => Err(e),
        Err(scan_error) => {
            tracing::warn!(%what, error = %scan_error, "a page could not be read whole; reading its records one by one");
            let ids = retrying(what, &scan_ids).await.map_err(|e| {
                Error::backend_msg(format!(
                    "{what}: the page could not be read ({scan_error}) nor its ids listed ({e})"
                ))
            })?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                match retrying(what, || get(id.clone())).await {
                    Ok(item) => out.push(Ok(item)),
                    Err(e) if e.is_retryable() => return Err(e),
                    Err(e) if e.kind() == ErrorKind::NotFound => {
                        let listed = retrying(what, &scan_ids).await?.contains(&id);
                        let e = if listed {
                            Error::backend_msg(format!(
                                "the source lists it but does not find it by its id: {e}"
                            ))
                        } else {
                            e
                        };
                        out.push(Err((id, e)));
                    }
                    Err(e) => out.push(Err((id, e))),
                }
            }
            Ok(out)
        }
    }
}
