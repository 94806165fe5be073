//! Profiles: TOML files that state a target connection count, a role and requirements per knob, resolved to a flat `Profile`.
//!
//! Interface used by check and apply: [`load`] (by name or path), [`load_with`]
//! (with `--role`/`--target` overrides) and [`for_target`] (no file,
//! requirements from the formulas only).
//!
//! # Where profiles come from
//! A spec containing `/` or ending in `.toml` is a path. Otherwise it is a name,
//! looked up first in `<root>/etc/tune/profiles/NAME.toml`, then among the
//! profiles shipped in the binary (`profiles/*.toml`). `extends = "NAME"` resolves
//! the same way (a relative path is relative to the extending file).
//!
//! # File format
//! ```toml
//! description = "..."
//! extends = "100k"          # optional: start from another profile; this file overrides it
//! target = 1_000_000        # concurrent connections; also "50k", "1m", "1.5m" (in quotes)
//! role = "server"           # server | client | loopback
//! headroom_percent = 10     # optional, default 10
//! processes = 1             # optional, default 1: processes that share the connections
//! bytes_per_socket = 5120   # optional: kernel memory per socket for the RAM formula
//! bytes_per_connection = 17670 # optional: the server's measured cost (tune load --server-pid)
//! tls_bytes_per_connection = 5200 # optional: what TLS adds per connection (check --tls)
//! source_addresses = 4      # optional: client addresses (client default 1, loopback: as needed)
//!
//! [knobs]
//! # the comment lines above a value and the comment after it are its "why"
//! "net.core.somaxconn" = 65535   # why this value
//! "net.ipv4.tcp_mem" = [1, 2, 3] # or "1 2 3"
//! ```
//!
//! # Formulas
//! With T = target, s = sockets per connection (1 server/client, 2 loopback),
//! S = T × s, h = headroom_percent, P = processes, and `up(x) = ceil(x × (100 + h) / 100)`:
//! - `rlimit.nofile.soft` = `rlimit.nofile.hard` = up(ceil(S / P) + 10)  (10 fds for the process itself)
//! - `fs.nr_open` = the nofile figure (the kernel refuses a larger RLIMIT_NOFILE)
//! - `fs.file-max` = up(S)
//! - `net.netfilter.nf_conntrack_max` = up(T) (one entry per connection, a loopback pair is one flow)
//! - `net.netfilter.nf_conntrack_buckets` = nf_conntrack_max (the kernel's own default ratio: one entry per bucket)
//! - `net.ipv4.tcp_mem` pressure = up(S) pages (one page of unread data per socket),
//!   low = pressure × 3/4, high = pressure × 3/2 (the kernel's default ratio 3:4:6)
//! - `memory.total` = up(S × bytes_per_socket) / 0.95 (5% kept for the rest of the system); with
//!   bytes_per_connection, up(T × bytes_per_connection + (S − T) × bytes_per_socket) / 0.95;
//!   with tls_bytes_per_connection, T × tls_bytes_per_connection more inside up()
//! - server, loopback: `net.core.somaxconn` = the handshakes that may wait on one listener:
//!   ceil(C / P) × 2 (SO_REUSEPORT spreads a burst unevenly), at most C, with C = 1024 connects
//!   in flight (the load generator's default); `net.ipv4.tcp_max_syn_backlog` = 4/3 of that
//!   (without SYN cookies the kernel drops at 3/4 of it); `net.ipv4.tcp_syncookies` = 1
//! - `net.ipv4.ip_local_port_range` (client, loopback): ports per source address
//!   n = ceil(T / source addresses); required range is the top n ports below 61000 when
//!   n ≤ 28232 (inside the kernel's default 32768-60999), else the top n below 65536.
//!   Loopback without `source_addresses` uses ceil(T / 28232) addresses of 127.0.0.0/8.
//!
//! A value under `[knobs]` overrides the formula for that knob.
//!
//! # Mistakes
//! Every error names the file, the line and the key and says what to write instead
//! ([`parse`] checks the text). Counts (`target`, `processes`, `source_addresses`) take
//! k/m/g suffixes in quotes (see [`parse_count`]). Knob values must lie inside the kernel's
//! bounds from the registry (`Knob::accepts`): `somaxconn` at most INT_MAX, ports 1 to 65535
//! with the low end first. A profile, and whatever `extends` names, must be a regular file
//! of at most [`MAX_PROFILE_BYTES`] (a FIFO or /dev/zero is refused, not read); an extends
//! cycle is reported once, as the chain.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::kernel::slabinfo::DEFAULT_BYTES_PER_SOCKET;
use crate::knobs::Role;
use crate::knobs::{Compare, KnobId, Persist, Value, REGISTRY};
use crate::root::Root;

mod parse;
pub mod storm;

pub use crate::quantity::{parse_count, COUNT_FORMS};

/// Where a requirement came from, so reports can say why a number is asked for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Requirement {
    pub value: Value,
    /// Why this value: the profile's comment, or the formula with its numbers.
    pub why: String,
}

/// A profile with inheritance flattened and formulas evaluated.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Profile {
    pub name: String,
    /// Where it was loaded from: `built-in`, or a file path.
    pub source: String,
    pub description: String,
    pub target: u64,
    pub role: Role,
    /// What the profile asks of each knob, by id (profile files name knobs by their registry
    /// name; the loader resolves those once). Iterates in registry order.
    pub requirements: BTreeMap<KnobId, Requirement>,
    /// The profiles it was built from, this one first, then what it extends.
    pub chain: Vec<String>,
    /// The formula parameters after inheritance.
    pub params: Params,
    /// `storm = "N/SECS"`: the reconnect storm to survive; its listen-queue requirements are in
    /// `requirements` already ([`storm::apply`] over `params.processes` listeners).
    pub storm: Option<storm::Storm>,
}

/// Parameters of the formulas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Params {
    pub headroom_percent: u64,
    pub processes: u64,
    pub bytes_per_socket: u64,
    /// The server's own cost per connection, user and kernel memory together, measured by
    /// `tune load --server-pid` (its report's table prints the line); `None`: the kernel's
    /// socket alone.
    pub bytes_per_connection: Option<u64>,
    /// What TLS adds to each connection (keys, sequence numbers, buffers), given or measured
    /// (`tune check --tls`); `None`: plain connections.
    pub tls_bytes_per_connection: Option<u64>,
    /// Client source addresses; `None`: one for client, as many as needed for loopback.
    pub source_addresses: Option<u64>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            headroom_percent: 10,
            processes: 1,
            bytes_per_socket: DEFAULT_BYTES_PER_SOCKET,
            bytes_per_connection: None,
            tls_bytes_per_connection: None,
            source_addresses: None,
        }
    }
}

/// Overrides from the command line, applied after inheritance and before the formulas.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides {
    pub target: Option<u64>,
    pub role: Option<Role>,
    /// What TLS adds per connection (`check --tls-cost`/`--tls-from`), over the profile's own.
    pub tls_bytes_per_connection: Option<u64>,
}

/// A profile error: the file, the line, the key, what is wrong and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ProfileError {
    /// The file as the user named it; empty when no file was found.
    pub file: String,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
    /// The `extends` lines that led to this file (`a.toml:1`), nearest first; `None` when the
    /// message already shows the whole chain (a cycle).
    pub via: Option<Vec<String>>,
}

impl std::fmt::Display for ProfileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.file.is_empty() {
            f.write_str(&self.file)?;
            if let Some(l) = self.line {
                write!(f, ":{l}")?;
            }
            f.write_str(": ")?;
        }
        if let Some(k) = &self.key {
            write!(f, "{k}: ")?;
        }
        f.write_str(&self.message)?;
        match &self.via {
            Some(via) if !via.is_empty() => {
                write!(f, " (extended by {})", via.join(", extended by "))
            }
            _ => Ok(()),
        }
    }
}

/// The shipped profiles, compiled into the binary.
pub static SHIPPED: &[(&str, &str)] = &[
    ("10k", include_str!("../profiles/10k.toml")),
    ("100k", include_str!("../profiles/100k.toml")),
    ("1m", include_str!("../profiles/1m.toml")),
    ("1m-loopback", include_str!("../profiles/1m-loopback.toml")),
    ("10m", include_str!("../profiles/10m.toml")),
];

/// Directory under the root holding local profiles.
pub const ETC_DIR: &str = "etc/tune/profiles";

/// Loads a profile by name or path, inheritance flattened and formulas evaluated.
pub fn load(root: &Root, spec: &str) -> anyhow::Result<Profile> {
    load_with(root, spec, Overrides::default())
}

/// As [`load`], with the command line's `--target`/`--role` applied before the formulas.
pub fn load_with(root: &Root, spec: &str, ov: Overrides) -> anyhow::Result<Profile> {
    let mut merged = load_spec(root, spec)?;
    if let Some(t) = ov.tls_bytes_per_connection {
        merged.params.tls_bytes_per_connection = Some(t);
    }
    let err = |key: &str, message: String| ProfileError {
        file: merged.file.clone(),
        line: None,
        key: Some(key.into()),
        message,
        via: None,
    };
    let target = ov.target.or(merged.target).ok_or_else(|| {
        err(
            "target",
            "missing: write the number of concurrent connections, e.g. target = 50000 or target = \"50k\" (in this file or one it extends)".into(),
        )
    })?;
    check_target(target).map_err(|message| err("target", message))?;
    let role = ov.role.or(merged.role).ok_or_else(|| {
        err(
            "role",
            "missing: write role = \"server\", \"client\" or \"loopback\" (in this file or one it extends)".into(),
        )
    })?;
    let mut requirements = formulas(target, role, &merged.params);
    for (id, (value, why)) in merged.knobs {
        let why = match requirements.get(&id) {
            Some(f) => format!("{why} (overrides the formula: {})", f.why),
            None => why,
        };
        requirements.insert(id, Requirement { value, why });
    }
    if let (Some(s), Some(h)) = (
        requirements.get(&KnobId::NofileSoft),
        requirements.get(&KnobId::NofileHard),
    ) {
        if s.value.parts()[0] > h.value.parts()[0] {
            return Err(err(
                &format!("knobs.\"{}\"", KnobId::NofileSoft),
                format!(
                    "{} is above {} {}: the kernel refuses a soft limit above the hard one (EINVAL); \
                     write a soft limit of at most {}",
                    s.value,
                    KnobId::NofileHard,
                    h.value,
                    h.value
                ),
            )
            .into());
        }
    }
    let mut profile = Profile {
        name: merged.name,
        source: merged.file,
        description: merged.description,
        target,
        role,
        requirements,
        chain: merged.chain,
        params: merged.params,
        storm: merged.storm,
    };
    if let Some(s) = profile.storm {
        let listeners = profile.params.processes;
        storm::apply(&mut profile, &s, listeners);
    }
    Ok(profile)
}

/// Requirements for `target` connections in `role` from the formulas alone (`check --target N`).
pub fn for_target(target: u64, role: Role) -> Profile {
    for_target_with(target, role, Params::default(), "the formulas")
}

/// [`for_target`] with parameters given on the command line (source addresses), and `source`:
/// where the target came from, as the report names it (the flag, for `check`).
pub fn for_target_with(target: u64, role: Role, params: Params, source: &str) -> Profile {
    Profile {
        name: format!("target-{target}"),
        source: source.into(),
        description: format!(
            "{target} concurrent connections as {role}, requirements from the formulas only"
        ),
        target,
        role,
        requirements: formulas(target, role, &params),
        chain: Vec::new(),
        params,
        storm: None,
    }
}

/// No requirements at all, for `tune check` without a profile or target: it reports what the
/// host holds. `target` only sizes the processes and source addresses the report says are needed.
pub fn host_only(target: u64, role: Role) -> Profile {
    let params = Params::default();
    Profile {
        name: "none".into(),
        source: "no profile: what this host holds now".into(),
        description: "no target: the connections this host holds with its limits as they are"
            .into(),
        target: target.max(1),
        role,
        requirements: BTreeMap::new(),
        chain: Vec::new(),
        params,
        storm: None,
    }
}

/// Every profile name that can be loaded without a path: (name, source), local ones first.
pub fn available(root: &Root) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for f in root.list_dir(ETC_DIR).unwrap_or_default() {
        if let Some(name) = f.strip_suffix(".toml") {
            out.push((
                name.to_string(),
                root.path(&format!("{ETC_DIR}/{f}")).display().to_string(),
            ));
        }
    }
    for (name, _) in SHIPPED {
        if !out.iter().any(|(n, _)| n == name) {
            out.push((name.to_string(), "built-in".to_string()));
        }
    }
    out
}

/// The largest target tune plans for: about 1.1 trillion connections, far beyond any host, and
/// small enough that every formula stays inside u64.
pub const MAX_TARGET: u64 = 1 << 40;

/// `x` plus `h` percent, saturating instead of wrapping.
fn up(x: u64, h: u64) -> u64 {
    u64::try_from((x as u128 * (100 + h as u128)).div_ceil(100)).unwrap_or(u64::MAX)
}

/// Rejects a target no host can mean (0, or so large the formulas would overflow).
pub fn check_target(target: u64) -> Result<(), String> {
    if target == 0 {
        Err("expected a number of connections above 0".into())
    } else if target > MAX_TARGET {
        Err(format!(
            "{target} is more connections than tune plans for (at most {MAX_TARGET}); \
             did you mean a smaller number?"
        ))
    } else {
        Ok(())
    }
}

/// The requirements that follow from the target, each with its arithmetic as the why.
pub fn formulas(target: u64, role: Role, p: &Params) -> BTreeMap<KnobId, Requirement> {
    let g = crate::units::group;
    let h = p.headroom_percent;
    let s = role.sockets_per_connection();
    let sockets = target.saturating_mul(s);
    let sock_text = if s == 1 {
        format!("{} sockets", g(sockets))
    } else {
        format!("{} connections × 2 sockets (both ends here)", g(target))
    };
    let mut out = BTreeMap::new();
    let mut put = |id: KnobId, value: Value, why: String| {
        out.insert(id, Requirement { value, why });
    };
    let procs = p.processes.max(1);
    let per_proc = sockets
        .div_ceil(procs)
        .saturating_add(crate::capacity::FD_RESERVE);
    let nofile = up(per_proc, h);
    let nofile_why = format!(
        "{sock_text} over {procs} process{} + {} fds each for the process itself = {}, + {h}% headroom",
        if procs == 1 { "" } else { "es" },
        crate::capacity::FD_RESERVE,
        g(per_proc)
    );
    put(KnobId::NofileHard, Value::Int(nofile), nofile_why.clone());
    put(KnobId::NofileSoft, Value::Int(nofile), nofile_why);
    put(
        KnobId::NrOpen,
        Value::Int(nofile),
        format!(
            "the kernel refuses an RLIMIT_NOFILE above {}, and each process needs {}",
            KnobId::NrOpen,
            g(nofile)
        ),
    );
    put(
        KnobId::FileMax,
        Value::Int(up(sockets, h)),
        format!("{sock_text} host-wide, + {h}% headroom"),
    );
    let ct = up(target, h);
    put(
        KnobId::ConntrackMax,
        Value::Int(ct),
        format!(
            "one conntrack entry per connection{}: {}, + {h}% headroom",
            if s == 2 {
                " (a loopback pair is one flow)"
            } else {
                ""
            },
            g(target)
        ),
    );
    put(
        KnobId::ConntrackBuckets,
        Value::Int(ct),
        "one hash bucket per conntrack entry (the kernel's default ratio), so lookups stay short"
            .into(),
    );
    let pressure = up(sockets, h);
    put(
        KnobId::TcpMem,
        Value::Triple([(pressure as u128 * 3 / 4) as u64, pressure, pressure.saturating_mul(3) / 2]),
        format!(
            "pressure at one 4 KiB page of unread data per socket ({sock_text}, + {h}% headroom); low and high in the kernel's 3:4:6 ratio"
        ),
    );
    let (need, what) = match p.bytes_per_connection {
        // The measured cost covers the server's end; a loopback host also holds the client's.
        Some(c) => (
            target
                .saturating_mul(c)
                .saturating_add((sockets - target.min(sockets)).saturating_mul(p.bytes_per_socket)),
            format!(
                "{} connections × {} B measured per connection (bytes_per_connection){}",
                g(target),
                g(c),
                if sockets > target {
                    format!(" + the clients' sockets × {} B", g(p.bytes_per_socket))
                } else {
                    String::new()
                }
            ),
        ),
        None => (
            sockets.saturating_mul(p.bytes_per_socket),
            format!(
                "{sock_text} × {} B kernel memory per socket",
                g(p.bytes_per_socket)
            ),
        ),
    };
    let (need, what) = match p.tls_bytes_per_connection {
        Some(t) => (
            need.saturating_add(target.saturating_mul(t)),
            format!(
                "{what} + {} connections × {} B TLS (tls_bytes_per_connection)",
                g(target),
                g(t)
            ),
        ),
        None => (need, what),
    };
    // Saturating, not truncating: a u128 past u64 cast with `as` would wrap to a small figure.
    let ram = u64::try_from((up(need, h) as u128 * 100).div_ceil(95)).unwrap_or(u64::MAX);
    put(
        KnobId::MemoryTotal,
        Value::Int(ram),
        format!("{what}, + {h}% headroom, with 5% of RAM left for the system"),
    );
    if role != Role::Client {
        // The listener side: handshakes that may wait on one listener's queues at once.
        let in_flight = embedded_server::loadgen::CONCURRENCY as u64;
        let r = crate::backlog::required(in_flight, procs);
        let why = crate::backlog::reason(&r, in_flight, procs);
        put(
            KnobId::Somaxconn,
            Value::Int(r.somaxconn),
            format!("{why} (the load generator's default concurrency); listen(2)'s backlog is cut to it"),
        );
        put(
            KnobId::TcpMaxSynBacklog,
            Value::Int(r.tcp_max_syn_backlog),
            format!("{why}; without SYN cookies the kernel drops SYNs at three quarters of it"),
        );
        put(
            KnobId::TcpSyncookies,
            Value::Int(1),
            "a full SYN queue answers with a cookie instead of dropping the SYN (clients would wait 1 s, 3 s, 7 s to retransmit)".into(),
        );
    }
    if role.uses_ports() {
        const DEFAULT_PORTS: u64 = 60999 - 32768 + 1;
        let (sources, whence) = match (p.source_addresses, role) {
            (Some(a), _) => (a.max(1), "source_addresses".to_string()),
            (None, Role::Loopback) => (
                target.div_ceil(DEFAULT_PORTS).max(1),
                "addresses of 127.0.0.0/8, as many as the default range needs".to_string(),
            ),
            (None, _) => (
                1,
                "source address (the default; set source_addresses for more)".to_string(),
            ),
        };
        let n = target.div_ceil(sources).max(1);
        let (range, note) = if n <= DEFAULT_PORTS {
            ([61000 - n, 60999], "inside the kernel's default range")
        } else if n <= 65536 - 1024 {
            ([65536 - n, 65535], "wider than the kernel's default range")
        } else {
            (
                [1024, 65535],
                "more than a whole port range: add source addresses",
            )
        };
        put(
            KnobId::IpLocalPortRange,
            Value::Range(range),
            format!(
                "{} connections over {} {whence} = {} ports per address per destination, {note}",
                g(target),
                g(sources),
                g(n)
            ),
        );
    }
    out
}

/// One file's content after its `extends` chain was merged.
#[derive(Debug)]
struct Merged {
    name: String,
    file: String,
    description: String,
    target: Option<u64>,
    role: Option<Role>,
    params: Params,
    storm: Option<storm::Storm>,
    /// The `[knobs]` values of the file and what it extends, resolved to ids: (value, why).
    knobs: BTreeMap<KnobId, (Value, String)>,
    chain: Vec<String>,
}

/// Largest profile file tune reads. The shipped ones are under 4 KiB; a megabyte is not a
/// profile, and `extends = "/dev/zero"` must end in an error rather than an endless read.
pub const MAX_PROFILE_BYTES: u64 = 1 << 20;

/// A profile's text and where it came from.
struct Located {
    name: String,
    /// How messages and reports name it: the path as given, or `profiles/1m.toml (built in)`.
    label: String,
    /// What the cycle check compares: the canonical path, or `built-in:NAME`.
    identity: String,
    text: String,
    /// Directory for relative `extends`; `None` for built-in profiles.
    dir: Option<PathBuf>,
}

impl Located {
    /// A profile read from the file `path`: the cycle check knows it by its canonical path, and
    /// its relative `extends` start from its directory.
    fn file(name: String, path: &Path, label: String, text: String) -> Located {
        Located {
            name,
            identity: std::fs::canonicalize(path)
                .unwrap_or_else(|_| path.to_path_buf())
                .display()
                .to_string(),
            label,
            text,
            dir: path.parent().map(Path::to_path_buf),
        }
    }
}

/// Finds a profile's text by name or path; the error names the path and what is wrong with it.
fn locate(root: &Root, spec: &str, from: Option<&Path>) -> Result<Located, String> {
    if spec.contains('/') || spec.ends_with(".toml") {
        let path = match from {
            Some(dir) if Path::new(spec).is_relative() => dir.join(spec),
            _ => PathBuf::from(spec),
        };
        // `./a/../b.toml` stays as written, `././b.toml` becomes `./b.toml`.
        let path: PathBuf = path.components().collect();
        let label = path.display().to_string();
        let text = read_profile_file(&path)
            .map_err(|m| format!("{label}: {m}"))?
            .ok_or_else(|| format!("{label}: no such file"))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| spec.to_string());
        return Ok(Located::file(name, &path, label, text));
    }
    let path = root.path(&format!("{ETC_DIR}/{spec}.toml"));
    let label = path.display().to_string();
    if let Some(text) = read_profile_file(&path).map_err(|m| format!("{label}: {m}"))? {
        return Ok(Located::file(spec.to_string(), &path, label, text));
    }
    if let Some((name, text)) = SHIPPED.iter().find(|(n, _)| *n == spec) {
        return Ok(Located {
            name: name.to_string(),
            label: format!("profiles/{name}.toml (built in)"),
            identity: format!("built-in:{name}"),
            text: text.to_string(),
            dir: None,
        });
    }
    let names: Vec<String> = available(root).into_iter().map(|(n, _)| n).collect();
    Err(format!(
        "unknown profile {spec:?}: expected one of {} (built in or in {}), or a path to a .toml file",
        names.join(", "),
        root.path(ETC_DIR).display()
    ))
}

/// Reads a profile file: `None` when it does not exist; an error for anything that is not a
/// regular text file of sane size (a FIFO, /dev/zero, a directory, a huge file).
fn read_profile_file(path: &Path) -> Result<Option<String>, String> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    // O_NONBLOCK: opening a FIFO must not wait for a writer (it changes nothing for a regular
    // file); O_NOCTTY: a terminal device named here must not become our controlling tty.
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot be opened: {e}")),
    };
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot be read: {e}"))?;
    let ft = meta.file_type();
    if !ft.is_file() {
        let what = if ft.is_dir() {
            "a directory"
        } else if ft.is_fifo() {
            "a FIFO (named pipe)"
        } else if ft.is_char_device() {
            "a character device"
        } else if ft.is_block_device() {
            "a block device"
        } else if ft.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(format!(
            "is {what}, not a profile: a profile is a TOML text file (see tune-profiles(5))"
        ));
    }
    let too_big = |n: u64| {
        format!(
            "is {} bytes, more than any profile (at most {}): is this the right file?",
            crate::units::group(n),
            crate::units::group(MAX_PROFILE_BYTES)
        )
    };
    if meta.len() > MAX_PROFILE_BYTES {
        return Err(too_big(meta.len()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_PROFILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot be read: {e}"))?;
    if bytes.len() as u64 > MAX_PROFILE_BYTES {
        return Err(too_big(bytes.len() as u64));
    }
    String::from_utf8(bytes).map(Some).map_err(|e| {
        format!(
            "is not UTF-8 text (invalid byte at offset {}): a profile is a TOML text file",
            e.utf8_error().valid_up_to()
        )
    })
}

/// The comment lines directly above line `line` (1-based) and the comment after the value on it.
fn comment_for(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut above = Vec::new();
    let mut i = line.saturating_sub(1);
    while i > 0 {
        let l = lines[i - 1].trim();
        match l.strip_prefix('#') {
            Some(c) => above.push(c.trim().to_string()),
            None => break,
        }
        i -= 1;
    }
    above.reverse();
    let own = lines.get(line - 1).and_then(|l| {
        // Values here are numbers, arrays of numbers or strings of numbers: a '#' starts the comment.
        l.split_once('#').map(|(_, c)| c.trim().to_string())
    });
    let mut parts: Vec<String> = above.into_iter().filter(|s| !s.is_empty()).collect();
    parts.extend(own.filter(|s| !s.is_empty()));
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// The profile files being loaded, outermost first: (identity, label), for the cycle check.
type Stack = Vec<(String, String)>;

/// Loads the profile `spec` names and everything it extends.
fn load_spec(root: &Root, spec: &str) -> Result<Merged, ProfileError> {
    let loc = locate(root, spec, None).map_err(|message| ProfileError {
        file: String::new(),
        line: None,
        key: None,
        message,
        via: Some(Vec::new()),
    })?;
    load_located(root, loc, &mut Vec::new())
}

fn load_located(root: &Root, loc: Located, stack: &mut Stack) -> Result<Merged, ProfileError> {
    let file = loc.label.clone();
    let err = |line: Option<usize>, key: &str, message: String| ProfileError {
        file: file.clone(),
        line,
        key: Some(key.to_string()),
        message,
        via: Some(Vec::new()),
    };
    let raw = parse::parse(&loc.text).map_err(|p| ProfileError {
        file: file.clone(),
        line: p.line,
        key: p.key,
        message: p.message,
        via: Some(Vec::new()),
    })?;
    stack.push((loc.identity.clone(), loc.label.clone()));
    let mut merged = match &raw.extends {
        Some((spec, line)) => {
            let parent = locate(root, spec, loc.dir.as_deref())
                .map_err(|m| err(Some(*line), "extends", m))?;
            if let Some(pos) = stack.iter().position(|(id, _)| *id == parent.identity) {
                let mut chain: Vec<&str> = stack[pos..].iter().map(|(_, l)| l.as_str()).collect();
                chain.push(&parent.label);
                return Err(ProfileError {
                    // The whole chain is in the message: nobody adds to it on the way out.
                    via: None,
                    ..err(
                        Some(*line),
                        "extends",
                        format!(
                            "a cycle: {}; a profile cannot extend itself, directly or through others: remove one of these extends",
                            chain.join(" -> ")
                        ),
                    )
                });
            }
            load_located(root, parent, stack).map_err(|mut e| {
                if let Some(via) = &mut e.via {
                    via.push(format!("{file}:{line}"));
                }
                e
            })?
        }
        None => Merged {
            name: String::new(),
            file: String::new(),
            description: String::new(),
            target: None,
            role: None,
            params: Params::default(),
            storm: None,
            knobs: BTreeMap::new(),
            chain: Vec::new(),
        },
    };
    stack.pop();
    merged.chain.insert(0, loc.name.clone());
    merged.name = loc.name;
    merged.file = file.clone();
    if let Some(d) = raw.description {
        merged.description = d;
    }
    merged.target = raw.target.or(merged.target);
    merged.role = raw.role.or(merged.role);
    merged.storm = raw.storm.or(merged.storm);
    let p = &mut merged.params;
    p.headroom_percent = raw.headroom_percent.unwrap_or(p.headroom_percent);
    p.processes = raw.processes.unwrap_or(p.processes);
    p.bytes_per_socket = raw.bytes_per_socket.unwrap_or(p.bytes_per_socket);
    p.bytes_per_connection = raw.bytes_per_connection.or(p.bytes_per_connection);
    p.tls_bytes_per_connection = raw.tls_bytes_per_connection.or(p.tls_bytes_per_connection);
    p.source_addresses = raw.source_addresses.or(p.source_addresses);
    check_params(p).map_err(|(key, m)| err(None, key, m))?;
    for (knob, v, line) in raw.knobs {
        let why = comment_for(&loc.text, line)
            .map(|c| format!("{c} [{}]", merged.name))
            .unwrap_or_else(|| format!("set by profile {}", merged.name));
        merged.knobs.insert(knob, (v, why));
    }
    Ok(merged)
}

/// The formula parameters after inheritance: (key, message) for one that makes no sense.
fn check_params(p: &Params) -> Result<(), (&'static str, String)> {
    if p.processes == 0 {
        return Err(("processes", "expected at least 1".into()));
    }
    if p.bytes_per_socket == 0 {
        return Err((
            "bytes_per_socket",
            "expected at least 1 (kernel memory per socket, in bytes)".into(),
        ));
    }
    if p.headroom_percent > 1000 {
        return Err((
            "headroom_percent",
            format!(
                "expected at most 1000 (percent), found {}",
                p.headroom_percent
            ),
        ));
    }
    Ok(())
}

/// Knob names a profile may set.
pub fn requirable_names() -> Vec<&'static str> {
    REGISTRY
        .iter()
        .filter(|k| !(k.compare == Compare::Info && k.persist == Persist::No))
        .map(|k| k.name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty_root() -> (tempfile::TempDir, Root) {
        let d = tempfile::tempdir().unwrap();
        let r = Root::new(d.path()).unwrap();
        (d, r)
    }

    #[test]
    fn every_shipped_profile_loads() {
        let (_d, root) = empty_root();
        for (name, _) in SHIPPED {
            let p = load(&root, name).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert!(p.target > 0);
            assert!(!p.requirements.is_empty());
        }
    }

    #[test]
    fn every_shipped_value_has_a_comment() {
        for (name, text) in SHIPPED {
            for (i, l) in text.lines().enumerate() {
                let t = l.trim();
                if t.is_empty() || t.starts_with('#') || t.starts_with('[') {
                    continue;
                }
                assert!(
                    comment_for(text, i + 1).is_some(),
                    "profiles/{name}.toml:{}: {t:?} has no comment saying why",
                    i + 1
                );
            }
        }
    }

    /// The RAM formula saturates at the largest target and cost instead of wrapping to a small
    /// figure (a u128 cast back with `as`).
    #[test]
    fn the_ram_formula_saturates_at_the_extremes() {
        let p = Params {
            bytes_per_socket: u64::MAX,
            ..Params::default()
        };
        let r = formulas(MAX_TARGET, Role::Loopback, &p);
        assert_eq!(r[&KnobId::MemoryTotal].value, Value::Int(u64::MAX));
    }

    #[test]
    fn a_measured_cost_per_connection_sizes_memory() {
        let p = Params {
            bytes_per_connection: Some(17_670),
            ..Params::default()
        };
        let f = formulas(10_000, Role::Server, &p);
        let ram = &f[&KnobId::MemoryTotal];
        // 10,000 × 17,670 B + 10% headroom, 5% of RAM kept: 204,600,000 B.
        assert_eq!(ram.value, Value::Int(204_600_000), "{ram:?}");
        assert!(
            ram.why.contains("17,670 B measured per connection"),
            "{}",
            ram.why
        );
        // tcp_mem and file-max count sockets, which the measured cost does not change.
        let plain = formulas(10_000, Role::Server, &Params::default());
        assert_eq!(f[&KnobId::FileMax].value, plain[&KnobId::FileMax].value);
    }

    #[test]
    fn formulas_for_a_million_server_connections() {
        let r = formulas(1_000_000, Role::Server, &Params::default());
        // (1,000,000 + 10) × 1.1
        assert_eq!(r[&KnobId::NofileHard].value, Value::Int(1_100_011));
        assert_eq!(r[&KnobId::NrOpen].value, Value::Int(1_100_011));
        assert_eq!(r[&KnobId::FileMax].value, Value::Int(1_100_000));
        assert_eq!(r[&KnobId::ConntrackMax].value, Value::Int(1_100_000));
        assert_eq!(r[&KnobId::ConntrackBuckets].value, Value::Int(1_100_000));
        assert_eq!(
            r[&KnobId::TcpMem].value,
            Value::Triple([825_000, 1_100_000, 1_650_000])
        );
        // 1M × 5120 × 1.1 / 0.95
        assert_eq!(
            r[&KnobId::MemoryTotal].value,
            Value::Int((5_632_000_000u64 * 100).div_ceil(95))
        );
        assert!(!r.contains_key(&KnobId::IpLocalPortRange));
        assert!(r[&KnobId::NofileHard].why.contains("1,000,010"));
    }

    #[test]
    fn loopback_doubles_sockets_and_splits_processes() {
        let p = Params {
            processes: 100,
            ..Params::default()
        };
        let r = formulas(1_000_000, Role::Loopback, &p);
        // 2M sockets / 100 processes + 10, + 10%
        assert_eq!(r[&KnobId::NofileHard].value, Value::Int(22_011));
        assert_eq!(r[&KnobId::FileMax].value, Value::Int(2_200_000));
        assert_eq!(r[&KnobId::ConntrackMax].value, Value::Int(1_100_000));
        // 36 addresses of 127/8: 27,778 ports each, inside the default range
        assert_eq!(
            r[&KnobId::IpLocalPortRange].value,
            Value::Range([61000 - 27_778, 60999])
        );
    }

    #[test]
    fn a_client_with_one_address_needs_a_wider_range() {
        let r = formulas(50_000, Role::Client, &Params::default());
        assert_eq!(
            r[&KnobId::IpLocalPortRange].value,
            Value::Range([65536 - 50_000, 65535])
        );
        let r = formulas(1_000_000, Role::Client, &Params::default());
        assert!(r[&KnobId::IpLocalPortRange]
            .why
            .contains("add source addresses"));
    }

    #[test]
    fn inheritance_and_overrides() {
        let (_d, root) = empty_root();
        let p = load(&root, "1m-loopback").unwrap();
        assert_eq!(p.chain, vec!["1m-loopback", "1m", "100k", "10k"]);
        assert_eq!(p.role, Role::Loopback);
        assert_eq!(p.target, 1_000_000);
        // somaxconn comes from 1m, with its comment as the why
        assert!(p.requirements[&KnobId::Somaxconn].why.contains("[1m]"));
        let o = load_with(
            &root,
            "1m",
            Overrides {
                role: Some(Role::Loopback),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(o.role, Role::Loopback);
        assert_eq!(
            o.requirements[&KnobId::FileMax].value,
            Value::Int(2_200_000)
        );
    }

    #[test]
    fn local_profiles_shadow_shipped_ones_and_extend_them() {
        let (_d, root) = empty_root();
        root.write_atomic(
            "etc/tune/profiles/mine.toml",
            b"extends = \"10k\"\ntarget = 20000\n[knobs]\n# room for bursts\n\"net.core.somaxconn\" = 8192\n\"fs.file-max\" = 5000000 # shared host\n",
            0o644,
        )
        .unwrap();
        let p = load(&root, "mine").unwrap();
        assert_eq!(p.target, 20_000);
        assert_eq!(p.role, Role::Server);
        assert_eq!(p.requirements[&KnobId::Somaxconn].value, Value::Int(8192));
        assert!(p.requirements[&KnobId::Somaxconn]
            .why
            .starts_with("room for bursts [mine] (overrides the formula"));
        assert!(p.requirements[&KnobId::FileMax]
            .why
            .starts_with("shared host [mine] (overrides the formula"));
        assert!(available(&root).iter().any(|(n, _)| n == "mine"));
    }

    #[test]
    fn errors_name_file_line_key_and_expectation() {
        let (d, root) = empty_root();
        let path = d.path().join("bad.toml");
        std::fs::write(
            &path,
            "target = 10\nrole = \"server\"\n[knobs]\n\"net.ipv4.tcp_mem\" = [1, 2]\n",
        )
        .unwrap();
        let e = format!("{:#}", load(&root, path.to_str().unwrap()).unwrap_err());
        assert!(
            e.contains("bad.toml:4: knobs.\"net.ipv4.tcp_mem\": expected three integers"),
            "{e}"
        );
        std::fs::write(&path, "target = 10\nrole = \"srv\"\n").unwrap();
        let e = format!("{:#}", load(&root, path.to_str().unwrap()).unwrap_err());
        assert!(e.contains("bad.toml:2:") && e.contains("server"), "{e}");
        std::fs::write(
            &path,
            "target = 10\nrole = \"server\"\n[knobs]\n\"net.core.somaxcon\" = 1\n",
        )
        .unwrap();
        let e = format!("{:#}", load(&root, path.to_str().unwrap()).unwrap_err());
        assert!(
            e.contains("bad.toml:4:") && e.contains("net.core.somaxconn"),
            "{e}"
        );
        std::fs::write(&path, "role = \"server\"\n").unwrap();
        let e = format!("{:#}", load(&root, path.to_str().unwrap()).unwrap_err());
        assert!(e.contains("target: missing"), "{e}");
        let e = format!("{:#}", load(&root, "nope").unwrap_err());
        assert!(
            e.contains("unknown profile \"nope\"") && e.contains("1m"),
            "{e}"
        );
    }

    #[test]
    fn cycles_are_errors() {
        let (d, root) = empty_root();
        std::fs::write(
            d.path().join("a.toml"),
            "extends = \"b.toml\"\ntarget = 1\nrole = \"server\"\n",
        )
        .unwrap();
        std::fs::write(d.path().join("b.toml"), "extends = \"a.toml\"\n").unwrap();
        let e = format!(
            "{:#}",
            load(&root, d.path().join("a.toml").to_str().unwrap()).unwrap_err()
        );
        assert!(
            e.contains("a cycle:") && e.matches("a.toml").count() == 2,
            "{e}"
        );
    }
}
