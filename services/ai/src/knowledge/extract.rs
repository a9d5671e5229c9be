//! Text out of what users upload: plain text and Markdown as they are, HTML rendered to text
//! with its headings marked `#` (html2text), PDF page by page (pdf-extract), DOCX from the
//! XML in its zip (headings from their paragraph styles). Extraction runs on a thread of its
//! own with a large stack (parsers recurse on nested input), any panic of a parser is caught
//! and reported as the document's error, and extracted text is capped.

use std::io::Read;

use quick_xml::events::Event;

/// The formats a document may come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Markdown,
    Html,
    Pdf,
    Docx,
}

/// What a 415 names as accepted.
pub const ACCEPTED: &str = "text (.txt), Markdown (.md), HTML (.html), PDF (.pdf) or DOCX (.docx)";

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Markdown => "markdown",
            Self::Html => "html",
            Self::Pdf => "pdf",
            Self::Docx => "docx",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "text" => Self::Text,
            "markdown" => Self::Markdown,
            "html" => Self::Html,
            "pdf" => Self::Pdf,
            "docx" => Self::Docx,
            _ => return None,
        })
    }

    /// The format of an uploaded file, by its name's extension, else its declared type.
    pub fn detect(file_name: Option<&str>, content_type: Option<&str>) -> Option<Self> {
        let extension = file_name
            .and_then(|n| n.rsplit_once('.'))
            .map(|(_, e)| e.to_ascii_lowercase());
        let by_name = match extension.as_deref() {
            Some("txt" | "text" | "csv" | "log") => Some(Self::Text),
            Some("md" | "markdown") => Some(Self::Markdown),
            Some("html" | "htm" | "xhtml") => Some(Self::Html),
            Some("pdf") => Some(Self::Pdf),
            Some("docx") => Some(Self::Docx),
            _ => None,
        };
        by_name.or_else(|| {
            let essence = content_type?.split(';').next()?.trim().to_ascii_lowercase();
            match essence.as_str() {
                "text/plain" => Some(Self::Text),
                "text/markdown" => Some(Self::Markdown),
                "text/html" | "application/xhtml+xml" => Some(Self::Html),
                "application/pdf" => Some(Self::Pdf),
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => {
                    Some(Self::Docx)
                }
                _ => None,
            }
        })
    }

    /// Whether extraction is cheap enough to do in the request that gives the document.
    pub fn is_light(self) -> bool {
        matches!(self, Self::Text | Self::Markdown | Self::Html)
    }
}

/// Stack of the extraction thread.
const STACK_BYTES: usize = 256 * 1024 * 1024;

/// The text of `content`, at most `max_bytes` of it, or why there is none (said to the user).
pub async fn extract(format: Format, content: Vec<u8>, max_bytes: usize) -> Result<String, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("ai-extract".into())
        .stack_size(STACK_BYTES)
        .spawn(move || {
            let result = std::panic::catch_unwind(|| extract_now(format, &content, max_bytes))
                .unwrap_or_else(|_| Err(format!("the {} file could not be read", format.as_str())));
            let _ = tx.send(result);
        });
    if let Err(err) = spawned {
        return Err(format!("no thread to read the document: {err}"));
    }
    rx.await
        .unwrap_or_else(|_| Err("the document's reader stopped".into()))
}

/// Extraction on the calling thread.
pub fn extract_now(format: Format, content: &[u8], max_bytes: usize) -> Result<String, String> {
    let text = match format {
        Format::Text | Format::Markdown => std::str::from_utf8(content)
            .map_err(|e| {
                format!(
                    "the file is not UTF-8 text (invalid at byte {})",
                    e.valid_up_to()
                )
            })?
            .trim_start_matches('\u{feff}')
            .to_owned(),
        Format::Html => html2text::config::plain_no_decorate()
            .string_from_read(content, 200)
            .map_err(|e| format!("the HTML could not be read: {e}"))?,
        Format::Pdf => pdf_extract::extract_text_from_mem_by_pages(content)
            .map_err(|e| format!("the PDF could not be read: {e}"))?
            .join("\n\n"),
        Format::Docx => docx(content, max_bytes)?,
    };
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    // PostgreSQL refuses NUL in text.
    let text = text.replace('\0', "");
    if text.len() > max_bytes {
        return Err(format!(
            "the document holds more than {max_bytes} bytes of text"
        ));
    }
    if text.trim().is_empty() {
        return Err(format!("no text found in the {} document", format.as_str()));
    }
    Ok(text)
}

/// The text of a DOCX: its paragraphs, one per line, blank lines between, headings marked
/// `#` by level.
fn docx(content: &[u8], max_bytes: usize) -> Result<String, String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(content))
        .map_err(|e| format!("the DOCX is not a zip archive: {e}"))?;
    let mut xml = Vec::new();
    archive
        .by_name("word/document.xml")
        .map_err(|_| "the DOCX has no word/document.xml".to_owned())?
        // A zip can expand a thousandfold: never read more than the text could use.
        .take(max_bytes as u64 * 4 + 1)
        .read_to_end(&mut xml)
        .map_err(|e| format!("the DOCX could not be decompressed: {e}"))?;
    if xml.len() > max_bytes * 4 {
        return Err(format!(
            "the document holds more than {max_bytes} bytes of text"
        ));
    }
    let mut reader = quick_xml::Reader::from_reader(xml.as_slice());
    let mut out = String::new();
    let mut paragraph = String::new();
    let mut heading: Option<usize> = None;
    let mut in_text = false;
    let mut buf = Vec::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| format!("the DOCX's XML is malformed: {e}"))?;
        match event {
            Event::Start(e) | Event::Empty(e) => match e.local_name().as_ref() {
                b"t" => in_text = true,
                b"tab" => paragraph.push('\t'),
                b"br" | b"cr" => paragraph.push('\n'),
                b"pStyle" => {
                    for attr in e.attributes().flatten() {
                        if attr.key.local_name().as_ref() == b"val" {
                            let style = String::from_utf8_lossy(&attr.value).to_ascii_lowercase();
                            if let Some(level) = style
                                .strip_prefix("heading")
                                .and_then(|n| n.trim().parse::<usize>().ok())
                            {
                                heading = Some(level.clamp(1, 6));
                            } else if style == "title" {
                                heading = Some(1);
                            }
                        }
                    }
                }
                _ => {}
            },
            Event::Text(t) if in_text => {
                let decoded = t
                    .decode()
                    .map_err(|e| format!("the DOCX's text is malformed: {e}"))?;
                let text = quick_xml::escape::unescape(&decoded)
                    .map_err(|e| format!("the DOCX's text is malformed: {e}"))?;
                paragraph.push_str(&text);
            }
            Event::GeneralRef(r) if in_text => {
                // Entities (&amp; and the like) come apart from the text around them.
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    paragraph.push(c);
                } else {
                    let name = r.decode().unwrap_or_default();
                    if let Some(c) = quick_xml::escape::resolve_predefined_entity(&name) {
                        paragraph.push_str(c);
                    }
                }
            }
            Event::End(e) => match e.local_name().as_ref() {
                b"t" => in_text = false,
                b"p" => {
                    let text = paragraph.trim();
                    if !text.is_empty() {
                        if let Some(level) = heading {
                            out.push_str(&"#".repeat(level));
                            out.push(' ');
                        }
                        out.push_str(text);
                        out.push_str("\n\n");
                    }
                    paragraph.clear();
                    heading = None;
                    if out.len() > max_bytes {
                        return Err(format!(
                            "the document holds more than {max_bytes} bytes of text"
                        ));
                    }
                }
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_name_then_type() {
        assert_eq!(Format::detect(Some("a.PDF"), None), Some(Format::Pdf));
        assert_eq!(
            Format::detect(Some("blob"), Some("text/html; charset=utf-8")),
            Some(Format::Html)
        );
        assert_eq!(
            Format::detect(Some("x.exe"), Some("application/octet-stream")),
            None
        );
    }

    #[test]
    fn html_keeps_headings_and_drops_markup() {
        let text = extract_now(
            Format::Html,
            b"<html><body><h1>Refunds</h1><p>Paid in <b>five</b> days.</p><script>x()</script></body></html>",
            1 << 20,
        )
        .unwrap();
        assert!(text.contains("# Refunds"), "{text}");
        assert!(text.contains("Paid in five days."), "{text}");
        assert!(!text.contains("x()"), "{text}");
    }
}
