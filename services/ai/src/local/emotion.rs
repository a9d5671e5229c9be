//! Emotion from a lexicon (English, French and Spanish), for tutoring: each emotion word
//! found counts towards its emotion, more after an intensifier, less without an
//! exclamation; a negated word counts towards its opposite where it has one (`not happy` is
//! sadness, `not interested` boredom) and not at all otherwise. Scores are shares of the
//! whole; a text without emotion words is `neutral`.

use std::collections::BTreeMap;

use super::text;

/// The model's name, as responses report it.
pub const MODEL: &str = "emotion-lexicon-v1";

/// The emotions scored, in the order of their index.
pub const EMOTIONS: [&str; 9] = [
    "joy",
    "interest",
    "confusion",
    "frustration",
    "boredom",
    "anxiety",
    "sadness",
    "anger",
    "surprise",
];

/// What a tutor is advised to do when an emotion dominates.
const RECOMMENDATIONS: [&str; 10] = [
    "Keep the momentum: move on to the next concept or a harder exercise.",
    "Build on the curiosity: offer a deeper example or an optional challenge.",
    "Explain the concept again another way, with a worked example, then check understanding with a short question.",
    "Slow down: acknowledge the difficulty, break the exercise into smaller steps and offer a hint.",
    "Raise the challenge or switch to a hands-on exercise.",
    "Reassure: mistakes are part of learning; offer a low-stakes practice question.",
    "Encourage: point out the progress made so far and suggest a short break.",
    "Acknowledge the frustration calmly, then offer a different approach or a break.",
    "Explain what was unexpected and connect it to what the student already knows.",
    "Carry on, and check in with an open question now and then.",
];

/// Emotion scores of a text.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Every emotion's share (they sum to 1), `neutral` included.
    pub scores: BTreeMap<&'static str, f32>,
    pub dominant: &'static str,
    pub recommendation: &'static str,
    /// The emotion words found, as written (lowercased).
    pub cues: Vec<String>,
}

const JOY: u8 = 0;
const INTEREST: u8 = 1;
const CONFUSION: u8 = 2;
const FRUSTRATION: u8 = 3;
const BOREDOM: u8 = 4;
const ANXIETY: u8 = 5;
const SADNESS: u8 = 6;
const ANGER: u8 = 7;
const SURPRISE: u8 = 8;

/// Words by their stem (`text::stem`), and the emotion each signals.
static LEXICON: &[(&str, u8)] = &[
    // joy
    ("happy", JOY),
    ("happin", JOY),
    ("glad", JOY),
    ("great", JOY),
    ("love", JOY),
    ("loved", JOY),
    ("awesom", JOY),
    ("excell", JOY),
    ("wonder", JOY),
    ("enjoy", JOY),
    ("fun", JOY),
    ("proud", JOY),
    ("yay", JOY),
    ("thanks", JOY),
    ("thank", JOY),
    ("nice", JOY),
    ("good", JOY),
    ("content", JOY),
    ("heureu", JOY),
    ("génial", JOY),
    ("super", JOY),
    ("ravi", JOY),
    ("merci", JOY),
    ("feliz", JOY),
    ("genial", JOY),
    ("gracia", JOY),
    ("conten", JOY),
    ("alegre", JOY),
    // interest
    ("intere", INTEREST),
    ("curiou", INTEREST),
    ("fascin", INTEREST),
    ("excite", INTEREST),
    ("exciti", INTEREST),
    ("cool", INTEREST),
    ("wow", INTEREST),
    ("intére", INTEREST),
    ("curieu", INTEREST),
    ("curios", INTEREST),
    ("passio", INTEREST),
    ("motivé", INTEREST),
    ("motiva", INTEREST),
    // confusion
    ("confus", CONFUSION),
    ("lost", CONFUSION),
    ("unclea", CONFUSION),
    ("puzzle", CONFUSION),
    ("unders", CONFUSION),
    ("huh", CONFUSION),
    ("perdu", CONFUSION),
    ("compre", CONFUSION),
    ("compri", CONFUSION),
    ("perdid", CONFUSION),
    ("entien", CONFUSION),
    ("why", CONFUSION),
    // frustration
    ("frustr", FRUSTRATION),
    ("stuck", FRUSTRATION),
    ("annoy", FRUSTRATION),
    ("again", FRUSTRATION),
    ("impossib", FRUSTRATION),
    ("imposs", FRUSTRATION),
    ("hard", FRUSTRATION),
    ("diffic", FRUSTRATION),
    ("fail", FRUSTRATION),
    ("failed", FRUSTRATION),
    ("bloqué", FRUSTRATION),
    ("énerva", FRUSTRATION),
    ("difíci", FRUSTRATION),
    ("atasca", FRUSTRATION),
    // boredom
    ("bored", BOREDOM),
    ("boring", BOREDOM),
    ("tediou", BOREDOM),
    ("dull", BOREDOM),
    ("whatev", BOREDOM),
    ("meh", BOREDOM),
    ("ennui", BOREDOM),
    ("ennuye", BOREDOM),
    ("aburri", BOREDOM),
    // anxiety
    ("worrie", ANXIETY),
    ("worry", ANXIETY),
    ("nervou", ANXIETY),
    ("anxiou", ANXIETY),
    ("afraid", ANXIETY),
    ("scared", ANXIETY),
    ("stress", ANXIETY),
    ("panic", ANXIETY),
    ("exam", ANXIETY),
    ("peur", ANXIETY),
    ("inquie", ANXIETY),
    ("miedo", ANXIETY),
    ("nervio", ANXIETY),
    // sadness
    ("sad", SADNESS),
    ("unhapp", SADNESS),
    ("disapp", SADNESS),
    ("depres", SADNESS),
    ("tired", SADNESS),
    ("give", SADNESS),
    ("hopele", SADNESS),
    ("triste", SADNESS),
    ("déçu", SADNESS),
    ("fatigu", SADNESS),
    ("cansad", SADNESS),
    // anger
    ("angry", ANGER),
    ("hate", ANGER),
    ("furiou", ANGER),
    ("stupid", ANGER),
    ("mad", ANGER),
    ("unfair", ANGER),
    ("ridicu", ANGER),
    ("colère", ANGER),
    ("déteste", ANGER),
    ("détest", ANGER),
    ("enfada", ANGER),
    ("odio", ANGER),
    // surprise
    ("surpri", SURPRISE),
    ("unexpe", SURPRISE),
    ("amazed", SURPRISE),
    ("amazin", SURPRISE),
    ("whoa", SURPRISE),
    ("étonn", SURPRISE),
    ("sorpre", SURPRISE),
];

const NEGATORS: &[&str] = &[
    "not", "no", "ne", "never", "nothing", "neither", "nor", "pas", "jamais", "rien", "nunca",
    "ni", "sans", "sin", "without",
];

const INTENSIFIERS: &[&str] = &[
    "very",
    "so",
    "really",
    "too",
    "extremely",
    "totally",
    "completely",
    "super",
    "très",
    "trop",
    "vraiment",
    "tellement",
    "muy",
    "tan",
    "demasiado",
    "realmente",
];

/// Reads the emotions of `input`.
pub fn read(input: &str) -> Reading {
    let words = text::words(input);
    let exclaimed = input.contains('!');
    let mut raw = [0f32; EMOTIONS.len()];
    let mut cues = Vec::new();
    for (i, word) in words.iter().enumerate() {
        let stem = text::stem(word);
        let Some(&(_, emotion)) = LEXICON.iter().find(|(s, _)| *s == stem || *s == word) else {
            continue;
        };
        let before = &words[i.saturating_sub(3)..i];
        let negated = before
            .iter()
            .any(|w| NEGATORS.contains(&w.as_str()) || w.ends_with("n't") || w.starts_with("n'"));
        let mut weight = if before.iter().any(|w| INTENSIFIERS.contains(&w.as_str())) {
            1.5
        } else {
            1.0
        };
        if exclaimed {
            weight *= 1.2;
        }
        let target = match (negated, emotion) {
            (false, e) => Some(e),
            (true, JOY) => Some(SADNESS),
            (true, INTEREST) => Some(BOREDOM),
            (true, CONFUSION) if stem == "unders" || stem == "compre" || stem == "compri" => {
                // "I don't understand": the word itself is the confusion.
                Some(CONFUSION)
            }
            (true, _) => None,
        };
        let Some(target) = target else { continue };
        if !negated && (stem == "unders" || stem == "compre" || stem == "compri") {
            // "I understand" is no confusion; only its negation is.
            continue;
        }
        raw[target as usize] += weight;
        cues.push(word.clone());
    }
    // Questions signal some confusion on their own.
    raw[CONFUSION as usize] += 0.25 * input.matches('?').count().min(4) as f32;
    let total: f32 = raw.iter().sum();
    let mut scores = BTreeMap::new();
    let (dominant, recommendation) = if total == 0.0 {
        (None, RECOMMENDATIONS[EMOTIONS.len()])
    } else {
        let best = (0..EMOTIONS.len())
            .max_by(|&a, &b| raw[a].total_cmp(&raw[b]).then(b.cmp(&a)))
            .unwrap_or(0);
        (Some(best), RECOMMENDATIONS[best])
    };
    for (i, name) in EMOTIONS.iter().enumerate() {
        let share = if total == 0.0 { 0.0 } else { raw[i] / total };
        scores.insert(*name, (share * 1000.0).round() / 1000.0);
    }
    scores.insert("neutral", if total == 0.0 { 1.0 } else { 0.0 });
    Reading {
        scores,
        dominant: dominant.map_or("neutral", |i| EMOTIONS[i]),
        recommendation,
        cues,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_dominant_emotion_with_negation() {
        assert_eq!(
            read("I'm so frustrated, I'm stuck on this loop again").dominant,
            "frustration"
        );
        assert_eq!(
            read("I don't understand recursion at all?").dominant,
            "confusion"
        );
        assert_eq!(read("I understand now, this is great!").dominant, "joy");
        assert_eq!(read("I am not happy with this").dominant, "sadness");
        assert_eq!(
            read("Je suis perdu, je ne comprends pas").dominant,
            "confusion"
        );
        let neutral = read("The function returns a list.");
        assert_eq!(neutral.dominant, "neutral");
        assert_eq!(neutral.scores["neutral"], 1.0);
        let sum: f32 = read("boring and confusing").scores.values().sum();
        assert!((sum - 1.0).abs() < 0.01);
    }
}
