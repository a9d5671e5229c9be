//! Submissions from source to Judge0 verdict, in every language this host has.

use agora_code_exec::{
    judge::{Request, judge},
    languages::{Language, discover},
    sandbox::Limits,
    status::Status,
};

use crate::{compile_limits, sandbox};

fn language(id: u32) -> Option<Language> {
    discover().into_iter().find(|l| l.id == id)
}

fn request(source: &str) -> Request {
    Request {
        source: source.as_bytes().to_vec(),
        stdin: vec![],
        expected_output: None,
        compiler_options: None,
        command_line_arguments: None,
        limits: Limits::default(),
        number_of_runs: 1,
        redirect_stderr_to_stdout: false,
    }
}

const HELLO: &[(u32, &str)] = &[
    (46, "read name; echo \"hello, $name\""),
    (
        50,
        "#include <stdio.h>\nint main(void){ char n[64]; if (scanf(\"%63s\", n) != 1) return 1; printf(\"hello, %s\\n\", n); return 0; }",
    ),
    (
        54,
        "#include <iostream>\n#include <string>\nint main(){ std::string n; std::cin >> n; std::cout << \"hello, \" << n << std::endl; }",
    ),
    (
        60,
        "package main\nimport \"fmt\"\nfunc main() { var n string; fmt.Scan(&n); fmt.Println(\"hello, \" + n) }",
    ),
    (
        62,
        "import java.util.Scanner;\npublic class Main { public static void main(String[] a) { System.out.println(\"hello, \" + new Scanner(System.in).next()); } }",
    ),
    (
        63,
        "const n = require('fs').readFileSync(0, 'utf8').trim(); console.log(`hello, ${n}`);",
    ),
    (71, "print(f'hello, {input()}')"),
    (
        73,
        "use std::io::Read;\nfn main() { let mut n = String::new(); std::io::stdin().read_to_string(&mut n).unwrap(); println!(\"hello, {}\", n.trim()); }",
    ),
];

#[test]
fn every_language_found_here_runs_under_the_default_limits() {
    let Some(sandbox) = sandbox() else { return };
    let languages = discover();
    // What CI installs (scripts/ci/toolchains.sh); Bash and Rust are offered where present.
    let strict = std::env::var_os("AGORA_TEST_REQUIRE_INFRA").is_some();
    for required in [50, 54, 60, 62, 63, 71] {
        let found = languages.iter().any(|l| l.id == required);
        assert!(
            found || !strict,
            "language {required} not found: {languages:?}"
        );
        if !found {
            eprintln!("NOTE: language {required} is not installed here; not tested");
        }
    }
    for language in &languages {
        let (_, source) = HELLO
            .iter()
            .find(|(id, _)| *id == language.id)
            .expect("a program for every known language");
        let verdict = judge(
            sandbox,
            language,
            &compile_limits(),
            &Request {
                stdin: b"agora\n".to_vec(),
                expected_output: Some(b"hello, agora".to_vec()),
                ..request(source)
            },
        );
        assert_eq!(
            verdict.status,
            Status::Accepted,
            "{}: {verdict:?} {}",
            language.name,
            String::from_utf8_lossy(verdict.compile_output.as_deref().unwrap_or_default())
        );
        assert!(
            verdict.time.is_some()
                && (verdict.memory.is_some_and(|m| m > 0)
                    || crate::rootless() && verdict.memory.is_none())
        );
    }
}

#[test]
fn a_compile_error_is_status_6_with_the_compilers_message() {
    let (Some(sandbox), Some(c)) = (sandbox(), language(50)) else {
        return;
    };
    let verdict = judge(
        sandbox,
        &c,
        &compile_limits(),
        &request("int main(void) { return undeclared_name; }"),
    );
    assert_eq!(verdict.status, Status::CompilationError);
    let output =
        String::from_utf8_lossy(verdict.compile_output.as_deref().unwrap_or_default()).into_owned();
    assert!(output.contains("undeclared_name"), "{output}");
    assert_eq!(verdict.stdout, None);
}

#[test]
fn wrong_answers_runs_arguments_options_and_merged_output() {
    let (Some(sandbox), Some(python), Some(c)) = (sandbox(), language(71), language(50)) else {
        return;
    };
    let wrong = judge(
        sandbox,
        &python,
        &compile_limits(),
        &Request {
            expected_output: Some(b"4".to_vec()),
            ..request("print(2 + 3)")
        },
    );
    assert_eq!(wrong.status, Status::WrongAnswer);
    assert_eq!(wrong.stdout.as_deref(), Some(b"5\n".as_slice()));

    let args = judge(
        sandbox,
        &python,
        &compile_limits(),
        &Request {
            command_line_arguments: Some("one 'two words' \"three\"".into()),
            number_of_runs: 3,
            ..request("import sys\nprint(sys.argv[1:])")
        },
    );
    assert_eq!(args.status, Status::Accepted);
    assert_eq!(
        args.stdout.as_deref(),
        Some(b"['one', 'two words', 'three']\n".as_slice())
    );

    let merged = judge(
        sandbox,
        &python,
        &compile_limits(),
        &Request {
            redirect_stderr_to_stdout: true,
            ..request(
                "import sys\nprint('out', flush=True)\nprint('err', file=sys.stderr, flush=True)",
            )
        },
    );
    assert_eq!(merged.stdout.as_deref(), Some(b"out\nerr\n".as_slice()));
    assert_eq!(merged.stderr, None);

    let options = judge(
        sandbox,
        &c,
        &compile_limits(),
        &Request {
            compiler_options: Some("-O2 -DANSWER=42".into()),
            ..request("#include <stdio.h>\nint main(void){ printf(\"%d\\n\", ANSWER); return 0; }")
        },
    );
    assert_eq!(options.status, Status::Accepted, "{options:?}");
    assert_eq!(options.stdout.as_deref(), Some(b"42\n".as_slice()));
}

#[test]
fn a_missing_program_is_exec_format_error_and_pipes_behave_as_in_a_shell() {
    let (Some(sandbox), Some(c)) = (sandbox(), language(50)) else {
        return;
    };
    // The compiler told to write nothing: the run finds no program. The submitter's doing,
    // never an Internal Error they could cause at will.
    let verdict = judge(
        sandbox,
        &c,
        &compile_limits(),
        &Request {
            compiler_options: Some("-fsyntax-only".into()),
            ..request("int main(void){ return 0; }")
        },
    );
    assert_eq!(verdict.status, Status::ExecFormatError, "{verdict:?}");
    // SIGPIPE is not inherited ignored: `yes | head -1` ends at once.
    if let Some(bash) = language(46) {
        let verdict = judge(
            sandbox,
            &bash,
            &compile_limits(),
            &Request {
                expected_output: Some(b"y".to_vec()),
                ..request("yes | head -n 1")
            },
        );
        assert_eq!(verdict.status, Status::Accepted, "{verdict:?}");
    }
}
