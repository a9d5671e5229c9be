//! Uploaded PDF and DOCX files are read in child processes of the binary, limited in memory
//! and CPU time: a PDF made to decompress into gigabytes fails its document, not the
//! platform.

use std::{
    io::{BufRead, BufReader, Write},
    process::Stdio,
    time::Duration,
};

use serde_json::{Value, json};

use agora_testkit::documents::pdf;

use crate::{Running, agora, embedded, test_client};

/// Bits of a deflate stream, least significant first.
struct Bits {
    out: Vec<u8>,
    byte: u8,
    used: u8,
}

impl Bits {
    fn bit(&mut self, b: u8) {
        self.byte |= b << self.used;
        self.used += 1;
        if self.used == 8 {
            self.out.push(self.byte);
            (self.byte, self.used) = (0, 0);
        }
    }

    /// A Huffman code, most significant bit first.
    fn code(&mut self, code: u32, len: u8) {
        for i in (0..len).rev() {
            self.bit(((code >> i) & 1) as u8);
        }
    }
}

/// A zlib stream of 1 + 258 * `copies` spaces, as RFC 1951's fixed Huffman codes write it:
/// one literal space, then copies of 258 bytes from 1 back (13 bits each).
fn spaces(copies: usize) -> Vec<u8> {
    let mut bits = Bits {
        out: vec![0x78, 0x01],
        byte: 0,
        used: 0,
    };
    bits.bit(1); // the last block
    bits.bit(1); // fixed codes (01, low bit first)
    bits.bit(0);
    bits.code(0x30 + 0x20, 8); // the literal ' '
    for _ in 0..copies {
        bits.code(0b1100_0101, 8); // length 258 (code 285)
        bits.code(0, 5); // distance 1
    }
    bits.code(0, 7); // end of block
    if bits.used > 0 {
        bits.out.push(bits.byte);
    }
    // Adler-32 of n spaces: a = 1 + 32n, b = n + 32 n (n + 1) / 2, both mod 65521.
    let n = 1 + 258 * copies as u128;
    let a = (1 + 32 * n) % 65521;
    let b = (n + 32 * n * (n + 1) / 2) % 65521;
    bits.out
        .extend_from_slice(&(((b << 16) | a) as u32).to_be_bytes());
    bits.out
}

/// The peak resident memory of process `pid`, in MiB.
fn peak_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb / 1024
}

#[test]
fn documents_are_read_in_limited_processes() {
    let text = b"BT\n/F1 12 Tf\n72 720 Td\n(The fibre cabinet is on Main Street) Tj\nET\n";
    let good = pdf(text, "");

    // The reader itself: a document in, its text out.
    let mut reader = agora()
        .args([
            "extract-document",
            "--format",
            "pdf",
            "--max-bytes",
            "100000",
        ])
        .args(["--memory-mib", "256", "--cpu-secs", "30"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    reader.stdin.take().unwrap().write_all(&good).unwrap();
    let out = reader.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("The fibre cabinet is on Main Street"));

    // 10 MB that decompress into 1.5 GiB of spaces.
    let bomb = pdf(&spaces(6_250_000), " /Filter /FlateDecode");
    assert!(bomb.len() < 11 * 1024 * 1024);

    let dir = tempfile::tempdir().unwrap();
    let mut child = Running::spawn(
        embedded(dir.path())
            .env("AGORA_AI__EXTRACTION_MEMORY_MIB", "256")
            .env("RUST_LOG", "warn"),
    );
    let pid = child.0.id();
    let mut gateway = None;
    for line in BufReader::new(child.0.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("gateway") {
            gateway = rest.split_whitespace().next().map(str::to_owned);
        }
        if line.starts_with("agora is running") {
            break;
        }
    }
    let gateway = gateway.expect("gateway address printed");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = test_client();
        let call = |method: reqwest::Method, path: &str, token: Option<&str>| {
            let req = client.request(method, format!("{gateway}{path}"));
            match token {
                Some(t) => req.bearer_auth(t),
                None => req,
            }
        };
        let registered: Value = call(reqwest::Method::POST, "/api/v1/auth/register", None)
            .json(
                &json!({"email": "ana@example.test", "password": "Docs-passw0rd!",
                "name": "Ana", "tenant_name": "Docs"}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = registered["access_token"].as_str().unwrap().to_owned();
        let collection: Value = call(
            reqwest::Method::POST,
            "/api/v1/ai/collections",
            Some(&token),
        )
        .json(&json!({"name": "Manuals"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        let documents = format!(
            "/api/v1/ai/collections/{}/documents",
            collection["id"].as_str().unwrap()
        );
        let upload = |title: &'static str, bytes: Vec<u8>| {
            let (call, documents, token) = (&call, &documents, &token);
            async move {
                let doc: Value = call(reqwest::Method::POST, documents, Some(token))
                    .json(&json!({"title": title, "format": "pdf"}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let put = call(
                    reqwest::Method::PUT,
                    doc["upload_url"].as_str().unwrap(),
                    Some(token),
                )
                .body(bytes)
                .send()
                .await
                .unwrap();
                assert_eq!(put.status(), 202);
                let path = format!("{documents}/{}", doc["id"].as_str().unwrap());
                for _ in 0..300 {
                    let doc: Value = call(reqwest::Method::GET, &path, Some(token))
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    if doc["status"] != "PROCESSING" {
                        return doc;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                panic!("{title} is still PROCESSING after 60 s");
            }
        };
        let before = peak_mib(pid);
        let doc = upload("Bomb", bomb).await;
        assert_eq!(doc["status"], "ERROR", "{doc}");
        assert_eq!(
            doc["error"], "reading the document needed more than 256 MiB of memory",
            "{doc}"
        );
        // The platform's own memory did not take it (read in its process, the stream
        // grows past 3 GiB).
        let grown = peak_mib(pid).saturating_sub(before);
        assert!(grown < 200, "the platform grew by {grown} MiB");
        // And it still reads documents.
        let doc = upload("Cabinet", good).await;
        assert_eq!(doc["status"], "COMPLETED", "{doc}");
        assert_eq!(doc["chunk_count"], 1);
    });
    let status = child.stop();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}
