//! The EXAMPLES section of every man page: commands a reader can copy, each with what it answers.
//!
//! Every command here is parsed with the real CLI in the tests, so an example cannot outlive a flag.

use roff::{bold, roman, Roff};

/// One example: a command line (no pipes, no quotes: words split on spaces) and what it does.
#[derive(Debug, Clone, Copy)]
pub struct Example {
    pub command: &'static str,
    pub what: &'static str,
}

const fn ex(command: &'static str, what: &'static str) -> Example {
    Example { command, what }
}

/// Each page's examples, by its file name (`tune-check.1`, `tune-knobs.7`).
static PAGES: &[(&str, &[Example])] = &[
    ("tune.1", &[
            ex("tune check --target 100000", "Which limit stops this host before 100,000 connections, and how to raise it."),
            ex("tune apply --profile 1m --dry-run", "What applying the 1m profile would change, without changing it."),
            ex("tune serve --verify 20000", "Prove the host holds 20,000 connections with the embedded server and load generator."),
            ex("tune explain somaxconn", "What net.core.somaxconn is, how it is read, and how to raise it now and at boot."),
    ]),
    ("tune-check.1", &[
            ex("tune check --target 100000", "Compare the host with what 100,000 server connections need; exit 1 if something falls short."),
            ex("tune check --profile 1m --format json", "The same for the shipped 1m profile, as JSON for scripts."),
            ex("tune check --target 20000 --role loopback --pid 1234", "Judge process 1234's RLIMIT_NOFILE for 20,000 loopback pairs."),
            ex("tune check --profile 10k --format junit --strict", "A JUnit report for CI, in which warnings fail too."),
            ex("tune check --target 100000 --unit ./myserver.service", "Judge a service before it runs, as systemd would start it: its User=, LimitNOFILE= (drop-ins included) and MemoryMax=."),
            ex("tune check --target 100000 --user nobody", "Judge a login session of user nobody: its pam_limits nofile, and fs.file-max, which binds a user without CAP_SYS_ADMIN."),
    ]),
    ("tune-apply.1", &[
            ex("tune apply --profile 100k --dry-run", "Print the plan for the 100k profile and change nothing."),
            ex("tune apply --profile 100k --persist --yes", "Raise what falls short now and write the boot-time files, without asking."),
            ex("tune apply --profile 1m --pid 1234 --persist --service myapp.service", "Also raise RLIMIT_NOFILE of process 1234 and of its unit at its next start."),
    ]),
    ("tune-rollback.1", &[
            ex("tune rollback --list", "List the recorded applies."),
            ex("tune rollback", "Undo the last apply: values, files and limits as they were before it."),
    ]),
    ("tune-serve.1", &[
            ex("tune serve --listen 0.0.0.0:8080 --workers 2", "Serve websocket echo on port 8080 with two worker processes."),
            ex("tune serve --verify 20000", "Open 20,000 loopback connections against the server, hold them, echo on each, and report what bound."),
    ]),
    ("tune-top.1", &[
            ex("tune top", "Watch every limit's headroom, refreshed every second; s sorts, p pauses, q quits."),
            ex("tune top --pid 1234", "Only process 1234's fds beside the host-wide limits."),
            ex("tune top --once", "One frame as plain text, for scripts and bug reports."),
            ex("tune top --listen 127.0.0.1:9377", "Serve the figures to Prometheus at http://127.0.0.1:9377/metrics."),
    ]),
    ("tune-load.1", &[
            ex("tune load ws://10.0.0.5:8080/ --conns 50000", "Open 50,000 connections to a websocket server elsewhere and report what was reached."),
    ]),
    ("tune-explain.1", &[
            ex("tune explain somaxconn", "One knob, by its name or a unique end of it."),
            ex("tune explain all", "Every knob, as tune-knobs(7) lists them."),
    ]),
    ("tune-profiles.1", &[
            ex("tune profiles list", "The shipped profiles and those in /etc/tune/profiles/."),
            ex("tune profiles show 1m", "The 1m profile resolved: inheritance flattened, formulas evaluated."),
    ]),
    ("tune-profiles-list.1", &[ex("tune profiles list", "The profiles, with target, role and what each extends.")]),
    ("tune-profiles-show.1", &[
            ex("tune profiles show 100k", "A shipped profile, every requirement with its reason."),
            ex("tune profiles show ./edge.toml", "A profile file of your own, as check would use it."),
    ]),
    ("tune-generate.1", &[
            ex("tune generate man --out ./man", "Write the man pages into ./man."),
            ex("tune generate completions bash", "Print the bash completion script."),
    ]),
    ("tune-generate-man.1", &[ex("tune generate man --out man", "Write every page into ./man, replacing older ones.")]),
    ("tune-generate-completions.1", &[
            ex("tune generate completions zsh", "Print the zsh completion script (save it as _tune on your fpath)."),
    ]),
    ("tune-profiles.5", &[
            ex("tune profiles show ./edge.toml", "Check that a profile of your own parses, and see what it resolves to."),
            ex("tune check --profile ./edge.toml", "Check the host against it."),
    ]),
    ("tune-knobs.7", &[
            ex("tune explain tcp_mem", "One entry of this page in the terminal."),
            ex("tune explain all", "Every entry of this page in the terminal."),
    ]),
];

/// The examples of a page, by its file name; none for a page not listed.
pub fn for_page(file_name: &str) -> &'static [Example] {
    PAGES
        .iter()
        .find(|(f, _)| *f == file_name)
        .map_or(&[], |(_, e)| e)
}

/// The `.SH EXAMPLES` section of a page.
pub fn section(r: &mut Roff, examples: &[Example]) {
    r.control("SH", ["EXAMPLES"]);
    entries(r, examples);
}

/// The examples without a heading, for a page whose EXAMPLES section says more.
pub fn entries(r: &mut Roff, examples: &[Example]) {
    for e in examples {
        r.control("PP", []);
        r.text([roman(e.what)]);
        r.control("RS", ["4"]);
        r.text([bold(e.command)]);
        r.control("RE", []);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn every_page_has_examples_that_parse() {
        for page in super::super::tests::pages() {
            let examples = for_page(&page.file_name);
            assert!(!examples.is_empty(), "{}: no examples", page.file_name);
            assert!(page.roff.contains(".SH EXAMPLES"), "{}", page.file_name);
            for e in examples {
                let words: Vec<&str> = e.command.split_whitespace().collect();
                assert_eq!(words[0], "tune", "{}", e.command);
                if let Err(err) = crate::cli::Cli::try_parse_from(&words) {
                    panic!(
                        "{}: example {:?} does not parse: {err}",
                        page.file_name, e.command
                    );
                }
            }
        }
    }
}
