//! A toy text embedding for the demo: hashed bag of words (feature hashing into a fixed number
//! of dimensions). It needs no model, and texts that share words come out close, which is
//! enough to show a vector search; real deployments bring their own embedding model.

/// The demo's embedding dimension.
pub const DIM: usize = 64;

/// Embeds `text`: each lower-cased word adds ±1 to one of [`DIM`] buckets chosen by its hash.
pub fn embed(text: &str) -> Vec<f32> {
    let mut v = vec![0.0f32; DIM];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 2)
        .map(str::to_lowercase)
    {
        let h = fnv1a(word.as_bytes());
        let bucket = (h % DIM as u64) as usize;
        let sign = if (h >> 32) & 1 == 0 { 1.0 } else { -1.0 };
        v[bucket] += sign;
    }
    if v.iter().all(|x| *x == 0.0) {
        v[0] = 1.0;
    }
    v
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatstore_core::vectors::cosine_distance;

    #[test]
    fn shared_words_are_closer_than_unrelated_text() {
        let a = embed("rust borrow checker lifetimes");
        let b = embed("lifetimes and the borrow checker");
        let c = embed("sourdough bread recipe");
        assert!(cosine_distance(&a, &b) < cosine_distance(&a, &c));
    }
}
