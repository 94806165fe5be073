//! `tune generate completions` through the binary, loaded into the real shells: bash and fish complete knob names, zsh parses its script.
//!
//! bash is always there. zsh and fish are installed by scripts/test-all, which
//! sets TUNE_TEST_SHELLS=1 so that a missing shell fails the run; elsewhere a
//! missing zsh or fish skips those two tests with a message.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::tune;

fn script(shell: &str) -> (tempfile::TempDir, PathBuf) {
    let out = tune()
        .args(["generate", "completions", shell])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "generate completions {shell}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.stdout.is_empty(), "{shell}: empty script");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("tune.{shell}"));
    std::fs::write(&path, out.stdout).unwrap();
    (dir, path)
}

/// Is `shell` installed? When scripts/test-all asks for the shells, a missing one is a failure.
fn have(shell: &str) -> bool {
    let found = Command::new(shell)
        .args(["-c", "exit 0"])
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("TUNE_TEST_SHELLS").is_none(),
            "{shell} is not installed but TUNE_TEST_SHELLS is set: apt-get install {shell}"
        );
        crate::support::skip(
            "generate_completions",
            &format!("{shell} is not installed (scripts/test-all installs it)"),
        );
    }
    found
}

/// What bash's completion function offers for `words` (the last one being completed).
fn bash_complete(script: &Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source '{}'\nCOMP_WORDS=({})\nCOMP_CWORD={}\nCOMP_LINE='{}'\nCOMP_POINT=${{#COMP_LINE}}\n_tune tune '{}' '{}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        script.display(),
        quoted.join(" "),
        words.len() - 1,
        words.join(" "),
        words[words.len() - 1],
        words[words.len() - 2],
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bash completion failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_script_parses() {
    let (_dir, path) = script("bash");
    let ok = Command::new("bash").arg("-n").arg(&path).status().unwrap();
    assert!(ok.success(), "bash -n rejects the script");
}

#[test]
fn bash_completes_subcommands_and_knob_names() {
    let (_dir, path) = script("bash");
    let subs = bash_complete(&path, &["tune", ""]);
    for sub in ["check", "apply", "rollback", "explain", "generate"] {
        assert!(
            subs.iter().any(|s| s == sub),
            "tune <TAB>: {sub} missing from {subs:?}"
        );
    }
    assert!(
        subs.iter().all(|s| !s.starts_with("__")),
        "hidden workers offered: {subs:?}"
    );

    let knobs = bash_complete(&path, &["tune", "explain", "net.core.s"]);
    assert_eq!(knobs, vec!["net.core.somaxconn".to_string()]);

    let all = bash_complete(&path, &["tune", "explain", ""]);
    for knob in tune::knobs::REGISTRY {
        assert!(
            all.iter().any(|s| s == knob.name),
            "explain <TAB>: {} missing",
            knob.name
        );
    }

    let ignore = bash_complete(&path, &["tune", "check", "--ignore", "fs.n"]);
    assert_eq!(ignore, vec!["fs.nr_open".to_string()]);
}

#[test]
fn fish_completes_knob_names() {
    if !have("fish") {
        return;
    }
    let (_dir, path) = script("fish");
    let ok = Command::new("fish")
        .arg("--no-execute")
        .arg(&path)
        .status()
        .unwrap();
    assert!(ok.success(), "fish --no-execute rejects the script");
    let out = Command::new("fish")
        .args(["--no-config", "-c"])
        .arg(format!(
            "source '{}'; complete -C 'tune explain net.ipv4.tcp_m'",
            path.display()
        ))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let offered: Vec<&str> = text
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert!(
        offered.contains(&"net.ipv4.tcp_mem"),
        "fish offered {offered:?}"
    );
    assert!(
        offered.contains(&"net.ipv4.tcp_max_syn_backlog"),
        "fish offered {offered:?}"
    );
    assert!(
        !offered.contains(&"net.core.somaxconn"),
        "fish offered {offered:?}"
    );
}

#[test]
fn zsh_script_parses_and_defines_the_completion_function() {
    if !have("zsh") {
        return;
    }
    let (dir, path) = script("zsh");
    let ok = Command::new("zsh").arg("-n").arg(&path).status().unwrap();
    assert!(ok.success(), "zsh -n rejects the script");
    // Load it the way a user does: as _tune on fpath, through compinit.
    std::fs::rename(&path, dir.path().join("_tune")).unwrap();
    let out = Command::new("zsh")
        .args(["-f", "-c"])
        .arg(format!(
            "fpath=('{}' $fpath); autoload -Uz compinit; compinit -u -D; autoload +X _tune && whence -w _tune && echo \"$_comps[tune]\"",
            dir.path().display()
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && text.contains("_tune: function")
            && text.lines().any(|l| l == "_tune"),
        "zsh did not register _tune for tune: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = std::fs::read_to_string(dir.path().join("_tune")).unwrap();
    assert!(
        body.contains("net.core.somaxconn"),
        "zsh script offers no knob names"
    );
}

/// Until docs::sources is wired to the profile module there are no names: then this checks nothing.
#[test]
fn bash_offers_the_shipped_profile_names_for_profile_arguments() {
    let mut shipped: Vec<String> = tune::docs::sources::shipped_profiles()
        .iter()
        .map(|p| p.name.to_string())
        .collect();
    shipped.sort();
    if shipped.is_empty() {
        crate::support::skip(
            "generate_completions",
            "no shipped profiles in docs::sources: nothing to offer",
        );
        return;
    }
    let (_dir, path) = script("bash");
    for words in [
        &["tune", "check", "--profile", ""][..],
        &["tune", "apply", "--profile", ""][..],
        &["tune", "profiles", "show", ""][..],
    ] {
        // Positionals are offered next to the options; the options are not what this test is about.
        let mut offered: Vec<String> = bash_complete(&path, words)
            .into_iter()
            .filter(|o| !o.starts_with('-'))
            .collect();
        offered.sort();
        assert_eq!(offered, shipped, "{words:?}");
    }
}
