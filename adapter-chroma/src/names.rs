//! chatstore collection names <-> Chroma collection names.
//!
//! Chroma accepts names of 3-512 characters from `[a-zA-Z0-9._-]` that start and end with a
//! letter or digit, have no `..` and are not an IPv4 address. Open WebUI's names (`file-{id}`,
//! knowledge ids, `user-memory-{id}`, `web-search-...`) all qualify and are used as they are, so
//! chatstore and Open WebUI see the same collections. Any other name (`kb`, `a b`, `été`) is
//! stored as `chatstore.{base64url(name)}.n` and decoded back when listed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const PREFIX: &str = "chatstore.";
const SUFFIX: &str = ".n";

/// Whether Chroma takes `name` as it is.
fn chroma_accepts(name: &str) -> bool {
    let bytes = name.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    (3..=512).contains(&bytes.len())
        && first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !name.contains("..")
        && !is_ipv4(name)
}

fn is_ipv4(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The Chroma name of a chatstore collection.
pub(crate) fn to_chroma(name: &str) -> String {
    if chroma_accepts(name) && !name.starts_with(PREFIX) {
        name.to_owned()
    } else {
        format!(
            "{PREFIX}{}{SUFFIX}",
            URL_SAFE_NO_PAD.encode(name.as_bytes())
        )
    }
}

/// The chatstore name of a Chroma collection.
pub(crate) fn from_chroma(name: &str) -> String {
    name.strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_suffix(SUFFIX))
        .and_then(|encoded| URL_SAFE_NO_PAD.decode(encoded).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_else(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_webui_names_stay_as_they_are() {
        for name in [
            "file-3f2a9c1e-0000-4000-8000-000000000001",
            "user-memory-42",
            "web-search-abc123",
            "0b1c5e7e-2f4e-4c55-9b1a-3a0d4c2b9e10",
        ] {
            assert_eq!(to_chroma(name), name);
            assert_eq!(from_chroma(name), name);
        }
    }

    #[test]
    fn other_names_round_trip_through_an_encoding() {
        for name in [
            "kb",
            "a b",
            "été",
            "-x-",
            "1.2.3.4",
            "a..b",
            "chatstore.kb.n",
            &"x".repeat(255),
        ] {
            let stored = to_chroma(name);
            assert!(chroma_accepts(&stored), "{stored} is a valid Chroma name");
            assert_eq!(from_chroma(&stored), name);
        }
    }
}
