//! Prints what a sandboxed run costs (`cargo bench -p agora-code-exec --bench sandbox`, as
//! root; run without root, it measures the rootless sandbox): the same trivial program run
//! bare and in the sandbox (the sandbox's overhead per run), then submissions per second for
//! trivial Python and C programs (C compiled in the sandbox too) with twice as many
//! submitters as slots, and the p50/p99 wait for a free slot.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use agora_code_exec::{
    judge::{Request, base_env, judge_in, open},
    languages::{Language, discover},
    sandbox::{Command, Config, Limits, Sandbox},
    status::Status,
};

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::new(dir.path().join("work"));
    // Without root, the rootless sandbox (weaker isolation, accepted here to measure it).
    config.allow_weaker_isolation = !is_root();
    let sandbox = match Sandbox::new(config) {
        Ok(sandbox) => sandbox,
        Err(err) => {
            eprintln!("the sandbox cannot run here: {err:#}");
            std::process::exit(1);
        }
    };
    println!("slots {}, layers {:?}", sandbox.slots(), sandbox.layers());
    let languages = discover();
    let find = |id: u32| -> Language {
        languages
            .iter()
            .find(|l| l.id == id)
            .cloned()
            .unwrap_or_else(|| panic!("language {id} is not installed"))
    };

    // Overhead: `python3 -c pass` bare, then in a box, one at a time.
    let runs = 40;
    let started = Instant::now();
    for _ in 0..runs {
        let status = std::process::Command::new("/usr/bin/python3")
            .args(["-c", "pass"])
            .env_clear()
            .status()
            .expect("python3 runs");
        assert!(status.success());
    }
    let bare = started.elapsed() / runs;
    let mut b = sandbox.open(&[]).expect("box");
    let command = Command {
        argv: vec!["/usr/bin/python3".into(), "-c".into(), "pass".into()],
        env: base_env(),
        stdin: vec![],
        merge_stderr: false,
        limits: Limits::default(),
    };
    let started = Instant::now();
    for _ in 0..runs {
        b.run(&command).expect("runs");
    }
    let boxed = started.elapsed() / runs;
    drop(b);
    let started = Instant::now();
    for _ in 0..runs {
        drop(
            sandbox
                .open(&[("script.py", b"pass\n".as_slice())])
                .expect("box"),
        );
    }
    let fresh = started.elapsed() / runs;
    println!(
        "python3 -c pass: bare {:.1} ms, sandboxed {:.1} ms (+{:.1} ms a run); a fresh box {:.2} ms",
        ms(bare),
        ms(boxed),
        ms(boxed.saturating_sub(bare)),
        ms(fresh)
    );

    let compile = Limits {
        cpu_time: Duration::from_secs(10),
        wall_time: Duration::from_secs(20),
        memory_bytes: 512 << 20,
        max_file_bytes: 64 << 20,
        ..Limits::default()
    };
    for (language, source, count) in [
        (find(71), "print(int(input()) * 2)", 200),
        (
            find(50),
            "#include <stdio.h>\nint main(void){ int n; if (scanf(\"%d\", &n) != 1) return 1; printf(\"%d\\n\", n * 2); return 0; }",
            60,
        ),
    ] {
        let request = Request {
            source: source.as_bytes().to_vec(),
            stdin: b"21\n".to_vec(),
            expected_output: Some(b"42".to_vec()),
            compiler_options: None,
            command_line_arguments: None,
            limits: Limits::default(),
            number_of_runs: 1,
            redirect_stderr_to_stdout: false,
        };
        // Twice as many submitters as slots: every slot stays busy and submissions wait.
        let submitters = sandbox.slots() * 2;
        let waits = Mutex::new(Vec::new());
        let next = std::sync::atomic::AtomicUsize::new(0);
        let started = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..submitters {
                scope.spawn(|| {
                    while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < count {
                        let asked = Instant::now();
                        let b = open(&sandbox, &language, &request).expect("box");
                        let waited = asked.elapsed();
                        let verdict = judge_in(b, &language, &compile, &request);
                        assert_eq!(verdict.status, Status::Accepted, "{verdict:?}");
                        waits.lock().unwrap().push(waited);
                    }
                });
            }
        });
        let elapsed = started.elapsed();
        let mut waits = waits.into_inner().unwrap();
        waits.sort();
        let pct = |p: f64| waits[((waits.len() as f64 * p) as usize).min(waits.len() - 1)];
        println!(
            "{}: {count} submissions in {:.1} s = {:.1}/s with {} submitters on {} slots; slot wait p50 {:.1} ms, p99 {:.1} ms",
            language.name,
            elapsed.as_secs_f64(),
            count as f64 / elapsed.as_secs_f64(),
            submitters,
            sandbox.slots(),
            ms(pct(0.5)),
            ms(pct(0.99)),
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Whether this process runs as root (the owner of `/proc/self` is its effective uid).
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
