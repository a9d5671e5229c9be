//! The sandbox against programs written to escape it or to cost the most: each case asserts
//! Judge0's status for the run and what the host looks like afterwards.

#![allow(unsafe_code)] // std::env::set_var, once, before any run

mod api;
mod exercises;
mod judge;

use std::{sync::OnceLock, time::Duration};

use agora_code_exec::{
    sandbox::{Command, Config, LimitHit, Limits, OpenBox, Outcome, Sandbox, Termination},
    status::{Status, classify},
};

/// Whether this process runs without root: the sandbox is then rootless (user namespaces, no
/// cgroups), which CI runs the escape suite in too, as an unprivileged user.
pub(crate) fn rootless() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() != 0 }
}

/// The one sandbox of this test process: as root (the CI machine runs the suite as root), or
/// rootless with weaker isolation accepted (CI runs the escape suite that way too).
pub(crate) fn sandbox() -> Option<&'static Sandbox> {
    static SANDBOX: OnceLock<Option<Sandbox>> = OnceLock::new();
    SANDBOX
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("tempdir").keep();
            let mut config = Config::new(dir.join("work"));
            config.allow_weaker_isolation = rootless();
            match Sandbox::new(config) {
                Ok(sandbox) => Some(sandbox),
                Err(err) if std::env::var_os("AGORA_TEST_REQUIRE_INFRA").is_none() => {
                    eprintln!("SKIPPED: the sandbox cannot run here: {err:#}");
                    None
                }
                Err(err) => panic!("the sandbox cannot run here: {err:#}"),
            }
        })
        .as_ref()
}

/// code-exec behind the gateway with the real auth service, on `store`, configured with
/// `settings` (TOML lines of `[code_exec]`), in a work directory of its own.
pub(crate) struct Platform {
    pub kit: agora_testkit::Platform,
    pub state: std::sync::Arc<agora_code_exec::CodeExecState>,
}

pub(crate) async fn platform(store: agora_shared::testing::Store, settings: &str) -> Platform {
    let work = tempfile::tempdir().expect("tempdir").keep();
    let settings = format!("work_dir = \"{}\"\n{settings}", work.display());
    let mut kit = agora_testkit::Platform::builder(store)
        .service("code_exec", &settings)
        .start()
        .await;
    let started = agora_code_exec::start(&kit.context(), kit.shutdown.child_token())
        .await
        .expect("code-exec starts");
    let state = started.state.clone();
    kit.serve(started.service);
    kit.gateway().await;
    Platform { kit, state }
}

impl Platform {
    /// Whether programs can run here; where they cannot, submissions are refused with 503.
    pub(crate) async fn runs_programs(&self, who: &agora_testkit::Session) -> bool {
        use agora_shared::testing::Call;
        if self.state.sandbox.is_ok() {
            return true;
        }
        assert!(
            std::env::var_os("AGORA_TEST_REQUIRE_INFRA").is_none(),
            "the sandbox cannot run here: {:?}",
            self.state.sandbox.as_ref().err()
        );
        let refused = self
            .kit
            .authed(reqwest::Method::POST, "/api/v1/code-exec/submissions", who)
            .json(&serde_json::json!({"source_code": "print(1)", "language_id": 71}))
            .call()
            .await;
        let body = agora_shared::testing::problem(refused, 503).await;
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("cannot run programs")
        );
        eprintln!("SKIPPED: the sandbox cannot run here; checked that submissions get 503");
        false
    }
}

const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

fn env() -> Vec<(String, String)> {
    vec![
        ("PATH".into(), PATH.into()),
        ("HOME".into(), "/box".into()),
        ("LANG".into(), "C.UTF-8".into()),
    ]
}

fn command(argv: &[&str], stdin: &str, limits: Limits) -> Command {
    Command {
        argv: argv.iter().map(|a| a.to_string()).collect(),
        env: env(),
        stdin: stdin.as_bytes().to_vec(),
        merge_stderr: false,
        limits,
    }
}

fn python(source: &str, stdin: &str) -> Option<Outcome> {
    let sandbox = sandbox()?;
    let mut b = sandbox
        .open(&[("main.py", source.as_bytes())])
        .expect("box");
    Some(
        b.run(&command(
            &["/usr/bin/python3", "main.py"],
            stdin,
            Limits::default(),
        ))
        .expect("runs"),
    )
}

pub(crate) fn compile_limits() -> Limits {
    Limits {
        cpu_time: Duration::from_secs(20),
        wall_time: Duration::from_secs(40),
        memory_bytes: 512 << 20,
        max_file_bytes: 64 << 20,
        ..Limits::default()
    }
}

/// Compiles `source` with gcc inside the box, as the service does, and returns the box.
fn compiled_c(source: &str) -> Option<OpenBox<'static>> {
    let sandbox = sandbox()?;
    let mut b = sandbox.open(&[("main.c", source.as_bytes())]).expect("box");
    let out = b
        .run(&command(
            &["/usr/bin/gcc", "-O1", "-o", "main", "main.c"],
            "",
            compile_limits(),
        ))
        .expect("compiles");
    assert_eq!(
        out.termination,
        Termination::Exited(0),
        "gcc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(b)
}

fn c(source: &str, limits: Limits) -> Option<Outcome> {
    let mut b = compiled_c(source)?;
    Some(b.run(&command(&["/box/main"], "", limits)).expect("runs"))
}

fn status(outcome: &Outcome) -> u8 {
    classify(outcome, None).0.id()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Processes on the host owned by the sandbox's uids (none once runs are over). Rootless, the
/// runs' uid outside is this process's own: every other process of it.
fn sandbox_processes() -> Vec<String> {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let own = std::process::id().to_string();
    let mut found = vec![];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|u| u.parse::<u32>().ok());
        let ours = match rootless() {
            true => uid == Some(me) && entry.file_name().to_string_lossy() != own,
            false => uid.is_some_and(|u| (61_000..61_000 + 64).contains(&u)),
        };
        if ours {
            found.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    found
}

#[test]
fn a_python_program_reads_stdin_and_is_judged_on_its_output() {
    let Some(out) = python("name = input()\nprint(f'hello, {name}')\n", "world\n") else {
        return;
    };
    assert_eq!(
        out.termination,
        Termination::Exited(0),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), "hello, world\n");
    assert_eq!(classify(&out, Some(b"hello, world")).0, Status::Accepted);
    assert_eq!(classify(&out, Some(b"hello, you")).0, Status::WrongAnswer);
    assert!(out.wall_time < Duration::from_secs(10));
    // The program's memory, not the supervisor's (whose pages the run's init is cloned with):
    // without a cgroup, a peak below those pages is unknown rather than theirs.
    match out.memory_bytes {
        Some(peak) => assert!(peak > 0 && peak < 48 << 20, "{out:?}"),
        None => assert!(rootless(), "{out:?}"),
    }
}

#[test]
fn a_c_program_compiles_and_runs_inside_the_sandbox() {
    let Some(out) = c(
        "#include <stdio.h>\nint main(void){int a,b; if(scanf(\"%d %d\",&a,&b)!=2) return 2; printf(\"%d\\n\",a+b); return 0;}",
        Limits::default(),
    ) else {
        return;
    };
    // No stdin given: scanf fails, the program says so with its exit code.
    assert_eq!(out.termination, Termination::Exited(2));
    assert_eq!(status(&out), Status::RuntimeNzec.id());
}

#[test]
fn a_compile_error_carries_the_compilers_message() {
    let Some(sandbox) = sandbox() else { return };
    let mut b = sandbox
        .open(&[("main.c", b"int main(void) { return missing; }".as_slice())])
        .unwrap();
    let out = b
        .run(&command(
            &["/usr/bin/gcc", "-o", "main", "main.c"],
            "",
            compile_limits(),
        ))
        .unwrap();
    assert_eq!(out.termination, Termination::Exited(1));
    assert!(
        text(&out.stderr).contains("missing") && text(&out.stderr).contains("undeclared"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn an_infinite_loop_is_a_time_limit_exceeded() {
    let limits = Limits {
        cpu_time: Duration::from_secs(1),
        cpu_extra_time: Duration::from_millis(500),
        ..Limits::default()
    };
    let Some(out) = c(
        "int main(void){ volatile unsigned long i = 0; for(;;) i++; }",
        limits,
    ) else {
        return;
    };
    assert_eq!(status(&out), Status::TimeLimitExceeded.id(), "{out:?}");
    assert!(out.cpu_time >= Duration::from_secs(1), "{out:?}");
    assert!(out.wall_time < Duration::from_secs(5), "{out:?}");
}

#[test]
fn sleeping_past_the_wall_clock_is_stopped() {
    let limits = Limits {
        wall_time: Duration::from_secs(1),
        ..Limits::default()
    };
    let Some(sandbox) = sandbox() else { return };
    let mut b = sandbox.open(&[]).unwrap();
    let out = b.run(&command(&["/bin/sleep", "30"], "", limits)).unwrap();
    assert_eq!(out.limit, Some(LimitHit::WallTime));
    assert_eq!(status(&out), Status::TimeLimitExceeded.id());
    assert!(out.wall_time < Duration::from_secs(3), "{out:?}");
}

#[test]
fn a_fork_bomb_stops_at_the_process_limit_and_leaves_nothing_behind() {
    let Some(sandbox) = sandbox() else { return };
    let source = "#include <unistd.h>\n#include <stdio.h>\nint main(void){ int made = 0; for (int i = 0; i < 1000; i++) { pid_t p = fork(); if (p == 0) { for(;;) pause(); } if (p > 0) made++; } printf(\"%d\\n\", made); return 0; }";
    let mut b = sandbox.open(&[("bomb.c", source.as_bytes())]).unwrap();
    let built = b
        .run(&command(
            &["/usr/bin/gcc", "-o", "forkbomb", "bomb.c"],
            "",
            compile_limits(),
        ))
        .unwrap();
    assert_eq!(built.termination, Termination::Exited(0), "{built:?}");
    let limits = Limits {
        max_processes: 30,
        ..Limits::default()
    };
    let out = b.run(&command(&["/box/forkbomb"], "", limits)).unwrap();
    // The bomb could not make more than its limit (the program itself is one of them).
    let made: u32 = text(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("count printed: {out:?}"));
    assert!(made < 30, "made {made} processes");
    assert_eq!(status(&out), Status::Accepted.id());
    // Its paused children were killed with it; the host still starts processes.
    let left: Vec<String> = sandbox_processes()
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "forkbomb")
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(
        std::process::Command::new("true")
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn a_1_gb_allocation_hits_the_memory_limit_not_the_host() {
    let Some(out) = c(
        "#include <stdlib.h>\n#include <stdio.h>\nint main(void){ size_t n = 1UL << 30; volatile char *p = malloc(n); if (!p) return 3; for (size_t i = 0; i < n; i += 4096) p[i] = (char)i; printf(\"%d\\n\", p[n / 2]); return 0; }",
        Limits::default(),
    ) else {
        return;
    };
    assert_ne!(out.termination, Termination::Exited(0), "{out:?}");
    if rootless() {
        // No memory cgroup: the allocation is refused under the process's data limit (a
        // multiple of the memory limit for a language that is not held to its address space),
        // so the program's own check ends it with 3, before the host gives it anything.
        assert_eq!(out.termination, Termination::Exited(3), "{out:?}");
        let data = agora_code_exec::sandbox::DATA_FACTOR * (128 << 20);
        assert!(out.memory_bytes.is_none_or(|m| m <= data), "{out:?}");
        return;
    }
    assert_eq!(out.limit, Some(LimitHit::Memory), "{out:?}");
    assert_eq!(status(&out), Status::RuntimeOther.id());
    assert!(
        out.memory_bytes.unwrap() <= (128 << 20) + (4 << 20),
        "{out:?}"
    );
}

#[test]
fn shared_memory_is_charged_to_the_run_or_refused() {
    let Some(out) = python(
        "import mmap\nm = mmap.mmap(-1, 300 << 20)\nfor i in range(0, 300 << 20, 4096):\n    m[i] = 1\nprint('filled')\n",
        "",
    ) else {
        return;
    };
    assert!(!text(&out.stdout).contains("filled"), "{out:?}");
    if !rootless() {
        // The run's memory cgroup charges shared pages like any others.
        assert_eq!(out.limit, Some(LimitHit::Memory), "{out:?}");
        return;
    }
    // No cgroup: rlimits do not reach shared memory, so none is made (nor inotify instances,
    // which count against the service's user host-wide).
    assert!(text(&out.stderr).contains("PermissionError"), "{out:?}");
    for (call, refused) in [
        ("os.memfd_create('x')", "PermissionError"),
        // shmget(IPC_PRIVATE, 1 MiB, IPC_CREAT | 0600)
        (
            "assert libc.shmget(0, 1 << 20, 0o1600) >= 0",
            "AssertionError",
        ),
        ("assert libc.inotify_init() >= 0", "AssertionError"),
        (
            "assert libc.semget(0, 32000, 0o1600) >= 0",
            "AssertionError",
        ),
        ("assert libc.msgget(0, 0o1600) >= 0", "AssertionError"),
        // No /dev/zero to map shared.
        ("open('/dev/zero', 'rb')", "FileNotFoundError"),
    ] {
        let probe = python(
            &format!("import ctypes, os\nlibc = ctypes.CDLL(None)\n{call}\n"),
            "",
        )
        .unwrap();
        assert!(text(&probe.stderr).contains(refused), "{call}: {probe:?}");
    }
}

#[test]
fn writing_past_the_file_size_limit_is_sigxfsz() {
    let Some(out) = c(
        "#include <stdio.h>\nint main(void){ FILE *f = fopen(\"big\", \"w\"); char b[4096] = {0}; for (int i = 0; i < 1024; i++) fwrite(b, 1, sizeof b, f); fclose(f); return 0; }",
        Limits::default(),
    ) else {
        return;
    };
    assert_eq!(out.termination, Termination::Signaled(libc::SIGXFSZ));
    assert_eq!(status(&out), Status::RuntimeSigxfsz.id());
}

#[test]
fn signals_and_exit_codes_map_to_judge0_statuses() {
    let cases = [
        (
            "int main(void){ volatile int *p = 0; return *p; }",
            Status::RuntimeSigsegv,
        ),
        (
            "int main(void){ volatile int a = 7, z = 0; return a / z; }",
            Status::RuntimeSigfpe,
        ),
        (
            "#include <stdlib.h>\nint main(void){ abort(); }",
            Status::RuntimeSigabrt,
        ),
        ("int main(void){ return 3; }", Status::RuntimeNzec),
        ("int main(void){ return 0; }", Status::Accepted),
    ];
    for (source, expected) in cases {
        let Some(out) = c(source, Limits::default()) else {
            return;
        };
        assert_eq!(classify(&out, None).0, expected, "{source}: {out:?}");
    }
}

#[test]
fn there_is_no_network_not_even_to_the_hosts_database() {
    let Some(out) = python(
        r#"
import socket
for host, port in [("127.0.0.1", 5432), ("1.1.1.1", 53), ("10.0.0.1", 80)]:
    try:
        socket.create_connection((host, port), timeout=2)
        print(host, "connected")
    except OSError as e:
        print(host, "refused", e.errno)
try:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect("/var/run/postgresql/.s.PGSQL.5432")
    print("unix connected")
except OSError as e:
    print("unix refused", e.errno)
# The hypervisor over vsock, which network namespaces do not separate; netlink; raw packets.
for family in [socket.AF_VSOCK, socket.AF_NETLINK, socket.AF_PACKET]:
    try:
        socket.socket(family, socket.SOCK_STREAM if family == socket.AF_VSOCK else socket.SOCK_RAW)
        print(family, "made")
    except OSError as e:
        print(family, "refused", e.errno)
# Socket buffers are kernel memory the run's cgroup does not charge: they stay small.
a, b = socket.socketpair()
try:
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    print("buffer raised")
except OSError as e:
    print("buffer refused", e.errno)
"#,
        "",
    ) else {
        return;
    };
    let stdout = text(&out.stdout);
    assert!(
        !stdout.contains("connected"),
        "{stdout}{}",
        text(&out.stderr)
    );
    assert!(
        !stdout.contains("made") && !stdout.contains("raised"),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("refused").count(),
        8,
        "{stdout}{}",
        text(&out.stderr)
    );
    assert_eq!(
        stdout.matches("refused 1\n").count(),
        7,
        "EPERM from the filter: {stdout}"
    );
}

#[test]
fn nothing_of_the_host_is_visible_inside() {
    // SAFETY: set before any sandboxed process is cloned from this one; read by no other test.
    unsafe { std::env::set_var("AGORA_TEST_SECRET", "s3cr3t-host-value") };
    let Some(out) = python(
        r#"
import os
seen = []
for path in ["/proc/1/environ", "/proc/self/environ", "/etc/shadow", "/etc/passwd", "/root", "/var/lib/postgresql", "/home", "/sys"]:
    try:
        if os.path.isdir(path):
            seen.append((path, "dir", sorted(os.listdir(path))))
        else:
            seen.append((path, "file", open(path, "rb").read()))
    except OSError as e:
        seen.append((path, "error", e.errno))
print(seen)
print(sorted(os.environ))
print(os.getuid(), os.getgid(), os.getgroups())
print(sorted(p for p in os.listdir("/proc") if p.isdigit()))
"#,
        "",
    ) else {
        return;
    };
    let stdout = text(&out.stdout);
    assert_eq!(
        out.termination,
        Termination::Exited(0),
        "{}",
        text(&out.stderr)
    );
    assert!(!stdout.contains("s3cr3t"), "{stdout}");
    for path in [
        "/proc/1/environ",
        "/etc/shadow",
        "/etc/passwd",
        "/root",
        "/var/lib/postgresql",
        "/home",
        "/sys",
    ] {
        assert!(
            stdout.contains(&format!("('{path}', 'error', 2)")),
            "{path} is visible: {stdout}"
        );
    }
    // The environment is exactly the one given; the program is an unprivileged uid of its own.
    assert!(
        stdout.contains("['HOME', 'LANG', 'LC_CTYPE', 'PATH']")
            || stdout.contains("['HOME', 'LANG', 'PATH']"),
        "{stdout}"
    );
    assert!(!stdout.contains("\n0 0"), "{stdout}");
    // Only its own process is visible.
    assert!(stdout.trim_end().ends_with("['2']"), "{stdout}");
}

#[test]
fn symlinks_planted_in_the_box_change_nothing_on_the_host() {
    let Some(sandbox) = sandbox() else { return };
    let host = tempfile::tempdir().unwrap();
    let canary = host.path().join("canary");
    std::fs::write(&canary, "untouched").unwrap();
    let planted = format!(
        r#"
import os
for name in ["main.py", "stdout", "stderr", "stdin", "main", "main.c", "run", "box"]:
    try:
        os.unlink(name)
    except OSError:
        pass
    os.symlink("{canary}", name)
os.symlink("/etc/passwd", "passwd")
print(sorted(os.listdir(".")))
try:
    open("main", "w").write("through the link")
    print("followed")
except OSError as e:
    print("not followed", e.errno)
"#,
        canary = canary.display()
    );
    let mut b = sandbox.open(&[("main.py", planted.as_bytes())]).unwrap();
    let out = b
        .run(&command(
            &["/usr/bin/python3", "main.py"],
            "",
            Limits::default(),
        ))
        .unwrap();
    assert!(
        text(&out.stdout).contains("not followed 40"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // A second run in the same box (as a program runs after its compiler) and the box's
    // removal follow nothing the first one planted.
    let again = b
        .run(&command(&["/bin/ls", "-la", "/box"], "", Limits::default()))
        .unwrap();
    assert_eq!(
        again.termination,
        Termination::Exited(0),
        "{}",
        text(&again.stderr)
    );
    assert!(
        text(&again.stdout).contains("main ->"),
        "{}",
        text(&again.stdout)
    );
    drop(b);
    assert_eq!(std::fs::read_to_string(&canary).unwrap(), "untouched");
    assert!(std::fs::symlink_metadata("/etc/passwd").unwrap().is_file());
}

#[test]
fn a_java_program_runs_under_the_default_limits() {
    let Some(sandbox) = sandbox() else { return };
    if !std::path::Path::new("/usr/bin/javac").exists() {
        assert!(
            std::env::var_os("AGORA_TEST_REQUIRE_INFRA").is_none(),
            "javac is not installed"
        );
        eprintln!("SKIPPED: no javac on this host");
        return;
    }
    let source = "public class Main { public static void main(String[] a) { System.out.println(java.util.stream.IntStream.rangeClosed(1, 10).sum()); } }";
    let mut b = sandbox.open(&[("Main.java", source.as_bytes())]).unwrap();
    let mut java_env = env();
    java_env.push((
        "JAVA_TOOL_OPTIONS".into(),
        "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss8m -Xmx96m".into(),
    ));
    let mut compile = command(&["/usr/bin/javac", "Main.java"], "", compile_limits());
    compile.env = java_env.clone();
    compile.env.retain(|(k, _)| k != "JAVA_TOOL_OPTIONS");
    let out = b.run(&compile).unwrap();
    assert_eq!(
        out.termination,
        Termination::Exited(0),
        "{}",
        text(&out.stderr)
    );
    let mut run = command(&["/usr/bin/java", "Main"], "", Limits::default());
    run.env = java_env;
    let out = b.run(&run).unwrap();
    assert_eq!(
        classify(&out, Some(b"55")).0,
        Status::Accepted,
        "{out:?} {}",
        text(&out.stderr)
    );
}

#[test]
fn the_layers_in_force_are_reported() {
    let Some(sandbox) = sandbox() else { return };
    let layers = sandbox.layers();
    assert!(layers.namespaces);
    assert!(layers.seccomp);
    assert_eq!(layers.rootless, rootless());
    // Rootless, cgroups are not used; as root, this host has them.
    assert_eq!(layers.cgroup.is_some(), !rootless(), "{layers:?}");
}

#[test]
fn endless_output_is_cut_at_the_cap_and_stops_the_run() {
    let Some(out) = python("while True:\n    print('x' * 1000)\n", "") else {
        return;
    };
    assert_eq!(out.limit, Some(LimitHit::Output), "{:?}", out.termination);
    assert_eq!(out.stdout.len(), Limits::default().max_output_bytes);
    assert_eq!(
        classify(&out, None),
        (Status::RuntimeOther, Some("Output limit exceeded"))
    );
}

#[test]
fn closing_its_output_does_not_take_a_program_off_the_clock() {
    let limits = Limits {
        wall_time: Duration::from_secs(1),
        ..Limits::default()
    };
    let Some(out) = c(
        "#include <unistd.h>\nint main(void){ close(1); close(2); for(;;) pause(); }",
        limits,
    ) else {
        return;
    };
    assert_eq!(out.limit, Some(LimitHit::WallTime), "{out:?}");
    assert_eq!(status(&out), Status::TimeLimitExceeded.id());
    assert!(out.wall_time < Duration::from_secs(3), "{out:?}");
}

#[test]
fn a_run_holds_none_of_the_supervisors_descriptors() {
    let Some(sandbox) = sandbox() else { return };
    // Something the supervisor has open while a run starts: a file of its own.
    let dir = tempfile::tempdir().unwrap();
    let canary = dir.path().join("supervisor-file");
    let _open = std::fs::File::create(&canary).unwrap();
    let run = std::thread::spawn(move || {
        let mut b = sandbox.open(&[]).unwrap();
        b.run(&command(&["/bin/sleep", "2"], "", Limits::default()))
            .unwrap()
    });
    // The run's init: pid 1 of its namespace, a child of this process.
    let me = std::process::id().to_string();
    let mut seen = None;
    for _ in 0..200 {
        seen = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .find_map(|entry| {
                let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
                let parent = status
                    .lines()
                    .find_map(|l| l.strip_prefix("PPid:"))?
                    .trim()
                    .to_owned();
                let nspid = status
                    .lines()
                    .find_map(|l| l.strip_prefix("NSpid:"))?
                    .to_owned();
                (parent == me && nspid.split_whitespace().last() == Some("1")).then(|| entry.path())
            });
        if seen.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let init = seen.expect("the run's init");
    // Looked at once it has started the program, which it does after closing what it must not
    // hold (before that, it is part-way through closing them).
    for _ in 0..500 {
        let children = std::fs::read_dir(init.join("task"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|task| {
                std::fs::read_to_string(task.path().join("children"))
                    .is_ok_and(|c| !c.trim().is_empty())
            });
        if children {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if rootless() {
        // The init is not dumpable: neither the service's own user nor a program (its uid in
        // the box's user namespace) can look into it, and a program holds only its 0, 1, 2.
        assert!(std::fs::read_dir(init.join("fd")).is_err());
        assert_eq!(run.join().unwrap().termination, Termination::Exited(0));
        let out = python(
            "import os\ntry:\n    os.listdir('/proc/1/fd')\n    print('init readable')\nexcept OSError:\n    pass\nprint(sorted(int(f) for f in os.listdir('/proc/self/fd')))\n",
            "",
        )
        .unwrap();
        // 3 is listdir's own descriptor of the directory.
        assert_eq!(text(&out.stdout), "[0, 1, 2, 3]\n", "{out:?}");
        return;
    }
    let held: Vec<String> = std::fs::read_dir(init.join("fd"))
        .unwrap()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .map(|target| target.display().to_string())
        .collect();
    assert!(
        !held.iter().any(|t| t.contains("supervisor-file")),
        "the init holds the supervisor's file: {held:?}"
    );
    assert!(held.len() <= 8, "{held:?}");
    assert_eq!(run.join().unwrap().termination, Termination::Exited(0));
}

#[test]
fn a_run_gets_one_cpu_however_many_threads_it_starts() {
    let Some(out) = c(
        "#include <pthread.h>\nstatic void *spin(void *x){ volatile unsigned long i = 0; for(;;) i++; return x; }\nint main(void){ pthread_t t; for (int i = 0; i < 4; i++) pthread_create(&t, 0, spin, 0); spin(0); }",
        Limits {
            cpu_time: Duration::from_secs(1),
            cpu_extra_time: Duration::ZERO,
            wall_time: Duration::from_secs(5),
            ..Limits::default()
        },
    ) else {
        return;
    };
    // Five spinning threads on two cores: without a CPU quota the run would use twice its
    // wall time in CPU time.
    assert_eq!(out.limit, Some(LimitHit::CpuTime), "{out:?}");
    assert!(
        out.cpu_time <= out.wall_time + Duration::from_millis(300),
        "{out:?}"
    );
}

#[test]
fn an_x32_system_call_kills_the_program() {
    let Some(out) = c(
        "#include <unistd.h>\n#include <sys/syscall.h>\nint main(void){ syscall(0x40000000 + SYS_getpid); return 0; }",
        Limits::default(),
    ) else {
        return;
    };
    assert_eq!(
        out.termination,
        Termination::Signaled(libc::SIGSYS),
        "{out:?}"
    );
    assert_eq!(status(&out), Status::RuntimeOther.id());
}
