//! Text out of what users upload: plain text and Markdown as they are, HTML rendered to text
//! with its headings marked `#` (html2text), PDF page by page (pdf-extract), DOCX from the
//! XML in its zip (headings from their paragraph styles). Extracted text is capped, and at
//! most `permits` documents are read at once, each for at most `READ_TIMEOUT`.
//!
//! Where the running binary can read documents itself (`agora extract-document`, registered
//! with [`read_in_child_processes`]), HTML, PDF and DOCX files are read in a child process of it
//! with its environment cleared, its memory (RLIMIT_DATA) and CPU time capped: a file built
//! to decompress into gigabytes, or to loop, costs that process alone, and the document is
//! ERROR with the reason. Otherwise (tests, benchmarks) they are read on a thread of the
//! service with a large stack (parsers recurse on nested input), where a parser's panic is
//! caught and reported as the document's error.

use std::{
    io::{Read, Write},
    path::PathBuf,
    sync::{Arc, OnceLock},
    time::Duration,
};

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

/// Stack of a reader process's reading thread.
const CHILD_STACK_BYTES: usize = 64 * 1024 * 1024;

/// The longest a document's reading may take.
pub const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// The binary whose `extract-document` subcommand reads documents, when there is one, and
/// the environment its reader processes get (nothing else of the service's).
static READER: OnceLock<(PathBuf, Vec<(String, String)>)> = OnceLock::new();

/// Reads PDF and DOCX documents in child processes of `program` from now on: a binary that
/// answers `extract-document` with [`child_main`], given only the variables `env`.
pub fn read_in_child_processes(program: PathBuf, env: Vec<(String, String)>) {
    let _ = READER.set((program, env));
}

/// How documents are read.
pub struct Limits {
    /// Most bytes of text a document may yield.
    pub max_bytes: usize,
    /// Memory a reader process may take, in MiB.
    pub memory_mib: u64,
    /// Documents read at once.
    pub permits: Arc<tokio::sync::Semaphore>,
}

/// The text of `content`, at most `limits.max_bytes` of it, or why there is none (said to
/// the user).
pub async fn extract(format: Format, content: Vec<u8>, limits: &Limits) -> Result<String, String> {
    let permit = limits
        .permits
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| "the service is stopping".to_owned())?;
    match READER.get() {
        // Text is read as it is; every parsed format goes to a reader process.
        Some((program, env)) if !matches!(format, Format::Text | Format::Markdown) => {
            let read = in_child(program, env, format, content, limits);
            let text = read.await;
            drop(permit);
            text
        }
        _ => in_thread(format, content, limits.max_bytes, permit).await,
    }
}

fn too_long() -> String {
    format!(
        "reading the document took longer than {} s",
        READ_TIMEOUT.as_secs()
    )
}

async fn in_thread(
    format: Format,
    content: Vec<u8>,
    max_bytes: usize,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Result<String, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("ai-extract".into())
        .stack_size(STACK_BYTES)
        .spawn(move || {
            // The permit goes with the thread: one still reading past the timeout counts.
            let _permit = permit;
            let result = std::panic::catch_unwind(|| extract_now(format, &content, max_bytes))
                .unwrap_or_else(|_| Err(format!("the {} file could not be read", format.as_str())));
            let _ = tx.send(result);
        });
    if let Err(err) = spawned {
        return Err(format!("no thread to read the document: {err}"));
    }
    match tokio::time::timeout(READ_TIMEOUT, rx).await {
        Ok(result) => result.unwrap_or_else(|_| Err("the document's reader stopped".into())),
        Err(_) => Err(too_long()),
    }
}

/// Exit code of a reader that could not read the document (its reason on stderr).
const UNREADABLE: i32 = 3;

async fn in_child(
    program: &PathBuf,
    env: &[(String, String)],
    format: Format,
    content: Vec<u8>,
    limits: &Limits,
) -> Result<String, String> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(program)
        .arg("extract-document")
        .args(["--format", format.as_str()])
        .args(["--max-bytes", &limits.max_bytes.to_string()])
        .args(["--memory-mib", &limits.memory_mib.to_string()])
        .args(["--cpu-secs", &READ_TIMEOUT.as_secs().to_string()])
        // Nothing of the service's configuration (its secrets) reaches the reader.
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("no process to read the document: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // Written while the output is read: a pipe holds less than a document.
        tokio::spawn(async move {
            let _ = stdin.write_all(&content).await;
        });
    }
    let output = match tokio::time::timeout(READ_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return Err(format!("the document's reader failed: {e}")),
        // The child is killed as it is dropped.
        Err(_) => return Err(too_long()),
    };
    outcome(
        output.status,
        &output.stdout,
        &output.stderr,
        limits.memory_mib,
    )
}

/// What a reader process's exit says of the document.
fn outcome(
    status: std::process::ExitStatus,
    stdout: &[u8],
    stderr: &[u8],
    memory_mib: u64,
) -> Result<String, String> {
    use std::os::unix::process::ExitStatusExt;
    let said = String::from_utf8_lossy(stderr);
    let said = said.trim();
    if status.success() {
        return String::from_utf8(stdout.to_vec())
            .map_err(|_| "the document's reader wrote no text".to_owned());
    }
    if status.code() == Some(UNREADABLE)
        && let Some(reason) = said.lines().last()
    {
        return Err(reason.chars().take(500).collect());
    }
    if said.contains("memory allocation of") {
        return Err(format!(
            "reading the document needed more than {memory_mib} MiB of memory"
        ));
    }
    // SIGXCPU: the CPU time limit; SIGKILL: past its hard limit.
    if matches!(status.signal(), Some(24 | 9)) {
        return Err(too_long());
    }
    Err("the document could not be read (its reader stopped)".into())
}

/// The process's data segment and private writable mappings now (what RLIMIT_DATA counts),
/// in bytes; 0 where /proc does not say.
fn data_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmData:"))
                .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The reader process: reads a document of `format` from stdin and writes its text to
/// stdout (exit 0), or why there is none to stderr (exit 3), within `memory_mib` of memory
/// and `cpu_secs` of CPU time. What `agora extract-document` runs.
pub fn child_main(format: &str, max_bytes: usize, memory_mib: u64, cpu_secs: u64) -> i32 {
    use nix::sys::resource::{Resource, setrlimit};
    // Beyond what the process holds as it starts (its allocator reserves address space
    // ahead, which the limit counts).
    let memory = memory_mib
        .saturating_mul(1024 * 1024)
        .saturating_add(data_bytes());
    let limited = setrlimit(Resource::RLIMIT_DATA, memory, memory)
        .and_then(|()| setrlimit(Resource::RLIMIT_CPU, cpu_secs, cpu_secs + 5))
        .and_then(|()| setrlimit(Resource::RLIMIT_CORE, 0, 0));
    if let Err(e) = limited {
        eprintln!("the document's reader cannot limit itself: {e}");
        return 4;
    }
    // A parser's panic is the document's error, said without the parser's insides.
    std::panic::set_hook(Box::new(|_| {}));
    let Some(format) = Format::parse(format) else {
        eprintln!("`{format}` is not a document format");
        return 2;
    };
    let mut content = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut content) {
        eprintln!("the document could not be received: {e}");
        return 4;
    }
    // A smaller stack than in the service: here, input nested past it ends this process
    // alone, and the stack counts against the memory limit.
    let read = std::thread::Builder::new()
        .stack_size(CHILD_STACK_BYTES)
        .spawn(move || extract_now(format, &content, max_bytes))
        .map_err(|e| format!("no thread to read the document: {e}"))
        .and_then(|t| {
            t.join()
                .unwrap_or_else(|_| Err(format!("the {} file could not be read", format.as_str())))
        });
    match read {
        Ok(text) => {
            let mut out = std::io::stdout().lock();
            match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                Ok(()) => 0,
                Err(_) => 4,
            }
        }
        Err(reason) => {
            eprintln!("{reason}");
            UNREADABLE
        }
    }
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
