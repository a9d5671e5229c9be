//! Fact-checks that never invent a verdict: a claim is `supported` only by a sentence that
//! states it (most of its words, its numbers, the same polarity), `contradicted` only by a
//! sentence that states it otherwise (the same subject with another number, the opposite
//! polarity or an antonym), and `unverified` otherwise. Both verdicts cite the sentence.

use std::collections::HashSet;

use super::{
    answer::{Passage, Quote, Sentences, terms},
    text,
};

/// The model's name, as responses report it.
pub const MODEL: &str = "evidence-match";

/// Least share of a claim's subject a sentence must hold to speak about it.
const SAME_SUBJECT: f32 = 0.6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Supported,
    Contradicted,
    Unverified,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Supported => "supported",
            Self::Contradicted => "contradicted",
            Self::Unverified => "unverified",
        }
    }
}

/// A claim's verdict, the sentence behind it (none when unverified) and why.
#[derive(Debug, Clone)]
pub struct Check {
    pub verdict: Verdict,
    pub evidence: Option<Quote>,
    pub reason: String,
}

/// Pairs of words that say opposite things (by stem), English, French and Spanish.
static ANTONYMS: &[(&str, &str)] = &[
    ("increa", "decrea"),
    ("rise", "fall"),
    ("rose", "fell"),
    ("open", "closed"),
    ("before", "after"),
    ("more", "less"),
    ("higher", "lower"),
    ("up", "down"),
    ("win", "lose"),
    ("won", "lost"),
    ("allowe", "forbid"),
    ("true", "false"),
    ("always", "never"),
    ("accept", "reject"),
    ("includ", "exclud"),
    ("hausse", "baisse"),
    ("ouvert", "fermé"),
    ("gagné", "perdu"),
    ("aument", "dismin"),
    ("abiert", "cerrad"),
];

const NEGATORS: &[&str] = &[
    "not", "no", "never", "none", "neither", "nor", "ne", "pas", "jamais", "aucun", "nunca",
];

fn negations(input: &str) -> usize {
    text::words(input)
        .iter()
        .filter(|w| NEGATORS.contains(&w.as_str()) || w.ends_with("n't"))
        .count()
}

/// Numbers written as words, English, French and Spanish, with their value.
static NUMBER_WORDS: &[(&str, &str)] = &[
    ("zero", "0"),
    ("one", "1"),
    ("two", "2"),
    ("three", "3"),
    ("four", "4"),
    ("five", "5"),
    ("six", "6"),
    ("seven", "7"),
    ("eight", "8"),
    ("nine", "9"),
    ("ten", "10"),
    ("eleven", "11"),
    ("twelve", "12"),
    ("twenty", "20"),
    ("thirty", "30"),
    ("fifty", "50"),
    ("hundred", "100"),
    ("thousand", "1000"),
    ("deux", "2"),
    ("trois", "3"),
    ("quatre", "4"),
    ("cinq", "5"),
    ("sept", "7"),
    ("huit", "8"),
    ("neuf", "9"),
    ("dix", "10"),
    ("vingt", "20"),
    ("cent", "100"),
    ("mille", "1000"),
    ("dos", "2"),
    ("tres", "3"),
    ("cuatro", "4"),
    ("cinco", "5"),
    ("seis", "6"),
    ("siete", "7"),
    ("ocho", "8"),
    ("nueve", "9"),
    ("diez", "10"),
    ("veinte", "20"),
    ("cien", "100"),
    ("mil", "1000"),
];

/// The value of a word that is a number (`1,200` is 1200, `five` is 5).
fn number(word: &str) -> Option<String> {
    if word.chars().any(|c| c.is_ascii_digit()) {
        return Some(word.replace(',', ""));
    }
    NUMBER_WORDS
        .iter()
        .find(|(w, _)| *w == word || text::stem(w) == word)
        .map(|(_, v)| (*v).to_owned())
}

fn numbers(input: &str) -> HashSet<String> {
    text::words(input)
        .iter()
        .filter_map(|w| number(w))
        .collect()
}

fn antonym_of(stem: &str) -> Option<&'static str> {
    ANTONYMS.iter().find_map(|&(a, b)| {
        if stem == a {
            Some(b)
        } else if stem == b {
            Some(a)
        } else {
            None
        }
    })
}

/// Checks `claim` against the sentences of `passages`.
pub fn check(claim: &str, passages: &[Passage]) -> Check {
    let sentences = Sentences::new(passages);
    let all = terms(claim);
    let claim_numbers = numbers(claim);
    // The subject: the claim's words but its numbers and words with an opposite.
    let subject: HashSet<String> = all
        .iter()
        .filter(|t| number(t).is_none() && antonym_of(t).is_none())
        .cloned()
        .collect();
    if subject.is_empty() {
        return unverified("the claim names nothing to look for");
    }
    let claim_negated = negations(claim) % 2 == 1;
    for quote in sentences.covering(&subject) {
        if quote.coverage < SAME_SUBJECT {
            break;
        }
        let sentence = sentences.text(&quote);
        let stems = sentences.stems_of(&quote).cloned().unwrap_or_default();
        let sentence_numbers = numbers(sentence);
        if (negations(sentence) % 2 == 1) != claim_negated {
            return Check {
                verdict: Verdict::Contradicted,
                evidence: Some(quote),
                reason: "a passage says the opposite (one of the two is negated)".into(),
            };
        }
        if let Some(word) = all
            .iter()
            .find(|t| !stems.contains(*t) && antonym_of(t).is_some_and(|a| stems.contains(a)))
        {
            return Check {
                verdict: Verdict::Contradicted,
                evidence: Some(quote),
                reason: format!(
                    "a passage says `{}` where the claim says `{word}`",
                    antonym_of(word).unwrap_or_default()
                ),
            };
        }
        if !claim_numbers.is_empty() && !sentence_numbers.is_empty() {
            if claim_numbers.is_subset(&sentence_numbers) {
                return supported(quote);
            }
            if claim_numbers.is_disjoint(&sentence_numbers) {
                return Check {
                    verdict: Verdict::Contradicted,
                    evidence: Some(quote),
                    reason: "a passage gives another figure".into(),
                };
            }
            continue;
        }
        if claim_numbers.is_empty() {
            return supported(quote);
        }
        // The passage names no figure: it neither confirms nor denies the claim's.
    }
    unverified("no passage states or denies this claim")
}

fn supported(quote: Quote) -> Check {
    Check {
        verdict: Verdict::Supported,
        evidence: Some(quote),
        reason: "a passage states it".into(),
    }
}

fn unverified(reason: &str) -> Check {
    Check {
        verdict: Verdict::Unverified,
        evidence: None,
        reason: reason.into(),
    }
}

/// The claims of a text: its sentences with at least three content words that are not
/// questions (at most `max`).
pub fn claims(input: &str, max: usize) -> Vec<String> {
    text::sentences(input)
        .into_iter()
        .map(|(a, b)| input[a..b].to_owned())
        .filter(|s| !s.ends_with('?') && text::content_words(s).len() >= 3)
        .take(max)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(texts: &[&str]) -> Vec<Passage> {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| Passage {
                document_id: String::new(),
                chunk_id: i.to_string(),
                title: String::new(),
                text: (*t).into(),
            })
            .collect()
    }

    #[test]
    fn verdicts_only_with_evidence() {
        let p = sources(&[
            "The city council approved the new tram line in March 2024.",
            "Unemployment in the region rose to 7 percent last year.",
            "The museum is not open on Mondays.",
        ]);
        let v = |c: &str| check(c, &p).verdict;
        assert_eq!(
            v("The city council approved the new tram line."),
            Verdict::Supported
        );
        assert_eq!(
            v("Unemployment in the region rose to 7 percent."),
            Verdict::Supported
        );
        assert_eq!(
            v("Unemployment in the region rose to 9 percent."),
            Verdict::Contradicted
        );
        assert_eq!(
            v("Unemployment in the region fell to 7 percent."),
            Verdict::Contradicted
        );
        assert_eq!(v("The museum is open on Mondays."), Verdict::Contradicted);
        assert_eq!(v("The mayor resigned after the vote."), Verdict::Unverified);
        assert!(
            check("The mayor resigned after the vote.", &p)
                .evidence
                .is_none()
        );
    }
}
