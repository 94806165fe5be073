//! tune-profiles.5: the profile file format (keys, roles, inheritance, formulas) and the shipped profiles, from the domain's Role, the knob registry and the profile data.

use roff::{bold, italic, roman, Roff};

use super::sources::{self, FormulaExample, Shipped, FORMULA_TARGET};
use super::{see_also, title, Page};
use crate::knobs::Role;
use crate::knobs::{KnobId, Shape, REGISTRY};

/// The example file the page shows; a unit test loads it with the real profile loader. The knob
/// names come from the registry's ids, so a renamed knob cannot leave a stale example.
pub fn example_file() -> String {
    format!(
        r#"# /etc/tune/profiles/chat.toml: the chat gateway, 300k websockets per host
description = "chat gateway: 300k websockets per host"
target = 300000
role = "server"

[knobs]
# Each value is a floor: tune check fails below it, tune apply raises to it.
"{}" = 1000000
"{}" = 8192
"{}" = [786432, 1048576, 1572864]
"#,
        KnobId::FileMax,
        KnobId::Somaxconn,
        KnobId::TcpMem
    )
}

pub fn page(shipped: &[Shipped], formulas: &[FormulaExample]) -> Page {
    let mut r = Roff::new();
    r.control("TH", title("tune-profiles", "5").iter().map(String::as_str));
    introduction(&mut r);
    keys(&mut r);
    roles(&mut r);
    inheritance(&mut r);
    formula_section(&mut r, formulas);
    shipped_section(&mut r, shipped);
    examples_and_files(&mut r);
    see_also(
        &mut r,
        &[
            ("tune".into(), "1"),
            ("tune-check".into(), "1"),
            ("tune-apply".into(), "1"),
            ("tune-profiles".into(), "1"),
            ("tune-knobs".into(), "7"),
        ],
    );
    Page {
        file_name: "tune-profiles.5".into(),
        roff: r.render(),
    }
}

/// NAME, SYNOPSIS and DESCRIPTION.
fn introduction(r: &mut Roff) {
    r.control("SH", ["NAME"]);
    r.text([roman(
        "tune-profiles - profile files: the connection target, role and knob requirements that tune check and tune apply compare the host with",
    )]);

    r.control("SH", ["SYNOPSIS"]);
    r.text([
        bold("tune check --profile"),
        roman(" "),
        italic("NAME"),
        roman("|"),
        italic("PATH"),
    ]);
    r.control("br", []);
    r.text([italic("/etc/tune/profiles/NAME.toml")]);
    r.control("br", []);
    r.text([italic("/usr/share/tune/profiles/NAME.toml")]);

    r.control("SH", ["DESCRIPTION"]);
    r.text([roman(
        "A profile is a TOML file that says how many concurrent connections a host must hold (the target), \
         what the host does with them (the role), and the least value each knob must have. \
         --profile takes a path (anything containing a slash or ending in .toml) or a name, \
         looked up first as /etc/tune/profiles/NAME.toml, then among the shipped profiles.",
    )]);
    r.control("PP", []);
    r.text([roman(
        "The shipped profiles are built into the binary; the package also installs copies in \
         /usr/share/tune/profiles/ to read and to start from. Files in /etc/tune/profiles/ are yours.",
    )]);
}

/// KEYS: every top-level key and the knobs a profile may set.
fn keys(r: &mut Roff) {
    r.control("SH", ["KEYS"]);
    key(
        r,
        "description",
        "string, optional",
        "One line saying what the profile is for; tune profiles list prints it.",
    );
    key(
        r,
        "target",
        "integer, or a string with a suffix",
        "Concurrent connections the host must hold: 1_000_000, or \"50k\", \"1m\", \"1.5m\" in quotes \
         (k = thousand, m = million, g = billion; \"1,000,000\" as copied from tune's output works too). Knobs the profile \
         leaves out are worked out from it (see FORMULAS), and tune check reports the capacity against it.",
    );
    key(
        r,
        "role",
        "string",
        &format!(
            "What the host does with the connections: {} (see ROLES).",
            role_names().join(", ")
        ),
    );
    key(
        r,
        "extends",
        "string, optional",
        "Name or path of a profile this one starts from (see INHERITANCE).",
    );
    key(
        r,
        "headroom_percent",
        "integer, optional",
        "Percent every formula adds on top of what the connections need.",
    );
    key(
        r,
        "processes",
        "integer, optional",
        "Processes that share the connections: RLIMIT_NOFILE is worked out per process.",
    );
    key(
        r,
        "bytes_per_socket",
        "integer, optional",
        "Kernel memory one socket costs, for the memory formula.",
    );
    key(
        r,
        "bytes_per_connection",
        "integer, optional",
        "The server's own cost per connection in bytes, user and kernel memory together, as \
         tune load --server-pid measures it (its report prints the line to paste): the memory \
         formula and check's capacity then use it instead of the kernel socket alone.",
    );
    key(
        r,
        "tls_bytes_per_connection",
        "integer, optional",
        "What TLS adds to each connection in bytes (keys, sequence numbers, buffers), given or \
         measured (tune serve --verify --tls reports it): check sizes TLS connections with it, \
         and the memory formula adds target × this figure.",
    );
    key(
        r,
        "source_addresses",
        "integer, optional",
        "Source addresses a client or loopback host spreads its connections over; \
         each gets the whole ephemeral port range per destination.",
    );
    key(
        r,
        "storm",
        "string, optional",
        "The reconnect storm the host must survive, as N/SECS: N clients reconnecting within \
         SECS seconds (\"1M/30\"; \"/0\" for all at once). Raises net.core.somaxconn and \
         net.ipv4.tcp_max_syn_backlog to the clients that arrive in one second over the \
         profile's processes, and requires tcp_syncookies 1; tune check also warns when the \
         accept rate tune serve --verify --storm measured here is below N/SECS. \
         tune check --storm overrides it.",
    );
    key(
        r,
        "[knobs]",
        "table, optional",
        "One key per knob, quoted because knob names contain dots; the value is the requirement \
         and replaces what the formula gives. The comment lines above a value and the comment after it \
         are its reason, which tune check prints next to a failure. The keys a profile may set:",
    );
    r.control("RS", []);
    let settable = sources::settable_knobs();
    for knob in REGISTRY.iter().filter(|k| settable.contains(&k.name)) {
        r.control("TP", []);
        r.text([bold(knob.name)]);
        r.text([roman(format!(
            "{}, written {}; {}.",
            knob.shape.describe(knob.unit),
            toml_form(knob.shape),
            knob.compare.describe(knob.shape)
        ))]);
    }
    r.control("RE", []);
    r.control("PP", []);
    r.text([roman(
        "An unknown key, an unknown knob or a value of the wrong shape is an error that names the file, \
         the line and the knob.",
    )]);
}

/// ROLES: each role with what it costs per connection.
fn roles(r: &mut Roff) {
    r.control("SH", ["ROLES"]);
    for role in Role::ALL {
        r.control("TP", []);
        r.text([bold(role.as_str())]);
        r.text([roman(role.help())]);
    }
}

/// INHERITANCE: how extends merges, with an example.
fn inheritance(r: &mut Roff) {
    r.control("SH", ["INHERITANCE"]);
    r.text([roman(
        "A profile with extends = \"NAME\" starts from the profile NAME, found the way --profile finds it \
         (a relative path is relative to the extending file), then applies its own keys: each top-level key \
         it sets replaces the parent's, and each knob listed under [knobs] replaces the parent's requirement \
         for that knob alone. The formulas run last, on the merged target, role and parameters. \
         A parent may extend another; a cycle is an error.",
    )]);
    example(
        r,
        &format!(
            "# a 1m server that also wants deeper accept queues\nextends = \"1m\"\n\n[knobs]\n\"{}\" = 65535\n",
            KnobId::Somaxconn
        ),
    );
}

/// FORMULAS: the requirements worked out from target and role, with worked tables.
fn formula_section(r: &mut Roff, formulas: &[FormulaExample]) {
    r.control("SH", ["FORMULAS"]);
    r.text([roman(
        "Requirements a profile does not state are computed from target and role; \
         tune profiles show NAME prints every requirement with the formula and the numbers behind it.",
    )]);
    for f in formulas {
        formula_table(r, f);
    }
    if formulas.is_empty() {
        r.text([roman(format!(
            "(This build has no formula tables to print for a target of {FORMULA_TARGET}.)"
        ))]);
    }
}

/// SHIPPED PROFILES: each built-in profile.
fn shipped_section(r: &mut Roff, shipped: &[Shipped]) {
    r.control("SH", ["SHIPPED PROFILES"]);
    if shipped.is_empty() {
        r.text([roman("This build of tune ships no profiles.")]);
    }
    for p in shipped {
        shipped_profile(r, p);
    }
}

/// EXAMPLES (a profile file and the commands around it) and FILES.
fn examples_and_files(r: &mut Roff) {
    r.control("SH", ["EXAMPLES"]);
    example(r, &example_file());
    r.control("PP", []);
    r.text([
        roman("Then "),
        bold("tune check --profile chat"),
        roman(" compares the host with it and "),
        bold("tune apply --profile chat --persist"),
        roman(" raises what falls short."),
    ]);
    super::examples::entries(r, super::examples::for_page("tune-profiles.5"));

    r.control("SH", ["FILES"]);
    r.control("TP", []);
    r.text([italic("/etc/tune/profiles/")]);
    r.text([roman("Your profiles, found by name.")]);
    r.control("TP", []);
    r.text([italic("/usr/share/tune/profiles/")]);
    r.text([roman(
        "Copies of the shipped profiles, installed by the package.",
    )]);
}

/// Text for a macro argument: the roff crate escapes text lines but passes arguments as they are.
fn escape_arg(s: &str) -> String {
    s.replace('\\', "\\\\").replace('-', "\\-").replace('"', "")
}

fn role_names() -> Vec<String> {
    Role::ALL
        .iter()
        .map(|r| format!("\"{}\"", r.as_str()))
        .collect()
}

fn toml_form(shape: Shape) -> &'static str {
    match shape {
        Shape::Int => "as an integer",
        Shape::Triple => "as an array [LOW, MID, HIGH] or a string \"LOW MID HIGH\"",
        Shape::Range => "as an array [LOW, HIGH] or a string \"LOW HIGH\"",
    }
}

fn key(r: &mut Roff, name: &str, kind: &str, text: &str) {
    r.control("TP", []);
    r.text([bold(name), roman(" ("), italic(kind), roman(")")]);
    r.text([roman(text)]);
}

/// A verbatim block: every line as it is, blank lines kept.
fn example(r: &mut Roff, text: &str) {
    r.control("PP", []);
    r.control("RS", ["4"]);
    r.control("nf", []);
    for line in text.lines() {
        r.text([roman(line)]);
    }
    r.control("fi", []);
    r.control("RE", []);
}

fn formula_table(r: &mut Roff, f: &FormulaExample) {
    let role = f.role.as_str();
    r.control(
        "SS",
        [format!("target {}, role {}", f.target, escape_arg(role)).as_str()],
    );
    for (knob, value, why) in &f.requirements {
        r.control("TP", []);
        r.text([bold(knob.as_str()), roman(" = "), roman(value.as_str())]);
        r.text([roman(why.as_str())]);
    }
}

/// What a shipped profile's own file says at the top level (read generically, so any file the loader accepts shows).
fn summary(text: &str) -> Vec<(&'static str, String)> {
    let Ok(table) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    ["description", "target", "role", "extends"]
        .into_iter()
        .filter_map(|k| {
            table.get(k).map(|v| {
                let shown = match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k, shown)
            })
        })
        .collect()
}

fn shipped_profile(r: &mut Roff, p: &Shipped) {
    r.control("SS", [escape_arg(p.name).as_str()]);
    for (key, value) in summary(p.text) {
        r.control("TP", []);
        r.text([italic(key)]);
        r.text([roman(value)]);
    }
    example(r, p.text);
    r.control("PP", []);
    r.text([
        roman("Resolved, with every formula evaluated: "),
        bold(format!("tune profiles show {}", p.name)),
        roman("."),
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_example_loads_with_the_real_loader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.toml");
        std::fs::write(&path, example_file()).unwrap();
        let root = crate::root::Root::host();
        let profile = crate::profile::load(&root, path.to_str().unwrap())
            .unwrap_or_else(|e| panic!("the example in tune-profiles.5 no longer loads: {e:#}"));
        assert_eq!(profile.target, 300_000);
        assert_eq!(profile.role, Role::Server);
        assert_eq!(
            profile.requirements[&KnobId::TcpMem].value,
            crate::knobs::Value::Triple([786432, 1048576, 1572864])
        );
    }

    #[test]
    fn every_settable_knob_and_role_is_documented() {
        let page = page(&[], &[]).roff;
        for name in sources::settable_knobs() {
            let entry = format!(".TP\n\\fB{}\\fR\n", name.replace('-', "\\-"));
            assert!(page.contains(&entry), "{name} missing from KEYS");
        }
        for role in ["server", "client", "loopback"] {
            assert!(
                page.contains(&format!("\\fB{role}\\fR")),
                "role {role} missing"
            );
        }
    }

    #[test]
    fn shipped_profiles_and_formulas_are_shown() {
        let shipped = [Shipped {
            name: "1m",
            text:
                "# one million\ndescription = \"a million\"\ntarget = 1000000\nrole = \"loopback\"",
        }];
        let formulas = [FormulaExample {
            target: 1_000_000,
            role: Role::Server,
            requirements: vec![(
                "fs.file-max".into(),
                "1100000".into(),
                "target x 1.1 = 1100000".into(),
            )],
        }];
        let page = page(&shipped, &formulas).roff;
        assert!(page.contains(".SS 1m\n"), "{page}");
        assert!(page.contains("\\fIrole\\fR\nloopback\n"), "{page}");
        assert!(page.contains("target x 1.1 = 1100000"), "{page}");
        assert!(!page.contains("ships no profiles"));
    }
}
