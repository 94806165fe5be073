//! README.md's `console` blocks run as tests: each `$ ` line is run with `sh -c` from the
//! repository's root (the built `tune` first on PATH, 80 columns), and what it prints (stdout
//! and stderr, in order) must match the lines below it, the conventions of trycmd/snapbox:
//! `[..]` in a line matches any text within that line, a line `...` matches any number of
//! lines, and a last line `[exit N]` is the exit code (0 when absent). A changed behaviour then
//! fails here instead of leaving the README wrong. A transcript that cannot run here (ansible,
//! kubectl, a multi-host bench, a server stopped by Ctrl-C) is a `text` block with a
//! `<!-- not run...: why -->` line right above it, which a test below requires.

use std::path::Path;

/// One command of a block and the output the README shows for it.
#[derive(Debug)]
struct Case {
    line: usize,
    command: String,
    expected: Vec<String>,
    exit: i32,
}

/// The commands of every ```console block of `text`.
fn cases(text: &str) -> Vec<Case> {
    let mut out: Vec<Case> = Vec::new();
    let mut inside = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_end() == "```console" {
            inside = true;
            continue;
        }
        if inside && line.starts_with("```") {
            inside = false;
            continue;
        }
        if !inside {
            continue;
        }
        if let Some(cmd) = line.strip_prefix("$ ") {
            out.push(Case {
                line: i + 1,
                command: cmd.to_string(),
                expected: Vec::new(),
                exit: 0,
            });
        } else if let Some(case) = out.last_mut() {
            match line
                .strip_prefix("[exit ")
                .and_then(|r| r.strip_suffix(']'))
            {
                Some(code) => case.exit = code.parse().expect("[exit N]"),
                None => case.expected.push(line.to_string()),
            }
        }
    }
    out
}

/// Does `actual` match the pattern line `want` (`[..]`: any text)?
fn line_matches(want: &str, actual: &str) -> bool {
    let parts: Vec<&str> = want.split("[..]").collect();
    if parts.len() == 1 {
        return want == actual;
    }
    let mut rest = actual;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(at) = rest.find(part) else {
                return false;
            };
            rest = &rest[at + part.len()..];
        }
    }
    true
}

/// Does `actual` match `want`, line by line, a `...` line matching any number of lines?
fn matches(want: &[String], actual: &[&str]) -> bool {
    match want.split_first() {
        None => actual.is_empty(),
        Some((w, rest)) if w == "..." => (0..=actual.len()).any(|n| matches(rest, &actual[n..])),
        Some((w, rest)) => actual
            .split_first()
            .is_some_and(|(a, more)| line_matches(w, a) && matches(rest, more)),
    }
}

fn run(case: &Case) -> (i32, String) {
    let bin = Path::new(crate::support::tune_exe()).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = crate::support::command("sh")
        .args(["-c", &format!("exec 2>&1; {}", case.command)])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PATH", path)
        .env("COLUMNS", "80")
        .env("NO_COLOR", "1")
        .env_remove("TUNE_ROOT")
        .env_remove("TUNE_STATE_DIR")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn readme_console_blocks_print_what_the_readme_shows() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let cases = cases(&readme);
    assert!(cases.len() >= 5, "{cases:#?}");
    let mut failures = Vec::new();
    for case in &cases {
        let (code, output) = run(case);
        let actual: Vec<&str> = output.lines().map(str::trim_end).collect();
        let want: Vec<String> = case
            .expected
            .iter()
            .map(|l| l.trim_end().to_string())
            .collect();
        if code != case.exit || !matches(&want, &actual) {
            failures.push(format!(
                "README.md:{}: $ {}\n--- the README shows (exit {}):\n{}\n--- it printed (exit {code}):\n{}",
                case.line,
                case.command,
                case.exit,
                want.join("\n"),
                actual.join("\n")
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn the_pattern_rules() {
    assert!(line_matches("a [..] c", "a b b c"));
    assert!(!line_matches("a [..] c", "a b b d"));
    assert!(line_matches("[..]", "anything"));
    let w = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(matches(&w(&["a", "...", "d"]), &["a", "b", "c", "d"]));
    assert!(matches(&w(&["a", "...", "d"]), &["a", "d"]));
    assert!(!matches(&w(&["a", "d"]), &["a", "b", "d"]));
    let c = cases("```console\n$ tune x\nout\n[exit 1]\n```\n```text\n$ no\n```\n");
    assert_eq!(c.len(), 1);
    assert_eq!((c[0].exit, c[0].expected.clone()), (1, w(&["out"])));
}

/// Every `text` block that is a transcript (a `$ ` command or a listing) says why it is not run,
/// and no block opens without a language: an unlabelled block would escape both this rule and
/// the console blocks' snapshot test.
#[test]
fn readme_text_transcripts_say_why_they_are_not_run() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let lines: Vec<&str> = readme.lines().collect();
    let mut unexplained = Vec::new();
    let mut in_block = false;
    for (i, l) in lines.iter().enumerate() {
        let fence = l.trim_end();
        if !fence.starts_with("```") {
            continue;
        }
        in_block = !in_block;
        if in_block && fence == "```" {
            unexplained.push(format!(
                "README.md:{}: a block without a language (text with a not-run line, or console)",
                i + 1
            ));
        }
        if fence == "```text" && i > 0 && !lines[i - 1].starts_with("<!-- not run") {
            unexplained.push(format!(
                "README.md:{}: {}",
                i + 1,
                lines.get(i + 1).unwrap_or(&"")
            ));
        }
    }
    assert!(
        unexplained.is_empty(),
        "text blocks without a `<!-- not run: why -->` line above:\n{}",
        unexplained.join("\n")
    );
}
