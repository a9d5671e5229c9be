//! One submission from source to verdict, as Judge0 runs it: the source into a fresh box,
//! compiled there (inside the sandbox, like everything else), run `number_of_runs` times
//! with the submission's input and limits, and judged against the expected output.

use std::time::Duration;

use crate::{
    languages::{HEAP_MB, Language, OPTIONS},
    sandbox::{Command, Limits, OpenBox, Outcome, Sandbox, Termination},
    status::{Status, classify},
};

/// What a submission asks for, already validated (sizes and limits within the maxima).
#[derive(Debug, Clone)]
pub struct Request {
    pub source: Vec<u8>,
    pub stdin: Vec<u8>,
    pub expected_output: Option<Vec<u8>>,
    /// Split as a shell would (quotes group words); nothing is run through a shell.
    pub compiler_options: Option<String>,
    pub command_line_arguments: Option<String>,
    pub limits: Limits,
    pub number_of_runs: u32,
    pub redirect_stderr_to_stdout: bool,
}

/// Judge0's result fields for a finished submission.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub status: Status,
    pub message: Option<String>,
    pub stdout: Option<Vec<u8>>,
    pub stderr: Option<Vec<u8>>,
    pub compile_output: Option<Vec<u8>>,
    /// CPU time in seconds (the mean over the runs).
    pub time: Option<f64>,
    pub wall_time: Option<f64>,
    /// Peak memory in KB (the mean over the runs).
    pub memory: Option<u64>,
    pub exit_code: Option<i32>,
    pub exit_signal: Option<i32>,
}

impl Verdict {
    /// Status 13, Internal Error: the sandbox failed, not the program.
    pub fn internal(message: String) -> Self {
        Self {
            message: Some(message),
            ..Self::bare(Status::InternalError)
        }
    }

    /// `status` and nothing else.
    fn bare(status: Status) -> Self {
        Self {
            status,
            message: None,
            stdout: None,
            stderr: None,
            compile_output: None,
            time: None,
            wall_time: None,
            memory: None,
            exit_code: None,
            exit_signal: None,
        }
    }
}

/// The fixed environment every program gets (nothing of the service's own).
pub fn base_env() -> Vec<(String, String)> {
    [
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("HOME", "/box"),
        ("TMPDIR", "/tmp"),
        ("LANG", "C.UTF-8"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Runs `request` in `language` (blocking: call it off the async runtime; it waits for a free
/// slot). Compilation gets `compile_limits`; the runs get the submission's.
pub fn judge(
    sandbox: &Sandbox,
    language: &Language,
    compile_limits: &Limits,
    request: &Request,
) -> Verdict {
    match open(sandbox, language, request) {
        Ok(b) => judge_in(b, language, compile_limits, request),
        Err(err) => Verdict::internal(format!("{err:#}")),
    }
}

/// A box holding the submission's source (waits for a free slot).
pub fn open<'a>(
    sandbox: &'a Sandbox,
    language: &Language,
    request: &Request,
) -> anyhow::Result<OpenBox<'a>> {
    sandbox.open(&[(language.source_file, &request.source)])
}

/// [`judge`] in a box [`open`] made.
pub fn judge_in(
    mut b: OpenBox<'_>,
    language: &Language,
    compile_limits: &Limits,
    request: &Request,
) -> Verdict {
    let options = match words(request.compiler_options.as_deref(), "compiler_options") {
        Ok(words) => words,
        Err(message) => return Verdict::internal(message),
    };
    let arguments = match words(
        request.command_line_arguments.as_deref(),
        "command_line_arguments",
    ) {
        Ok(words) => words,
        Err(message) => return Verdict::internal(message),
    };
    let mut env = base_env();
    env.extend(
        language
            .env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let mut compile_output = None;
    if let Some(compile) = &language.compile {
        let argv = expand(compile, &options, compile_limits);
        let compiled = b.run(&Command {
            argv,
            env: env.clone(),
            stdin: vec![],
            merge_stderr: true,
            limits: compile_limits.clone(),
        });
        let compiled = match compiled {
            Ok(outcome) => outcome,
            Err(err) => return Verdict::internal(err.to_string()),
        };
        if compiled.termination != Termination::Exited(0) || compiled.limit.is_some() {
            let mut output = compiled.stdout;
            let message = compiled
                .limit
                .map(|_| "Compilation time or memory limit exceeded");
            if output.is_empty()
                && let Some(m) = message
            {
                output = m.as_bytes().to_vec();
            }
            return Verdict {
                message: message.map(str::to_owned),
                compile_output: Some(output),
                exit_code: match compiled.termination {
                    Termination::Exited(code) => Some(code),
                    _ => None,
                },
                ..Verdict::bare(Status::CompilationError)
            };
        }
        if !compiled.stdout.is_empty() {
            // Warnings: Judge0 returns them with an accepted compilation too.
            compile_output = Some(compiled.stdout);
        }
    }
    let mut argv = expand(&language.run, &[], &request.limits);
    argv.extend(arguments);
    let command = Command {
        argv,
        env,
        stdin: request.stdin.clone(),
        merge_stderr: request.redirect_stderr_to_stdout,
        limits: Limits {
            limit_address_space: language.limit_address_space,
            ..request.limits.clone()
        },
    };
    let mut runs: Vec<Outcome> = Vec::new();
    for _ in 0..request.number_of_runs.max(1) {
        let outcome = match b.run(&command) {
            Ok(outcome) => outcome,
            Err(err) => return Verdict::internal(err.to_string()),
        };
        let failed = classify(&outcome, request.expected_output.as_deref()).0 != Status::Accepted;
        runs.push(outcome);
        if failed {
            break;
        }
    }
    let n = runs.len() as f64;
    let time = runs.iter().map(|r| r.cpu_time.as_secs_f64()).sum::<f64>() / n;
    let wall_time = runs.iter().map(|r| r.wall_time.as_secs_f64()).sum::<f64>() / n;
    // Unknown where a run's peak could not be measured (no cgroup, and a peak below what its
    // process started with).
    let memory = runs
        .iter()
        .map(|r| r.memory_bytes.map(|b| b / 1024))
        .sum::<Option<u64>>()
        .map(|total| total / runs.len() as u64);
    let Some(last) = runs.pop() else {
        return Verdict::internal("no run took place".into());
    };
    let (status, message) = classify(&last, request.expected_output.as_deref());
    let (exit_code, exit_signal) = match last.termination {
        Termination::Exited(code) => (Some(code), None),
        Termination::Signaled(signal) => (None, Some(signal)),
        Termination::NotExecutable => (None, None),
    };
    Verdict {
        status,
        message: message.map(str::to_owned),
        stdout: Some(last.stdout),
        stderr: (!request.redirect_stderr_to_stdout).then_some(last.stderr),
        compile_output,
        time: Some(round_ms(time)),
        wall_time: Some(round_ms(wall_time)),
        memory,
        exit_code,
        exit_signal,
    }
}

/// Seconds to the millisecond, as Judge0 reports them.
fn round_ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

fn words(text: Option<&str>, field: &str) -> Result<Vec<String>, String> {
    match text {
        None => Ok(vec![]),
        Some(text) => shlex::split(text).ok_or_else(|| format!("{field}: unbalanced quotes")),
    }
}

/// A command line with its placeholders filled.
fn expand(template: &[&str], options: &[String], limits: &Limits) -> Vec<String> {
    let mut out = Vec::with_capacity(template.len() + options.len());
    for part in template {
        match *part {
            OPTIONS => out.extend(options.iter().cloned()),
            HEAP_MB => out.push(format!("-Xmx{}m", heap_mb(limits.memory_bytes))),
            other => out.push(other.to_owned()),
        }
    }
    out
}

/// Three quarters of the memory limit for the heap; the rest is the runtime's own.
fn heap_mb(memory_bytes: u64) -> u64 {
    (memory_bytes / (1 << 20) * 3 / 4).max(16)
}

/// Judge0's defaults and maxima for a submission's limits (seconds, KB), as `/config_info`
/// reports them; ours default to 5 s of CPU and 128 MB, as the tutor product expects.
pub mod defaults {
    pub const CPU_TIME_LIMIT: f64 = 5.0;
    pub const MAX_CPU_TIME_LIMIT: f64 = 15.0;
    pub const CPU_EXTRA_TIME: f64 = 1.0;
    pub const MAX_CPU_EXTRA_TIME: f64 = 5.0;
    pub const WALL_TIME_LIMIT: f64 = 10.0;
    pub const MAX_WALL_TIME_LIMIT: f64 = 20.0;
    pub const MEMORY_LIMIT: u64 = 128_000;
    pub const MAX_MEMORY_LIMIT: u64 = 512_000;
    pub const STACK_LIMIT: u64 = 64_000;
    pub const MAX_STACK_LIMIT: u64 = 128_000;
    pub const MAX_PROCESSES_AND_OR_THREADS: u64 = 60;
    pub const MAX_MAX_PROCESSES_AND_OR_THREADS: u64 = 120;
    pub const MAX_FILE_SIZE: u64 = 1024;
    pub const MAX_MAX_FILE_SIZE: u64 = 4096;
    pub const NUMBER_OF_RUNS: u32 = 1;
    pub const MAX_NUMBER_OF_RUNS: u32 = 20;
}

/// Limits from Judge0's units (seconds, KB); `max_output_bytes` caps stdout and stderr each.
#[allow(clippy::too_many_arguments)]
pub fn limits(
    cpu_time_limit: f64,
    cpu_extra_time: f64,
    wall_time_limit: f64,
    memory_limit_kb: u64,
    stack_limit_kb: u64,
    max_processes: u64,
    max_file_size_kb: u64,
    max_output_bytes: usize,
) -> Limits {
    Limits {
        cpu_time: Duration::from_secs_f64(cpu_time_limit),
        cpu_extra_time: Duration::from_secs_f64(cpu_extra_time),
        wall_time: Duration::from_secs_f64(wall_time_limit),
        memory_bytes: memory_limit_kb * 1024,
        stack_bytes: stack_limit_kb * 1024,
        max_processes,
        max_file_bytes: max_file_size_kb * 1024,
        max_output_bytes,
        limit_address_space: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_options_split_as_a_shell_would() {
        let options = words(Some("-O2 -D NAME='a b'"), "compiler_options").unwrap();
        assert_eq!(options, ["-O2", "-D", "NAME=a b"]);
        let limits = Limits::default();
        assert_eq!(
            expand(&["/usr/bin/gcc", OPTIONS, "main.c"], &options, &limits),
            ["/usr/bin/gcc", "-O2", "-D", "NAME=a b", "main.c"]
        );
        assert_eq!(
            expand(&["/usr/bin/java", HEAP_MB, "Main"], &[], &limits),
            ["/usr/bin/java", "-Xmx96m", "Main"]
        );
        assert!(words(Some("'open"), "compiler_options").is_err());
    }
}
