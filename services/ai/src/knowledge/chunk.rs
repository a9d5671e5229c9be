//! Chunking: a document's text cut into pieces of about `target` characters at sentence
//! ends, never across a section (a `#` heading starts one), each carrying the path of
//! headings above it, the last sentences of one piece repeated at the start of the next (up
//! to `overlap` characters) so that an answer spanning the cut is found whole in one.

use crate::local::text;

/// A piece of a document: its text (as written, a slice of the document's) and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// The headings above it, outermost first, joined by ` > `.
    pub heading: Option<String>,
    pub text: String,
    /// Byte offsets into the extracted text.
    pub start: usize,
    pub end: usize,
}

impl Chunk {
    /// What is embedded and indexed: the heading path, then the text.
    pub fn indexed_text(&self) -> String {
        match &self.heading {
            Some(h) => format!("{h}\n{}", self.text),
            None => self.text.clone(),
        }
    }
}

/// Cuts `input` into chunks.
pub fn chunk(input: &str, target: usize, overlap: usize) -> Vec<Chunk> {
    let mut out = Vec::new();
    let mut headings: Vec<String> = Vec::new();
    let mut section_start = 0;
    let mut offset = 0;
    for line in input.split_inclusive('\n') {
        if let Some((level, title)) = heading(line) {
            pack(
                input,
                section_start,
                offset,
                &headings,
                target,
                overlap,
                &mut out,
            );
            headings.truncate(level - 1);
            while headings.len() < level - 1 {
                headings.push(String::new());
            }
            headings.push(title.to_owned());
            section_start = offset + line.len();
        }
        offset += line.len();
    }
    pack(
        input,
        section_start,
        input.len(),
        &headings,
        target,
        overlap,
        &mut out,
    );
    out
}

/// A Markdown ATX heading: its level and title.
fn heading(line: &str) -> Option<(usize, &str)> {
    let trimmed = line.trim();
    let level = trimmed.bytes().take_while(|b| *b == b'#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let title = trimmed[level..]
        .strip_prefix(' ')?
        .trim()
        .trim_end_matches('#')
        .trim();
    (!title.is_empty()).then_some((level, title))
}

/// Packs the sentences of `input[start..end]` (one section) into chunks.
fn pack(
    input: &str,
    start: usize,
    end: usize,
    headings: &[String],
    target: usize,
    overlap: usize,
    out: &mut Vec<Chunk>,
) {
    let section = &input[start..end];
    let mut units: Vec<(usize, usize)> = Vec::new();
    for (a, b) in text::sentences(section) {
        split_long(section, a, b, target, &mut units);
    }
    let units: Vec<(usize, usize, usize)> = units
        .into_iter()
        .map(|(a, b)| {
            (
                start + a,
                start + b,
                input[start + a..start + b].chars().count(),
            )
        })
        .collect();
    let path: Vec<&str> = headings
        .iter()
        .map(String::as_str)
        .filter(|h| !h.is_empty())
        .collect();
    let heading = (!path.is_empty()).then(|| path.join(" > "));
    let emit = |from: usize, to: usize, out: &mut Vec<Chunk>| {
        let (a, b) = (units[from].0, units[to - 1].1);
        out.push(Chunk {
            heading: heading.clone(),
            text: input[a..b].to_owned(),
            start: a,
            end: b,
        });
    };
    let mut first = 0;
    let mut chars = 0;
    for i in 0..units.len() {
        let len = units[i].2;
        if i > first && chars + len > target {
            emit(first, i, out);
            // Carry the previous chunk's last sentences, up to `overlap` characters.
            let mut carried = 0;
            let mut next = i;
            while next > first + 1 && carried + units[next - 1].2 <= overlap {
                next -= 1;
                carried += units[next].2;
            }
            first = next;
            chars = carried;
        }
        chars += len;
    }
    if first < units.len() {
        emit(first, units.len(), out);
    }
}

/// Adds `section[a..b]` as one unit, or as pieces of at most `target` characters cut at
/// whitespace when it is longer (a table, a list without full stops).
fn split_long(section: &str, a: usize, b: usize, target: usize, units: &mut Vec<(usize, usize)>) {
    let mut start = a;
    let mut count = 0;
    let mut last_space = None;
    for (i, c) in section[a..b].char_indices() {
        let at = a + i;
        if count == target {
            let cut = match last_space {
                Some(s) if s > start => s,
                _ => at,
            };
            push_piece(section, start, cut, units);
            start = cut;
            count = section[start..at].chars().count();
            last_space = None;
        }
        if c.is_whitespace() {
            last_space = Some(at);
        }
        count += 1;
    }
    push_piece(section, start, b, units);
}

fn push_piece(section: &str, a: usize, b: usize, units: &mut Vec<(usize, usize)>) {
    let piece = &section[a..b];
    let lead = piece.len() - piece.trim_start().len();
    let trimmed = piece.trim();
    if !trimmed.is_empty() {
        units.push((a + lead, a + lead + trimmed.len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_sentences_and_overlap() {
        let text = "# Guide\n\nIntro sentence here.\n\n## Refunds\n\nOne two three. Four five six. Seven eight nine.\n";
        let chunks = chunk(text, 30, 15);
        assert_eq!(chunks[0].heading.as_deref(), Some("Guide"));
        assert_eq!(chunks[0].text, "Intro sentence here.");
        let refunds: Vec<&Chunk> = chunks
            .iter()
            .filter(|c| c.heading.as_deref() == Some("Guide > Refunds"))
            .collect();
        assert_eq!(refunds[0].text, "One two three. Four five six.");
        // The next chunk starts with the previous one's last sentence.
        assert_eq!(refunds[1].text, "Four five six. Seven eight nine.");
        for c in &chunks {
            assert_eq!(&text[c.start..c.end], c.text);
        }
        let long = "word ".repeat(100);
        let pieces = chunk(&long, 50, 0);
        assert!(pieces.iter().all(|c| c.text.chars().count() <= 50));
        assert_eq!(
            pieces
                .iter()
                .map(|c| c.text.split(' ').count())
                .sum::<usize>(),
            100
        );
    }
}
