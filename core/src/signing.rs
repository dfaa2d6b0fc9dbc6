//! Signed download links for files kept in local storage (memory, SQLite/PostgreSQL's upload
//! folder): `{CHATSTORE_PUBLIC_URL}/files/{id}?exp={epoch seconds}&sig={hex}`, where `sig` is
//! HMAC-SHA256 over the id and the expiry. The download proxy (`chatstore bridge`) verifies them
//! with the same key, so a link made by one replica works on every replica sharing the key.
//!
//! | setting | variable |
//! |---|---|
//! | signing key | `CHATSTORE_SIGNING_KEY`, else Open WebUI's `WEBUI_SECRET_KEY` |
//! | where the proxy is reachable | `CHATSTORE_PUBLIC_URL` (e.g. `https://chat.example.com`) |

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::files::hex;
use crate::{Error, Result, validate};

type HmacSha256 = Hmac<Sha256>;

/// The longest a signed link may live.
pub const MAX_URL_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// A link that downloads a file without further credentials, and when it stops working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedUrl {
    /// The URL.
    pub url: String,
    /// Epoch seconds after which it is refused.
    pub expires_at: i64,
}

/// Why a signed link was refused (the proxy answers 403 whatever the reason; this is for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `exp` or `sig`, or not in their form.
    Malformed,
    /// The expiry has passed.
    Expired,
    /// The signature does not match the id and expiry.
    BadSignature,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::Malformed => "malformed signature",
            Refusal::Expired => "expired link",
            Refusal::BadSignature => "bad signature",
        })
    }
}

/// Signs and verifies download links with one secret key.
#[derive(Clone)]
pub struct UrlSigner {
    keyed: HmacSha256,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlSigner { key: <secret> }")
    }
}

impl UrlSigner {
    /// A signer with this key; `InvalidInput` when it is shorter than 16 bytes.
    pub fn new(key: impl AsRef<[u8]>) -> Result<Self> {
        let key = key.as_ref();
        if key.len() < 16 {
            return Err(Error::invalid(
                "the signing key must be at least 16 bytes; set CHATSTORE_SIGNING_KEY \
                 (or WEBUI_SECRET_KEY) to a long random string",
            ));
        }
        let keyed = HmacSha256::new_from_slice(key)
            .map_err(|_| Error::invalid("the signing key cannot key HMAC-SHA256"))?;
        Ok(UrlSigner { keyed })
    }

    /// The key from `CHATSTORE_SIGNING_KEY`, else `WEBUI_SECRET_KEY`; `None` when neither is set.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        ["CHATSTORE_SIGNING_KEY", "WEBUI_SECRET_KEY"]
            .iter()
            .find_map(|n| lookup(n).filter(|v| !v.is_empty()))
            .map(UrlSigner::new)
            .transpose()
    }

    fn mac(&self, id: &str, expires_at: i64) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(b"chatstore-file\n");
        mac.update(id.as_bytes());
        mac.update(b"\n");
        mac.update(expires_at.to_string().as_bytes());
        mac
    }

    /// The signature (hex) of `id` valid until `expires_at`.
    pub fn sign(&self, id: &str, expires_at: i64) -> String {
        hex(&self.mac(id, expires_at).finalize().into_bytes())
    }

    /// Checks a link's `exp` and `sig` query values for `id` at time `now`, the signature in
    /// constant time.
    pub fn verify(
        &self,
        id: &str,
        exp: Option<&str>,
        sig: Option<&str>,
        now: i64,
    ) -> std::result::Result<(), Refusal> {
        let exp: i64 = exp.and_then(|e| e.parse().ok()).ok_or(Refusal::Malformed)?;
        let sig = sig.and_then(unhex).ok_or(Refusal::Malformed)?;
        // Check the signature first so that an expired link and a forged one take the same time.
        let valid = self.mac(id, exp).verify_slice(&sig).is_ok();
        if !valid {
            return Err(Refusal::BadSignature);
        }
        if exp < now {
            return Err(Refusal::Expired);
        }
        Ok(())
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Local storage's link maker: where the proxy is reachable and the key it verifies with.
#[derive(Debug, Clone)]
pub struct LocalUrls {
    /// Base URL of the download proxy (`CHATSTORE_PUBLIC_URL`), without a trailing `/`.
    pub public_url: String,
    /// The signer.
    pub signer: UrlSigner,
}

impl LocalUrls {
    /// From a base URL and a signer.
    pub fn new(public_url: impl Into<String>, signer: UrlSigner) -> Self {
        LocalUrls {
            public_url: public_url.into().trim_end_matches('/').to_owned(),
            signer,
        }
    }

    /// From `CHATSTORE_PUBLIC_URL` and the signing key variables; `None` when either is unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let Some(signer) = UrlSigner::from_lookup(&lookup)? else {
            return Ok(None);
        };
        Ok(lookup("CHATSTORE_PUBLIC_URL")
            .filter(|u| !u.trim().is_empty())
            .map(|u| LocalUrls::new(u.trim(), signer)))
    }

    /// From the process environment.
    pub fn from_env() -> Result<Option<Self>> {
        LocalUrls::from_lookup(|n| std::env::var(n).ok())
    }

    /// A link to file `id` valid for `ttl` from now.
    pub fn url(&self, id: &str, ttl: Duration) -> Result<SignedUrl> {
        validate_ttl(ttl)?;
        let expires_at = validate::now().saturating_add(ttl.as_secs() as i64);
        Ok(SignedUrl {
            url: format!(
                "{}/files/{}?exp={expires_at}&sig={}",
                self.public_url,
                url_segment(id),
                self.signer.sign(id, expires_at)
            ),
            expires_at,
        })
    }
}

/// The `download_url` of a local backend: a proxy link when `urls` (else the environment)
/// configures one, `Unsupported` otherwise (never an unsigned link).
pub fn local_download_url(
    backend: &'static str,
    urls: Option<&LocalUrls>,
    id: &str,
    ttl: Duration,
) -> Result<SignedUrl> {
    validate_ttl(ttl)?;
    match urls {
        Some(urls) => urls.url(id, ttl),
        None => match LocalUrls::from_env()? {
            Some(urls) => urls.url(id, ttl),
            None => Err(Error::unsupported(
                backend,
                "files.download_url without CHATSTORE_PUBLIC_URL and CHATSTORE_SIGNING_KEY",
            )),
        },
    }
}

/// A link's lifetime: at least a second, at most [`MAX_URL_TTL`].
pub fn validate_ttl(ttl: Duration) -> Result<()> {
    if ttl.as_secs() == 0 || ttl > MAX_URL_TTL {
        return Err(Error::invalid(format!(
            "a download link lives from 1 s to {} s, not {} s",
            MAX_URL_TTL.as_secs(),
            ttl.as_secs_f64()
        )));
    }
    Ok(())
}

/// A path segment with everything but unreserved characters percent-encoded.
pub fn url_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123";

    #[test]
    fn a_signature_verifies_until_expiry_and_only_for_its_id() {
        let s = UrlSigner::new(KEY).expect("key");
        let sig = s.sign("f1", 1000);
        assert_eq!(s.verify("f1", Some("1000"), Some(&sig), 999), Ok(()));
        assert_eq!(
            s.verify("f1", Some("1000"), Some(&sig), 1001),
            Err(Refusal::Expired)
        );
        assert_eq!(
            s.verify("f2", Some("1000"), Some(&sig), 999),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            s.verify("f1", Some("2000"), Some(&sig), 999),
            Err(Refusal::BadSignature)
        );
        let mut forged = sig.clone().into_bytes();
        forged[0] = if forged[0] == b'0' { b'1' } else { b'0' };
        let forged = String::from_utf8(forged).expect("ascii");
        assert_eq!(
            s.verify("f1", Some("1000"), Some(&forged), 999),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            s.verify("f1", None, Some(&sig), 999),
            Err(Refusal::Malformed)
        );
        assert_eq!(
            s.verify("f1", Some("1000"), Some("zz"), 999),
            Err(Refusal::Malformed)
        );
        let other = UrlSigner::new("another key of 16+ bytes").expect("key");
        assert_eq!(
            other.verify("f1", Some("1000"), Some(&sig), 999),
            Err(Refusal::BadSignature)
        );
    }

    #[test]
    fn keys_come_from_chatstore_then_open_webui_and_must_be_long() {
        let lookup = |n: &str| (n == "WEBUI_SECRET_KEY").then(|| KEY.to_owned());
        assert!(UrlSigner::from_lookup(lookup).expect("ok").is_some());
        assert!(UrlSigner::from_lookup(|_| None).expect("ok").is_none());
        assert!(UrlSigner::new("short").is_err());
    }

    #[test]
    fn links_point_at_the_proxy() {
        let urls = LocalUrls::new("http://h:1/", UrlSigner::new(KEY).expect("key"));
        let link = urls.url("f-1", Duration::from_secs(60)).expect("url");
        assert!(link.url.starts_with("http://h:1/files/f-1?exp="));
        assert!(urls.url("f", Duration::ZERO).is_err());
    }
}
