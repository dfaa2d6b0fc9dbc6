//! Verification beyond content: the same searches give the same neighbours on both stores.
//!
//! Equal records do not prove that the target *searches* like the source (a wrong distance, a
//! lost filter or a truncated vector would hide there). For a sample of each collection's own
//! vectors, both stores are asked for the top `k` neighbours; the lists must agree position by
//! position in distance, and in ids wherever the distance separates them (ids tied with the
//! last distance may differ: either store may cut a tie differently).

use chatstore_core::{Result, SearchHit, Store};
use serde::{Deserialize, Serialize};

/// Two distances closer than this are a tie (f32 storage and two distance implementations).
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
}

impl SearchReport {
    /// Whether every query agreed.
    pub fn agrees(&self) -> bool {
        self.disagreeing == 0
    }
}

/// Why two top-k lists disagree, or `None` when they agree (ties at the cut aside).
pub fn compare_hits(source: &[SearchHit], target: &[SearchHit]) -> Option<String> {
    if source.len() != target.len() {
        return Some(format!(
            "{} neighbours in the source, {} in the target",
            source.len(),
            target.len()
        ));
    }
    for (i, (s, t)) in source.iter().zip(target).enumerate() {
        if (s.distance - t.distance).abs() > TIE {
            return Some(format!(
                "neighbour {i}: distance {} in the source, {} in the target",
                s.distance, t.distance
            ));
        }
    }
    let cut = source.last().map(|h| h.distance)?;
    let inside = |hits: &[SearchHit]| -> Vec<String> {
        let mut ids: Vec<String> = hits
            .iter()
            .filter(|h| h.distance < cut - TIE)
            .map(|h| h.id.clone())
            .collect();
        ids.sort_unstable();
        ids
    };
    let (a, b) = (inside(source), inside(target));
    (a != b).then(|| format!("neighbours {a:?} in the source, {b:?} in the target"))
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
            if let Some(why) = compare_hits(s, t) {
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
        assert!(compare_hits(&s, &[hit("a", 0.0), hit("b", 0.2), hit("d", 0.5)]).is_none());
        assert!(compare_hits(&s, &[hit("a", 0.0), hit("x", 0.2), hit("c", 0.5)]).is_some());
        assert!(compare_hits(&s, &[hit("a", 0.0), hit("b", 0.3), hit("c", 0.5)]).is_some());
        assert!(compare_hits(&s, &s[..2]).is_some());
    }
}
