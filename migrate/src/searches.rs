//! Verification beyond content: the same searches give the same neighbours on both stores.
//!
//! Equal records do not prove that the target *searches* like the source (a wrong distance, a
//! lost filter or a truncated vector would hide there). For a sample of each collection's own
//! vectors, both stores are asked for the top `k` neighbours, and the target's list must be
//! the source's, give or take what the source's own index missed:
//! - a neighbour both return has the same distance in both;
//! - at every rank the target's neighbour is no further than the source's;
//! - every neighbour of the source closer than the target's last one is in the target's list
//!   (ids tied with the last distance may differ: either store may cut a tie differently);
//! - the lists share at least half their neighbours.
//!
//! The target may name closer neighbours the source did not: a source searched through an
//! approximate index (Chroma's HNSW, even asked for every record of a collection, does not
//! reach records its graph does not link to) misses some. Those are counted
//! ([`SearchReport::source_missed`]), not held against the copy. A target that computes
//! distances wrongly disagrees on the neighbours both name; one that answers with records
//! unrelated to the query shares too few of them.

use std::collections::HashMap;

use chatstore_core::compare::{HALF_DISTANCE_TOLERANCE, Precision};
use chatstore_core::{Result, SearchHit, Store};
use serde::{Deserialize, Serialize};

/// Two distances closer than this are a tie (f32 storage and two distance implementations);
/// with a side keeping vectors in half precision,
/// [`HALF_DISTANCE_TOLERANCE`](chatstore_core::compare::HALF_DISTANCE_TOLERANCE).
const TIE: f64 = 1e-5;

/// What the search comparison found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchReport {
    /// Collections compared.
    pub collections: u64,
    /// Queries run on each side.
    pub queries: u64,
    /// Queries whose neighbours differ, as `collection: query id: what differs` (at most 50).
    pub disagreements: Vec<String>,
    /// How many queries disagreed.
    pub disagreeing: u64,
    /// Neighbours the target found closer than the source's last one that the source's own
    /// search did not return (an approximate index on the source's side), over every query.
    #[serde(default)]
    pub source_missed: u64,
}

impl SearchReport {
    /// Whether every query agreed.
    pub fn agrees(&self) -> bool {
        self.disagreeing == 0
    }
}

/// Why two top-k lists disagree, or `None` when they agree (see the module's rules), distances
/// closer than `tie` being equal.
pub fn compare_hits(source: &[SearchHit], target: &[SearchHit], tie: f64) -> Option<String> {
    if source.len() != target.len() {
        return Some(format!(
            "{} neighbours in the source, {} in the target",
            source.len(),
            target.len()
        ));
    }
    let in_target: HashMap<&str, f64> =
        target.iter().map(|h| (h.id.as_str(), h.distance)).collect();
    let mut shared = 0;
    for s in source {
        if let Some(&t) = in_target.get(s.id.as_str()) {
            shared += 1;
            if (s.distance - t).abs() > tie {
                return Some(format!(
                    "neighbour {}: distance {} in the source, {t} in the target",
                    s.id, s.distance
                ));
            }
        }
    }
    for (i, (s, t)) in source.iter().zip(target).enumerate() {
        if t.distance > s.distance + tie {
            return Some(format!(
                "neighbour {i}: distance {} in the source, {} in the target",
                s.distance, t.distance
            ));
        }
    }
    let cut = target.last().map(|h| h.distance)?;
    if let Some(lost) = source
        .iter()
        .find(|s| s.distance < cut - tie && !in_target.contains_key(s.id.as_str()))
    {
        return Some(format!(
            "neighbour {} at distance {} in the source is not among the target's",
            lost.id, lost.distance
        ));
    }
    (2 * shared < source.len())
        .then(|| format!("the lists share {shared} of {} neighbours", source.len()))
}

/// How many of the target's neighbours, closer than the source's last one, the source did not
/// return.
fn missed_by_source(source: &[SearchHit], target: &[SearchHit], tie: f64) -> u64 {
    let Some(cut) = source.last().map(|h| h.distance) else {
        return 0;
    };
    target
        .iter()
        .filter(|t| t.distance < cut - tie && !source.iter().any(|s| s.id == t.id))
        .count() as u64
}

/// Runs `per_collection` searches (`k` neighbours each) in every collection of the source, on
/// both stores, with vectors sampled evenly from the collection's first page of items.
pub async fn compare_searches(
    source: &Store,
    target: &Store,
    per_collection: usize,
    k: u32,
) -> Result<SearchReport> {
    let mut report = SearchReport::default();
    let tie = match Precision::between(&source.capabilities(), &target.capabilities()) {
        Precision::Float => TIE,
        Precision::HalfVectors => HALF_DISTANCE_TOLERANCE,
    };
    for collection in source.vectors.collections().await? {
        report.collections += 1;
        let page = source.vectors.scan(&collection, None, 1_000).await?;
        if page.is_empty() || per_collection == 0 {
            continue;
        }
        let step = (page.len() / per_collection).max(1);
        for item in page.iter().step_by(step).take(per_collection) {
            let query = std::slice::from_ref(&item.vector);
            let s = source.vectors.search(&collection, query, None, k).await?;
            let t = target.vectors.search(&collection, query, None, k).await?;
            report.queries += 1;
            let (s, t) = (
                s.first().map_or(&[][..], |v| v),
                t.first().map_or(&[][..], |v| v),
            );
            report.source_missed += missed_by_source(s, t, tie);
            if let Some(why) = compare_hits(s, t, tie) {
                report.disagreeing += 1;
                if report.disagreements.len() < 50 {
                    report
                        .disagreements
                        .push(format!("{collection}: query {}: {why}", item.id));
                }
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn hit(id: &str, distance: f64) -> SearchHit {
        SearchHit {
            id: id.into(),
            text: String::new(),
            metadata: Map::new(),
            distance,
            score: (2.0 - distance) / 2.0,
        }
    }

    #[test]
    fn ties_at_the_cut_may_differ_but_nothing_else() {
        let s = [hit("a", 0.0), hit("b", 0.2), hit("c", 0.5)];
        assert!(compare_hits(&s, &[hit("a", 0.0), hit("b", 0.2), hit("d", 0.5)], TIE).is_none());
        assert!(compare_hits(&s, &[hit("a", 0.0), hit("x", 0.2), hit("c", 0.5)], TIE).is_some());
        assert!(compare_hits(&s, &[hit("a", 0.0), hit("b", 0.3), hit("c", 0.5)], TIE).is_some());
        assert!(compare_hits(&s, &s[..2], TIE).is_some());
    }

    #[test]
    fn neighbours_the_source_missed_are_not_held_against_the_target() {
        // The source's index missed "x", the true second neighbour.
        let s = [hit("a", 0.0), hit("b", 0.2), hit("c", 0.5)];
        let t = [hit("a", 0.0), hit("x", 0.1), hit("b", 0.2)];
        assert!(compare_hits(&s, &t, TIE).is_none());
        assert_eq!(missed_by_source(&s, &t, TIE), 1);
        // A shared neighbour at another distance is a difference, wherever it ranks.
        let t = [hit("a", 0.0), hit("x", 0.1), hit("b", 0.25)];
        assert!(compare_hits(&s, &t, TIE).is_some());
        // So is a target whose distances are all too small (a wrong metric)...
        let t = [hit("a", 0.0), hit("b", 0.0), hit("c", 0.0)];
        assert!(compare_hits(&s, &t, TIE).is_some());
        // ...and one naming unrelated records, even close ones.
        let t = [hit("a", 0.0), hit("y", 0.0), hit("z", 0.0)];
        assert!(compare_hits(&s, &t, TIE).is_some());
        assert_eq!(missed_by_source(&s, &s, TIE), 0);
    }
}
