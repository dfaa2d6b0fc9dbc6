//! The collection each vector id of a run went to, so that an id two source collections hold
//! (Chroma keeps ids unique per collection only; chatstore's stores, Open WebUI's
//! `document_chunk` among them, keep one id in one collection, and an upsert moves it) is
//! written once: the first collection in the walk's name order claims the id, and a later
//! collection's item with that id is set aside instead of moving it.
//!
//! The claims are kept in memory by an 8-byte digest of the id (sha256's first bytes: about 16
//! bytes an id, 160 MB for ten million) and appended to a file beside the state file
//! (`{state}.vector-ids`, 8 bytes an id), synced before every checkpoint that passes them, so a
//! resumed run knows the ids its earlier runs wrote. Two ids sharing a digest (odds of about
//! one in 10^13 for ten million ids) would set the later one aside, never move it.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use chatstore_core::{Error, Result};
use sha2::{Digest, Sha256};

/// The claims of a run's vector ids, and the file that keeps them across resumptions.
#[derive(Debug)]
pub(crate) struct Claims {
    path: PathBuf,
    names: Vec<String>,
    index: HashMap<String, u32>,
    by_id: HashMap<u64, u32>,
    /// Claims not yet in the file, by collection index, in claim order.
    pending: Vec<(u32, Vec<u64>)>,
}

/// The claims file beside the state file `state`.
pub(crate) fn path_beside(state: &Path) -> PathBuf {
    let mut name = state.as_os_str().to_owned();
    name.push(".vector-ids");
    PathBuf::from(name)
}

fn digest(id: &str) -> u64 {
    let hash = Sha256::digest(id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    u64::from_le_bytes(first)
}

impl Claims {
    /// The claims at `path`: none when `fresh` (the group starts over; an earlier file is
    /// removed), else those the file holds. A block cut short by a kill during a flush is
    /// ignored (its checkpoint was not saved, so the resumed run claims its ids again).
    pub fn open(path: PathBuf, fresh: bool) -> Result<Self> {
        let mut claims = Claims {
            path,
            names: Vec::new(),
            index: HashMap::new(),
            by_id: HashMap::new(),
            pending: Vec::new(),
        };
        let io = |e: std::io::Error, path: &Path| {
            Error::backend(format!("cannot read {}", path.display()), e)
        };
        if fresh {
            return match std::fs::remove_file(&claims.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e, &claims.path)),
                _ => Ok(claims),
            };
        }
        let mut bytes = Vec::new();
        match std::fs::File::open(&claims.path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes).map_err(|e| io(e, &claims.path))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(claims),
            Err(e) => return Err(io(e, &claims.path)),
        }
        let mut rest = bytes.as_slice();
        while let Some((name, ids, after)) = block(rest) {
            let at = claims.collection(name);
            for id in ids.chunks_exact(8) {
                let mut d = [0u8; 8];
                d.copy_from_slice(id);
                claims.by_id.entry(u64::from_le_bytes(d)).or_insert(at);
            }
            rest = after;
        }
        if !rest.is_empty() {
            // Cut off, so the next block is read from its start.
            let whole = (bytes.len() - rest.len()) as u64;
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&claims.path)
                .map_err(|e| io(e, &claims.path))?;
            f.set_len(whole).map_err(|e| io(e, &claims.path))?;
            f.sync_all().map_err(|e| io(e, &claims.path))?;
        }
        Ok(claims)
    }

    fn collection(&mut self, name: &str) -> u32 {
        if let Some(&at) = self.index.get(name) {
            return at;
        }
        let at = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(name.to_owned());
        self.index.insert(name.to_owned(), at);
        at
    }

    /// Claims `id` for `collection`: `None` when it is that collection's (claimed now or
    /// before), else the collection that claimed it first.
    pub fn claim(&mut self, collection: &str, id: &str) -> Option<&str> {
        let d = digest(id);
        let at = self.collection(collection);
        match self.by_id.get(&d) {
            Some(&held) if held == at => None,
            Some(&held) => self.names.get(held as usize).map(String::as_str),
            None => {
                self.by_id.insert(d, at);
                match self.pending.last_mut() {
                    Some((last, ids)) if *last == at => ids.push(d),
                    _ => self.pending.push((at, vec![d])),
                }
                None
            }
        }
    }

    /// The claims not yet in the file, encoded, and the file to append them to; `None` when
    /// there are none. [`append`] writes them.
    pub fn take_pending(&mut self) -> Option<(PathBuf, Vec<u8>)> {
        if self.pending.is_empty() {
            return None;
        }
        let mut out = Vec::new();
        for (at, ids) in self.pending.drain(..) {
            let name = self.names.get(at as usize).map_or("", String::as_str);
            out.extend_from_slice(&u32::try_from(name.len()).unwrap_or(0).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&u32::try_from(ids.len()).unwrap_or(0).to_le_bytes());
            for d in ids {
                out.extend_from_slice(&d.to_le_bytes());
            }
        }
        Some((self.path.clone(), out))
    }

    /// Appends the claims not yet in the file and syncs it.
    pub fn flush(&mut self) -> Result<()> {
        match self.take_pending() {
            Some((path, bytes)) => append(&path, &bytes),
            None => Ok(()),
        }
    }
}

/// Appends encoded claims to the file at `path` and syncs it.
pub(crate) fn append(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |e: std::io::Error| Error::backend(format!("cannot write {}", path.display()), e);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

/// The next whole block of `bytes`: a collection name, its ids' digests and what follows.
fn block(bytes: &[u8]) -> Option<(&str, &[u8], &[u8])> {
    let len = |b: &[u8]| -> Option<usize> {
        let mut n = [0u8; 4];
        n.copy_from_slice(b.get(..4)?);
        usize::try_from(u32::from_le_bytes(n)).ok()
    };
    let name_len = len(bytes)?;
    let rest = bytes.get(4..)?;
    let name = std::str::from_utf8(rest.get(..name_len)?).ok()?;
    let rest = rest.get(name_len..)?;
    let count = len(rest)?;
    let rest = rest.get(4..)?;
    let ids = rest.get(..count.checked_mul(8)?)?;
    Some((name, ids, rest.get(ids.len()..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Claims survive a reopening, a block cut short is ignored, and a fresh start forgets
    /// them.
    #[test]
    fn claims_survive_a_resumption_and_a_cut_block_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json.vector-ids");
        let mut claims = Claims::open(path.clone(), true).expect("open");
        assert_eq!(claims.claim("a", "x"), None);
        assert_eq!(claims.claim("a", "y"), None);
        assert_eq!(claims.claim("b", "x"), Some("a"));
        assert_eq!(claims.claim("a", "x"), None);
        claims.flush().expect("flush");
        assert_eq!(claims.claim("b", "z"), None);
        claims.flush().expect("flush");
        // A kill during a flush leaves half a block.
        append(&path, &[3, 0, 0, 0, b'c']).expect("cut");

        let mut again = Claims::open(path.clone(), false).expect("reopen");
        assert_eq!(again.claim("b", "x"), Some("a"));
        assert_eq!(again.claim("c", "z"), Some("b"));
        assert_eq!(again.claim("a", "y"), None);
        assert_eq!(again.claim("c", "w"), None);
        again.flush().expect("flush after the cut");
        let mut third = Claims::open(path.clone(), false).expect("reopen");
        assert_eq!(third.claim("d", "w"), Some("c"));
        assert_eq!(third.claim("d", "x"), Some("a"));
        let mut fresh = Claims::open(path, true).expect("fresh");
        assert_eq!(fresh.claim("b", "x"), None);
    }
}
