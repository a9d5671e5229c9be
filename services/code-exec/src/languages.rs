//! The languages this host can run: each known toolchain whose files are installed, found at
//! start, under Judge0's language id, and named with the version the toolchain reports.

use std::{path::Path, process::Stdio, time::Duration};

/// A language the service offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Language {
    /// Judge0's id for this language.
    pub id: u32,
    /// As Judge0 names languages: "Python (3.11.2)".
    pub name: String,
    /// The file the source is written to, in the box.
    pub source_file: &'static str,
    /// The compiler's command line (`OPTIONS` stands for the submission's compiler options),
    /// for compiled languages.
    pub compile: Option<Vec<&'static str>>,
    /// The program's command line (the submission's arguments follow); `HEAP_MB` stands for
    /// the heap a managed runtime may use under the memory limit.
    pub run: Vec<&'static str>,
    /// Variables added to the fixed environment.
    pub env: Vec<(&'static str, &'static str)>,
    /// Cap the address space too (C, C++, Python); the JVM, Node.js and Go reserve large
    /// virtual ranges up front and cannot start under it (the cgroup caps them instead).
    pub limit_address_space: bool,
}

/// Stands for the submission's compiler options (zero or more arguments).
pub const OPTIONS: &str = "{compiler_options}";
/// Stands for the heap size in MiB a managed runtime may use.
pub const HEAP_MB: &str = "{heap_mb}";

struct Known {
    id: u32,
    /// The name, `{}` standing for the version.
    label: &'static str,
    /// The toolchain's main file: the language is offered only when it exists.
    tool: &'static str,
    /// Arguments that make `tool` print its version.
    version_args: &'static [&'static str],
    source_file: &'static str,
    compile: Option<&'static [&'static str]>,
    run: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    limit_address_space: bool,
}

const KNOWN: &[Known] = &[
    Known {
        id: 46,
        label: "Bash ({})",
        tool: "/bin/bash",
        version_args: &["--version"],
        source_file: "script.sh",
        compile: None,
        run: &["/bin/bash", "script.sh"],
        env: &[],
        limit_address_space: true,
    },
    Known {
        id: 50,
        label: "C (GCC {})",
        tool: "/usr/bin/gcc",
        version_args: &["-dumpfullversion"],
        source_file: "main.c",
        compile: Some(&["/usr/bin/gcc", OPTIONS, "-o", "main", "main.c", "-lm"]),
        run: &["/box/main"],
        env: &[],
        limit_address_space: true,
    },
    Known {
        id: 54,
        label: "C++ (GCC {})",
        tool: "/usr/bin/g++",
        version_args: &["-dumpfullversion"],
        source_file: "main.cpp",
        compile: Some(&["/usr/bin/g++", OPTIONS, "-o", "main", "main.cpp"]),
        run: &["/box/main"],
        env: &[],
        limit_address_space: true,
    },
    Known {
        id: 60,
        label: "Go ({})",
        tool: "/usr/bin/go",
        version_args: &["version"],
        source_file: "main.go",
        compile: Some(&["/usr/bin/go", "build", OPTIONS, "-o", "main", "main.go"]),
        run: &["/box/main"],
        env: &[
            ("GOCACHE", "/tmp/go-cache"),
            ("GOPATH", "/tmp/go"),
            ("GO111MODULE", "off"),
            ("GOMAXPROCS", "1"),
        ],
        limit_address_space: false,
    },
    Known {
        id: 62,
        label: "Java (OpenJDK {})",
        tool: "/usr/bin/javac",
        version_args: &["-version"],
        source_file: "Main.java",
        compile: Some(&[
            "/usr/bin/javac",
            "-J-XX:+UseSerialGC",
            "-J-XX:TieredStopAtLevel=1",
            OPTIONS,
            "Main.java",
        ]),
        run: &[
            "/usr/bin/java",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Xss8m",
            HEAP_MB,
            "Main",
        ],
        env: &[],
        limit_address_space: false,
    },
    Known {
        id: 63,
        label: "JavaScript (Node.js {})",
        tool: "/usr/bin/node",
        version_args: &["--version"],
        source_file: "script.js",
        compile: None,
        run: &["/usr/bin/node", "script.js"],
        env: &[],
        limit_address_space: false,
    },
    Known {
        id: 71,
        label: "Python ({})",
        tool: "/usr/bin/python3",
        version_args: &["--version"],
        source_file: "script.py",
        compile: None,
        run: &["/usr/bin/python3", "script.py"],
        env: &[("PYTHONDONTWRITEBYTECODE", "1"), ("PYTHONUNBUFFERED", "1")],
        limit_address_space: true,
    },
    Known {
        id: 73,
        label: "Rust ({})",
        tool: "/usr/bin/rustc",
        version_args: &["--version"],
        source_file: "main.rs",
        compile: Some(&["/usr/bin/rustc", OPTIONS, "-o", "main", "main.rs"]),
        run: &["/box/main"],
        env: &[],
        limit_address_space: false,
    },
];

/// The languages whose toolchains are installed here, by id.
pub fn discover() -> Vec<Language> {
    KNOWN
        .iter()
        .filter(|k| Path::new(k.tool).exists())
        .map(|k| {
            let version = version(k.tool, k.version_args).unwrap_or_else(|| "unknown".into());
            Language {
                id: k.id,
                name: k.label.replace("{}", &version),
                source_file: k.source_file,
                compile: k.compile.map(<[_]>::to_vec),
                run: k.run.to_vec(),
                env: k.env.to_vec(),
                limit_address_space: k.limit_address_space,
            }
        })
        .collect()
}

/// The first dotted version number the tool prints (on stdout or stderr), within 10 s.
fn version(tool: &str, args: &[&str]) -> Option<String> {
    let mut child = std::process::Command::new(tool)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().ok()?.is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().ok()?;
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    first_version(&text)
}

fn first_version(text: &str) -> Option<String> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map(|word| word.trim_matches('.'))
        .find(|word| word.contains('.') && word.split('.').all(|p| !p.is_empty()))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_as_the_tools_print_them() {
        assert_eq!(first_version("Python 3.11.2").as_deref(), Some("3.11.2"));
        assert_eq!(first_version("v20.20.2\n").as_deref(), Some("20.20.2"));
        assert_eq!(
            first_version("GNU bash, version 5.2.15(1)-release (x86_64-pc-linux-gnu)").as_deref(),
            Some("5.2.15")
        );
        assert_eq!(
            first_version("go version go1.19.8 linux/amd64").as_deref(),
            Some("1.19.8")
        );
        assert_eq!(first_version("javac 17.0.15").as_deref(), Some("17.0.15"));
        assert_eq!(first_version("no version here"), None);
    }

    #[test]
    fn ids_are_judge0s_and_unique() {
        let ids: Vec<u32> = KNOWN.iter().map(|k| k.id).collect();
        assert_eq!(ids, [46, 50, 54, 60, 62, 63, 71, 73]);
    }
}
