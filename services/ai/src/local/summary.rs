//! Extractive summaries by TextRank: sentences are the nodes of a graph weighted by the
//! cosine of their TF-IDF vectors; PageRank (damping 0.85) ranks them; the best are kept in
//! the order the text has them. Nothing is written that the text does not say.

use std::collections::HashMap;

use super::text;

/// The model's name, as responses report it.
pub const MODEL: &str = "textrank";

/// Sentences ranked at most (a longer text is summarized from its first ones: the graph is
/// quadratic in sentences, and 400 keep a summary well under a second).
const MAX_SENTENCES: usize = 400;

/// The `max_sentences` sentences of `input` that best stand for it, in their order, with
/// their byte ranges.
pub fn summarize(input: &str, max_sentences: usize) -> Vec<(usize, usize)> {
    let mut spans = text::sentences(input);
    spans.truncate(MAX_SENTENCES);
    if spans.len() <= max_sentences {
        return spans;
    }
    let bags: Vec<HashMap<String, f32>> = spans
        .iter()
        .map(|&(a, b)| {
            let mut bag = HashMap::new();
            for w in text::content_words(&input[a..b]) {
                *bag.entry(text::stem(&w)).or_default() += 1.0;
            }
            bag
        })
        .collect();
    let vectors = tf_idf(&bags);
    let n = vectors.len();
    let mut weights = vec![vec![0f32; n]; n];
    for i in 0..n {
        for j in (i + 1)..n {
            let w = cosine(&vectors[i], &vectors[j]);
            weights[i][j] = w;
            weights[j][i] = w;
        }
    }
    let ranks = pagerank(&weights);
    let mut order: Vec<usize> = (0..n).collect();
    // Best first; ties go to the earlier sentence.
    order.sort_by(|&a, &b| ranks[b].total_cmp(&ranks[a]).then(a.cmp(&b)));
    let mut kept: Vec<usize> = order.into_iter().take(max_sentences).collect();
    kept.sort_unstable();
    kept.into_iter().map(|i| spans[i]).collect()
}

fn tf_idf(bags: &[HashMap<String, f32>]) -> Vec<HashMap<String, f32>> {
    let mut df: HashMap<&str, f32> = HashMap::new();
    for bag in bags {
        for term in bag.keys() {
            *df.entry(term).or_default() += 1.0;
        }
    }
    let n = bags.len() as f32;
    bags.iter()
        .map(|bag| {
            let mut v: HashMap<String, f32> = bag
                .iter()
                .map(|(t, tf)| {
                    (
                        t.clone(),
                        (1.0 + tf.ln()) * (1.0 + (n / df[t.as_str()]).ln()),
                    )
                })
                .collect();
            let norm = v.values().map(|x| x * x).sum::<f32>().sqrt();
            if norm > 0.0 {
                v.values_mut().for_each(|x| *x /= norm);
            }
            v
        })
        .collect()
}

fn cosine(a: &HashMap<String, f32>, b: &HashMap<String, f32>) -> f32 {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    small
        .iter()
        .filter_map(|(t, x)| large.get(t).map(|y| x * y))
        .sum()
}

/// Weighted PageRank, iterated until it settles (or 100 rounds).
fn pagerank(weights: &[Vec<f32>]) -> Vec<f32> {
    const DAMPING: f32 = 0.85;
    let n = weights.len();
    let out: Vec<f32> = weights.iter().map(|row| row.iter().sum()).collect();
    let mut rank = vec![1.0 / n as f32; n];
    for _ in 0..100 {
        let mut next = vec![(1.0 - DAMPING) / n as f32; n];
        for (j, row) in weights.iter().enumerate() {
            if out[j] == 0.0 {
                // A sentence sharing nothing gives its rank to all alike.
                next.iter_mut()
                    .for_each(|r| *r += DAMPING * rank[j] / n as f32);
                continue;
            }
            for (i, w) in row.iter().enumerate() {
                if *w > 0.0 {
                    next[i] += DAMPING * rank[j] * w / out[j];
                }
            }
        }
        let delta: f32 = next.iter().zip(&rank).map(|(a, b)| (a - b).abs()).sum();
        rank = next;
        if delta < 1e-6 {
            break;
        }
    }
    rank
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_central_sentences_in_order() {
        let text = "The fibre outage hit the north zone on Monday. \
            Technicians restored fibre in the north zone by Tuesday. \
            A cat was seen on the roof. \
            The north zone fibre outage affected 300 customers.";
        let got: Vec<&str> = summarize(text, 2)
            .iter()
            .map(|&(a, b)| &text[a..b])
            .collect();
        assert_eq!(got.len(), 2);
        assert!(!got.iter().any(|s| s.contains("cat")), "{got:?}");
        let short = "Only one sentence.";
        assert_eq!(summarize(short, 3), vec![(0, short.len())]);
    }
}
