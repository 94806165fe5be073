//! The server's configuration resolved once from `tune serve`'s flags: what `serve` runs and
//! what `serve --verify` starts (both call this; neither calls the other for it).

use anyhow::Context as _;
use embedded_server::server::{Limits, Mode, ServerConfig, Workers};
use embedded_server::tls::ServerTls;

use crate::cli::serve::{ServeArgs, ServeMode};
use crate::launch;
use crate::root::Root;

/// A duration that must not be zero (a zero timeout would close every connection at once).
fn positive(flag: &str, s: crate::values::Secs) -> anyhow::Result<u64> {
    if s.0.is_zero() {
        anyhow::bail!("{flag} 0: expected a positive number of seconds");
    }
    Ok(s.0.as_millis() as u64)
}

/// The server configuration the flags describe.
pub fn server_config(args: &ServeArgs) -> anyhow::Result<ServerConfig> {
    let mut workers = args.workers;
    if let Workers::Auto { expected } = &mut workers {
        *expected = args.expect.or(args.verify).unwrap_or(0);
    }
    if args.backlog < 1 {
        anyhow::bail!("--backlog {}: expected 1 or more", args.backlog);
    }
    let mut limits = Limits {
        max_handshake_bytes: args.max_handshake.max(64),
        handshake_timeout_ms: positive("--handshake-timeout", args.handshake_timeout)?,
        max_message_bytes: args.max_message,
        max_output_bytes: args.max_output,
        shutdown_grace_ms: positive("--shutdown-grace", args.shutdown_grace)?,
        backlog: args.backlog,
        ..Limits::default()
    };
    args.hostile
        .apply(&mut limits)
        .map_err(anyhow::Error::msg)?;
    if let Workers::Auto { expected } = workers {
        launch::check_worker_memory(&Root::host(), expected, limits.fd_reserve_in_effect())?;
    }
    let tls = server_tls(args)?;
    Ok(ServerConfig {
        listen: args.listen_addr(),
        workers,
        mode: match args.mode {
            ServeMode::Echo => Mode::Echo,
            ServeMode::Count => Mode::Count,
        },
        limits,
        tls,
    })
}

/// `--tls`: the certificate and key from --cert/--key, or, for --verify without them, a
/// throw-away self-signed one for the listen address and the loopback names.
fn server_tls(args: &ServeArgs) -> anyhow::Result<Option<ServerTls>> {
    if !args.tls {
        return Ok(None);
    }
    let read = |flag: &str, p: &std::path::Path| {
        std::fs::read_to_string(p).with_context(|| format!("{flag} {}", p.display()))
    };
    let t = match (&args.cert, &args.key) {
        (Some(c), Some(k)) => ServerTls {
            cert_pem: read("--cert", c)?,
            key_pem: read("--key", k)?,
        },
        (None, None) if args.verify.is_some() => {
            let listen = args.listen_addr().ip().to_string();
            let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
            if !names.contains(&listen) {
                names.push(listen);
            }
            ServerTls::self_signed(&names)?
        }
        _ => anyhow::bail!(
            "--tls needs --cert FILE and --key FILE (PEM); only --verify makes its own throw-away certificate"
        ),
    };
    // A wrong file is told here, naming the flag, before any worker starts.
    t.config()?;
    Ok(Some(t))
}
