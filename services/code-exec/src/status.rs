//! Judge0's statuses (same ids, same descriptions) and how a sandboxed run maps onto them.

use crate::sandbox::{LimitHit, Outcome, Termination};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    InQueue = 1,
    Processing = 2,
    Accepted = 3,
    WrongAnswer = 4,
    TimeLimitExceeded = 5,
    CompilationError = 6,
    RuntimeSigsegv = 7,
    RuntimeSigxfsz = 8,
    RuntimeSigfpe = 9,
    RuntimeSigabrt = 10,
    RuntimeNzec = 11,
    RuntimeOther = 12,
    InternalError = 13,
    ExecFormatError = 14,
}

impl Status {
    pub const ALL: [Status; 14] = [
        Self::InQueue,
        Self::Processing,
        Self::Accepted,
        Self::WrongAnswer,
        Self::TimeLimitExceeded,
        Self::CompilationError,
        Self::RuntimeSigsegv,
        Self::RuntimeSigxfsz,
        Self::RuntimeSigfpe,
        Self::RuntimeSigabrt,
        Self::RuntimeNzec,
        Self::RuntimeOther,
        Self::InternalError,
        Self::ExecFormatError,
    ];

    pub fn id(self) -> u8 {
        self as u8
    }

    /// The status with Judge0's id `id` as stored; an unknown one reads as Internal Error.
    pub fn from_id(id: i32) -> Self {
        Self::ALL
            .iter()
            .find(|s| i32::from(s.id()) == id)
            .copied()
            .unwrap_or(Self::InternalError)
    }

    pub fn description(self) -> &'static str {
        match self {
            Self::InQueue => "In Queue",
            Self::Processing => "Processing",
            Self::Accepted => "Accepted",
            Self::WrongAnswer => "Wrong Answer",
            Self::TimeLimitExceeded => "Time Limit Exceeded",
            Self::CompilationError => "Compilation Error",
            Self::RuntimeSigsegv => "Runtime Error (SIGSEGV)",
            Self::RuntimeSigxfsz => "Runtime Error (SIGXFSZ)",
            Self::RuntimeSigfpe => "Runtime Error (SIGFPE)",
            Self::RuntimeSigabrt => "Runtime Error (SIGABRT)",
            Self::RuntimeNzec => "Runtime Error (NZEC)",
            Self::RuntimeOther => "Runtime Error (Other)",
            Self::InternalError => "Internal Error",
            Self::ExecFormatError => "Exec Format Error",
        }
    }
}

/// The status of a finished run, and Judge0's `message` where it says more than the status.
/// `expected` is the submission's expected output, compared as Judge0 does: line by line,
/// ignoring trailing whitespace on each line and trailing empty lines.
pub fn classify(outcome: &Outcome, expected: Option<&[u8]>) -> (Status, Option<&'static str>) {
    match outcome.limit {
        Some(LimitHit::CpuTime) => return (Status::TimeLimitExceeded, None),
        Some(LimitHit::WallTime) => {
            return (Status::TimeLimitExceeded, Some("Wall time limit exceeded"));
        }
        Some(LimitHit::Memory) => {
            return (Status::RuntimeOther, Some("Memory limit exceeded"));
        }
        Some(LimitHit::Output) => {
            return (Status::RuntimeOther, Some("Output limit exceeded"));
        }
        None => {}
    }
    match outcome.termination {
        Termination::Signaled(signal) => (
            match signal {
                libc::SIGSEGV | libc::SIGBUS => Status::RuntimeSigsegv,
                libc::SIGXFSZ => Status::RuntimeSigxfsz,
                libc::SIGFPE => Status::RuntimeSigfpe,
                libc::SIGABRT => Status::RuntimeSigabrt,
                libc::SIGXCPU => Status::TimeLimitExceeded,
                _ => Status::RuntimeOther,
            },
            None,
        ),
        Termination::Exited(0) => match expected {
            Some(expected) if !same_output(&outcome.stdout, expected) => {
                (Status::WrongAnswer, None)
            }
            _ => (Status::Accepted, None),
        },
        Termination::Exited(_) => (Status::RuntimeNzec, None),
        Termination::NotExecutable => (Status::ExecFormatError, None),
    }
}

fn same_output(actual: &[u8], expected: &[u8]) -> bool {
    fn lines(text: &[u8]) -> Vec<&[u8]> {
        let mut lines: Vec<&[u8]> = text
            .split(|&b| b == b'\n')
            .map(|l| l.trim_ascii_end())
            .collect();
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        lines
    }
    lines(actual) == lines(expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_compared_as_judge0_does() {
        assert!(same_output(b"1 2\n3\n", b"1 2 \n3"));
        assert!(same_output(b"x\r\n\n\n", b"x"));
        assert!(!same_output(b"x\ny", b"x y"));
        assert!(!same_output(b" x", b"x"));
    }

    #[test]
    fn ids_and_descriptions_are_judge0s() {
        let ids: Vec<u8> = Status::ALL.iter().map(|s| s.id()).collect();
        assert_eq!(ids, (1..=14).collect::<Vec<u8>>());
        assert_eq!(Status::RuntimeNzec.description(), "Runtime Error (NZEC)");
    }
}
