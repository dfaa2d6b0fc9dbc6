//! Rollout phases: where a model group's reads and writes go.

use std::fmt;
use std::str::FromStr;

use chatstore_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// The rollout phase of one model group.
///
/// | phase | writes | reads | decides the caller's result |
/// |---|---|---|---|
/// | `old` | old | old | old |
/// | `dual` | old + new | old | old |
/// | `shadow` | old + new | old, and new in the background, compared | old |
/// | `new` | old + new | new | old (writes) / new (reads) |
/// | `new-only` | new | new | new |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Only the old store.
    Old,
    /// Writes to both (old authoritative), reads from old.
    Dual,
    /// Dual, plus reads also run on the new store and are compared.
    Shadow,
    /// Writes to both (old still authoritative, for backout), reads from new.
    New,
    /// Only the new store.
    NewOnly,
}

impl Phase {
    /// Every phase, in rollout order.
    pub const ALL: [Phase; 5] = [
        Phase::Old,
        Phase::Dual,
        Phase::Shadow,
        Phase::New,
        Phase::NewOnly,
    ];

    /// The name used in configuration: `old`, `dual`, `shadow`, `new`, `new-only`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Old => "old",
            Phase::Dual => "dual",
            Phase::Shadow => "shadow",
            Phase::New => "new",
            Phase::NewOnly => "new-only",
        }
    }

    /// Whether writes go to both stores.
    pub fn writes_both(self) -> bool {
        matches!(self, Phase::Dual | Phase::Shadow | Phase::New)
    }

    /// Whether reads are answered by the new store.
    pub fn reads_new(self) -> bool {
        matches!(self, Phase::New | Phase::NewOnly)
    }

    /// Whether the phase needs a new store.
    pub fn needs_new(self) -> bool {
        self != Phase::Old
    }

    pub(crate) fn to_u8(self) -> u8 {
        self as u8
    }

    pub(crate) fn from_u8(n: u8) -> Phase {
        Phase::ALL
            .get(usize::from(n))
            .copied()
            .unwrap_or(Phase::Old)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Phase {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let name = s.trim().to_ascii_lowercase().replace('_', "-");
        Phase::ALL
            .into_iter()
            .find(|p| p.as_str() == name)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown phase {s:?}: use one of old, dual, shadow, new, new-only"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_round_trip_through_their_names() {
        for phase in Phase::ALL {
            assert_eq!(phase.as_str().parse::<Phase>().expect("own name"), phase);
            assert_eq!(Phase::from_u8(phase.to_u8()), phase);
        }
        assert_eq!("NEW_ONLY".parse::<Phase>().expect("alias"), Phase::NewOnly);
        assert!("shadowed".parse::<Phase>().is_err());
    }
}
