//! Words and sentences by Unicode's rules (UAX #29), stop words of the products' languages
//! (English, French, Spanish), and a token estimate.

use unicode_segmentation::UnicodeSegmentation;

/// The words of `text`, lowercased (letters and digits; punctuation dropped).
pub fn words(text: &str) -> Vec<String> {
    text.unicode_words().map(str::to_lowercase).collect()
}

/// The words that carry meaning: no stop words, no single letters.
pub fn content_words(text: &str) -> Vec<String> {
    words(text).into_iter().filter(|w| is_content(w)).collect()
}

/// Whether a lowercased word carries meaning.
pub fn is_content(word: &str) -> bool {
    (word.chars().count() > 1 || word.chars().all(|c| c.is_ascii_digit()))
        && STOP_WORDS.binary_search(&word).is_err()
}

/// A word's stem for matching across inflections: its first six characters (enough to tell
/// apart most words, short enough to match `refund`, `refunds` and `refunded`).
pub fn stem(word: &str) -> String {
    word.chars().take(6).collect()
}

/// Sentences of `text` as byte ranges, trimmed, each holding at least one word. Line breaks
/// between paragraphs end a sentence too (headings and list items have no full stop).
pub fn sentences(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for (start, sentence) in text.split_sentence_bound_indices() {
        // UAX #29 does not end a sentence at a blank line; a paragraph break does.
        let mut offset = 0;
        for part in sentence.split("\n\n") {
            push_trimmed(&mut out, text, start + offset, part);
            offset += part.len() + 2;
        }
    }
    out
}

fn push_trimmed(out: &mut Vec<(usize, usize)>, text: &str, start: usize, part: &str) {
    let lead = part.len() - part.trim_start().len();
    let trimmed = part.trim();
    if trimmed.is_empty() || trimmed.unicode_words().next().is_none() {
        return;
    }
    let begin = start + lead;
    debug_assert!(text.is_char_boundary(begin));
    out.push((begin, begin + trimmed.len()));
}

/// Tokens an OpenAI-style tokenizer would count, estimated (about four characters each, at
/// least one per word): what usage reports for the local model.
pub fn estimate_tokens(text: &str) -> u64 {
    let words = text.unicode_words().count() as u64;
    let chars = text.chars().count() as u64;
    words.max(chars.div_ceil(4))
}

/// Stop words of English, French and Spanish, sorted (for binary search).
static STOP_WORDS: &[&str] = &[
    "a", "about", "after", "al", "all", "also", "am", "an", "and", "any", "are", "as", "at", "au",
    "aux", "be", "been", "before", "but", "by", "can", "ce", "ces", "cette", "como", "con",
    "could", "dans", "de", "del", "des", "did", "do", "does", "du", "el", "elle", "en", "es",
    "est", "et", "for", "from", "had", "has", "have", "he", "her", "his", "how", "i", "if", "il",
    "in", "into", "is", "it", "its", "je", "la", "las", "le", "les", "leur", "lo", "los", "mais",
    "may", "me", "my", "nous", "of", "on", "or", "ou", "our", "par", "para", "pas", "por", "pour",
    "qu", "que", "qui", "se", "she", "should", "so", "son", "sur", "than", "that", "the", "their",
    "them", "then", "there", "these", "they", "this", "those", "to", "un", "una", "une", "uno",
    "us", "vous", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom",
    "why", "will", "with", "would", "y", "you", "your",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_words_are_sorted() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]), "{STOP_WORDS:?}");
    }

    #[test]
    fn sentences_and_paragraphs() {
        let text = "# Refunds\n\nRefunds take 5 days. Ask support!\n\n- item one";
        let got: Vec<&str> = sentences(text).iter().map(|&(a, b)| &text[a..b]).collect();
        assert_eq!(
            got,
            [
                "# Refunds",
                "Refunds take 5 days.",
                "Ask support!",
                "- item one"
            ]
        );
        assert_eq!(
            content_words("The café's prices, in 2024!"),
            ["café's", "prices", "2024"]
        );
    }
}
