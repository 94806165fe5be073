//! The TLS term of `tune check --tls`: what TLS adds to each connection, given (`--tls-cost`),
//! measured on this host (`--tls-from`: the `tls` section of a saved `tune serve --verify --tls`
//! or `tune load wss://` JSON report), or the profile's `tls_bytes_per_connection`.

use crate::capacity::TlsCost;
use crate::cli::check::CheckArgs;
use crate::kernel::Ktls;
use crate::report::TlsTerm;
use crate::units::bytes;

/// The part of a verify or load JSON report read here (docs/verify-schema.json, load-schema.json).
#[derive(Debug, serde::Deserialize)]
struct Report {
    tls: Option<TlsSection>,
    /// A verify report's client processes' memory (a load report has none).
    client_memory: Option<ClientMemory>,
}

/// The client processes' growth per connection in a TLS verify run: the client end's TLS state
/// (its plain cost, tens of bytes, inside it).
#[derive(Debug, serde::Deserialize)]
struct ClientMemory {
    growth_bytes_per_connection: Option<f64>,
}

/// A report's `tls` section: handshake CPU and idle memory per TLS connection.
#[derive(Debug, serde::Deserialize)]
struct TlsSection {
    handshake_cpu_us_server: Option<f64>,
    idle_bytes_per_connection_user: Option<f64>,
    idle_bytes_per_connection_kernel: Option<f64>,
}

/// The TLS cost the flags give (`--tls-cost`, `--tls-from`), before any profile is read: the
/// profile's formulas size memory with it.
pub fn given(args: &CheckArgs, ktls: &Ktls) -> anyhow::Result<Option<TlsCost>> {
    Ok(match (args.tls_cost, &args.tls_from) {
        (Some(b), _) => Some(TlsCost {
            bytes_per_connection: b,
            client_bytes_per_connection: None,
            source: "given with --tls-cost".into(),
        }),
        (None, Some(file)) => Some(from_report(file, ktls)?),
        (None, None) => None,
    })
}

/// The TLS term: the flags' cost, else the profile's `tls_bytes_per_connection`; `None`: plain
/// connections (no `--tls` and no figure anywhere).
pub fn term(
    args: &CheckArgs,
    given: Option<TlsCost>,
    profile: &crate::profile::Profile,
) -> Option<TlsTerm> {
    let from_profile = profile.params.tls_bytes_per_connection.map(|b| TlsCost {
        bytes_per_connection: b,
        client_bytes_per_connection: None,
        source: format!("tls_bytes_per_connection of profile {}", profile.name),
    });
    let cost = given.or(from_profile);
    (args.tls || cost.is_some()).then_some(TlsTerm { cost })
}

/// A figure read from a report, in bytes, refused when absent or not a size.
fn figure(file: &std::path::Path, name: &str, v: Option<f64>) -> anyhow::Result<Option<u64>> {
    match v {
        None => Ok(None),
        Some(x) if x.is_finite() && x >= 0.0 && x < u64::MAX as f64 => Ok(Some(x.round() as u64)),
        Some(x) => anyhow::bail!(
            "--tls-from {}: {name} is {x}, not a size in bytes",
            file.display()
        ),
    }
}

/// What TLS adds per connection from a saved report: the user-space figure (the TLS state the
/// server keeps), and the kernel figure only where the kernel offers kTLS. Without kTLS a TLS
/// connection's kernel socket is a plain one's, which check already counts per socket.
fn from_report(file: &std::path::Path, ktls: &Ktls) -> anyhow::Result<TlsCost> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("--tls-from {}: {e}", file.display()))?;
    let r: Report = serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "--tls-from {}: not a tune JSON report ({e}): save one with {}",
            file.display(),
            crate::report::screen::how_to_measure_tls()
        )
    })?;
    let tls = r.tls.ok_or_else(|| {
        anyhow::anyhow!(
            "--tls-from {}: the report has no tls section (a plain ws:// run?): save one with {}",
            file.display(),
            crate::report::screen::how_to_measure_tls()
        )
    })?;
    let user = figure(
        file,
        "tls.idle_bytes_per_connection_user",
        tls.idle_bytes_per_connection_user,
    )?
    .ok_or_else(|| {
        anyhow::anyhow!(
            "--tls-from {}: tls.idle_bytes_per_connection_user is null (the run measured no idle TLS connection): save one with {}",
            file.display(),
            crate::report::screen::how_to_measure_tls()
        )
    })?;
    let kernel = figure(
        file,
        "tls.idle_bytes_per_connection_kernel",
        tls.idle_bytes_per_connection_kernel,
    )?;
    let handshake = tls
        .handshake_cpu_us_server
        .filter(|x| x.is_finite() && *x >= 0.0)
        .map_or(String::new(), |us| {
            format!(", {us:.0} µs of server CPU per handshake")
        });
    let (total, kernel_note) = match (kernel, ktls.available) {
        (Some(k), Some(true)) => (user + k, format!(" + kernel {} (kTLS)", bytes(k))),
        (Some(k), _) => (
            user,
            format!(
                "; its kernel figure {} left out: without kTLS the kernel holds a plain socket, counted already",
                bytes(k)
            ),
        ),
        (None, _) => (user, String::new()),
    };
    let client = figure(
        file,
        "client_memory.growth_bytes_per_connection",
        r.client_memory.and_then(|c| c.growth_bytes_per_connection),
    )?;
    let client_note = client.map_or(String::new(), |c| format!(", client user {}", bytes(c)));
    Ok(TlsCost {
        bytes_per_connection: total.max(1),
        client_bytes_per_connection: client,
        source: format!(
            "measured on this host in {}: user {}{kernel_note}{client_note}{handshake}",
            file.display(),
            bytes(user)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> TlsCost {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tls.json");
        std::fs::write(&f, json).unwrap();
        let ktls = Ktls {
            available: Some(false),
            evidence: "no module".into(),
        };
        from_report(&f, &ktls).unwrap()
    }

    #[test]
    fn a_verify_report_gives_both_ends_and_a_load_report_the_server_end() {
        // The shape of `serve --tls --verify 20000 --format json` (figures from one run here).
        let verify = r#"{"tls": {"handshake_cpu_us_server": 662.8, "handshake_cpu_us_client": 419.9,
            "idle_bytes_per_connection_user": 3605.9, "idle_bytes_per_connection_kernel": 11055.5},
            "client_memory": {"growth_bytes_per_connection": 4334.0}}"#;
        let c = read(verify);
        assert_eq!(c.bytes_per_connection, 3606);
        assert_eq!(c.client_bytes_per_connection, Some(4334));
        assert!(c.source.contains("client user 4.3 KB"), "{}", c.source);
        let load = r#"{"tls": {"idle_bytes_per_connection_user": 3605.9,
            "idle_bytes_per_connection_kernel": null}}"#;
        let c = read(load);
        assert_eq!(c.client_bytes_per_connection, None);
        assert_eq!(c.client_bytes(), 3606);
    }
}
