#!/usr/bin/env python3
"""bench/peers' TLS rows (issue 22): each peer over its own TLS stack, side by side in one sitting,
driven by one client for all, `tls-client` (bench/peers/rust: rustls on ring, tokio-tungstenite,
one current-thread runtime, a full handshake every time: session resumption off). Not run in CI:
a benchmark. Called by `bench/peers/run --tls` (which builds everything first).

One certificate for all: an ECDSA P-256 leaf for IP 127.0.0.1, signed by a throw-away CA, made
with openssl in a temporary directory; the client trusts that CA alone. Servers pinned to CPU 1,
the client to CPU 0 (as run.py). Each server runs alone in a child memory cgroup of this
process's own (v1, no limit, made and removed here), so its kernel memory can be read. Per
server:
  1. idle: after a 200-connection warm-up, --conns TLS websockets opened and held; user bytes
     per connection = the server's RSS with them held less its RSS after the warm-up, / N (as
     run.py's idle column); kernel bytes per connection = the same difference of its cgroup's
     memory.kmem.usage_in_bytes (socket slab, buffers), / N;
  2. handshakes: the rate of that 0 -> N ramp as the client saw it, and the server's CPU
     (utime + stime) spent over the ramp / N: TCP accept + TLS handshake + websocket upgrade;
  3. echo: --echo-conns connections each with one message of --size bytes in flight for
     --echo-secs: echoes/s, server CPU share, and echoes per server core-second.
`--plain` adds, for each peer, the same measurement over plain ws:// with the same client (the
peer's plain server), for what TLS adds in the same sitting. Prints the markdown table and writes
it (and the raw JSON) to bench/results/peers-tls-<UTC>.{md,json}. Exits non-zero when a server
fails to start, to hold its connections or to echo; tune's row without `--tls` in the binary is
reported as not measured (and does not fail the run).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (bench/peers/run.py: servers, pinning, /proc readers, cgroups)
from run import Failed, alive, cpu_secs, fmt, kill, loadavg, phase, rss  # noqa: E402

ROOT = run.ROOT
TUNE = os.path.join(ROOT, "target/release/tune")
CLIENT = os.path.join(run.RUST, "tls-client")


def peers(cert, key):
    """Each TLS peer: its command over TLS, and its plain counterpart (for --plain)."""
    tls = ["--cert", cert, "--key", key]
    return [
        {"name": "tune serve --tls",
         "cmd": [TUNE, "serve", "--listen", "127.0.0.1:0", "--backlog", "512", "--tls"] + tls,
         "plain": [TUNE, "serve", "--listen", "127.0.0.1:0", "--backlog", "512"],
         "config": "tune's own TLS (rustls), 1 worker, backlog 512", "tune": True,
         "workers": True},
        {"name": "Go crypto/tls + gorilla",
         "cmd": [os.path.join(run.BIN, "go-gorilla")] + tls,
         "plain": [os.path.join(run.BIN, "go-gorilla")],
         "config": "crypto/tls (Go's defaults) under net/http, gorilla/websocket 1.5.0 (Debian), "
                   "goroutine per connection (plain counterpart: the epoll row of run.py), "
                   "ReadBufferSize/WriteBufferSize 256 + WriteBufferPool, GOMAXPROCS=1"},
        {"name": "Node https + ws",
         "cmd": ["node", os.path.join(ROOT, "bench/peers/node-ws/server.js")] + tls,
         "plain": ["node", os.path.join(ROOT, "bench/peers/node-ws/server.js")],
         "config": "https (Node's OpenSSL, its defaults) + ws + bufferutil, one process, "
                   "perMessageDeflate off, clientTracking off"},
        {"name": "tokio-rustls + tokio-tungstenite",
         "cmd": [os.path.join(run.RUST, "tt-echo"), "--read-buf", "0", "--write-buf", "0"] + tls,
         "plain": [os.path.join(run.RUST, "tt-echo"), "--read-buf", "0", "--write-buf", "0"],
         "config": "rustls 0.23 on ring (its defaults: TLS 1.3/1.2, default buffer limits, "
                   "tickets on) via tokio-rustls 0.26, tokio-tungstenite 0.30 with 0-byte "
                   "buffers, current-thread runtime"},
    ]


def tune_has_tls():
    """Whether this build of tune serve takes --tls (another branch adds it)."""
    out = subprocess.run([TUNE, "serve", "--help"], capture_output=True, text=True)
    return "--tls" in out.stdout


def make_cert(d):
    """A throw-away CA and an ECDSA P-256 leaf for IP 127.0.0.1 signed by it; (ca, cert, key)."""
    ca, cakey = os.path.join(d, "ca.pem"), os.path.join(d, "ca.key")
    cert, key, csr = (os.path.join(d, n) for n in ("cert.pem", "key.pem", "leaf.csr"))
    ext = os.path.join(d, "leaf.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\nsubjectAltName=IP:127.0.0.1\n"
                "extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    for cmd in (["openssl", "req", "-x509"] + ec + ["-keyout", cakey, "-out", ca, "-days", "2",
                                                    "-subj", "/CN=bench-peers test CA"],
                ["openssl", "req"] + ec + ["-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
                ["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", cakey,
                 "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext]):
        subprocess.run(cmd, check=True, capture_output=True)
    return ca, cert, key


# How long a client may take to open its connections (tls-client --open-secs): TLS handshakes
# on a machine shared with other work can take minutes at 10,000.
OPEN_SECS = 600


def client(addr, conns, tls_args, *extra):
    return run.pinned(run.CLIENT_CPU, [CLIENT, addr, str(conns), "--open-secs", str(OPEN_SECS)] +
                      tls_args + [str(x) for x in extra])


def idle(peer, cmd, n, tls_args):
    """Held connections: user and kernel bytes each, handshake rate and server CPU each."""
    cg = run.new_cgroup("tls")
    try:
        p, addr, pids = run.start_server(dict(peer, cmd=cmd), cgroup=cg)
        c = None
        try:
            w = client(addr, 200, tls_args, "--echo-secs", 1)
            phase(w, "echo", peer["name"] + " warm-up")
            w.wait(30)
            time.sleep(1)
            base, kbase, cpu0 = sum(rss(x) for x in pids), run.cgroup_read(cg, "memory.kmem.usage_in_bytes"), \
                cpu_secs(pids)
            la = loadavg()
            c = client(addr, n, tls_args, "--hold-secs", 30)
            o = phase(c, "open", peer["name"])
            cpu = cpu_secs(pids) - cpu0
            time.sleep(2)
            alive(p, peer["name"])
            full, kfull = sum(rss(x) for x in pids), run.cgroup_read(cg, "memory.kmem.usage_in_bytes")
        finally:
            if c:
                kill(c)
            kill(p)
    finally:
        run.drop_cgroup(cg)
    if o["opened"] < 0.99 * n:
        raise Failed(f"{peer['name']}: opened {o['opened']} of {n} (errors: {o['errors']})")
    k = o["opened"]
    return {"conns": k, "user_bytes": (full - base) / k, "kernel_bytes": (kfull - kbase) / k,
            "per_sec": o["per_sec"], "cpu_us_per_handshake": cpu / k * 1e6, "load": la}


def echo(peer, cmd, n, secs, size, tls_args):
    p, addr, pids = run.start_server(dict(peer, cmd=cmd))
    try:
        la = loadavg()
        c = client(addr, n, tls_args, "--echo-secs", secs, "--size", size)
        o = phase(c, "open", peer["name"])
        cpu0, ccpu0, t0 = cpu_secs(pids), cpu_secs([c.pid]), time.time()
        e = phase(c, "echo", peer["name"])
        cpu, ccpu, wall = cpu_secs(pids) - cpu0, cpu_secs([c.pid]) - ccpu0, time.time() - t0
        c.wait(30)
        alive(p, peer["name"])
    finally:
        kill(p)
    if o["opened"] < 0.99 * n or e["received"] == 0:
        raise Failed(f"{peer['name']}: opened {o['opened']} of {n}, {e['received']} echoes")
    return {"msgs_per_sec": e["msgs_per_sec"], "cpu_share": cpu / wall,
            "client_cpu_share": ccpu / wall, "per_core_sec": e["received"] / max(cpu, 1e-9),
            "load": la}


def measure(peer, cmd, a, tls_args):
    r = {"idle": idle(peer, cmd, a.conns, tls_args)}
    print(f"  idle {json.dumps(r['idle'])}", file=sys.stderr, flush=True)
    r["echo"] = echo(peer, cmd, a.echo_conns, a.echo_secs, a.size, tls_args)
    print(f"  echo {json.dumps(r['echo'])}", file=sys.stderr, flush=True)
    return r


def row(name, r):
    if "error" in r:
        return f"| {name} | {r['error']} | | | | | |"
    i, e = r["idle"], r["echo"]
    return (f"| {name} | {fmt(i['user_bytes'] + i['kernel_bytes'])} ({fmt(i['user_bytes'])} / "
            f"{fmt(i['kernel_bytes'])}) | {fmt(i['per_sec'])} | {fmt(i['cpu_us_per_handshake'])} | "
            f"{fmt(e['msgs_per_sec'])} (CPU {e['cpu_share']:.2f}, client "
            f"{e['client_cpu_share']:.2f}) | {fmt(e['per_core_sec'])} | "
            f"{i['load']:.1f} / {e['load']:.1f} |")


def table(res, plist):
    a = res["args"]
    out = [f"Machine: {res['machine']}; {res['when']}; tune at commit {res['versions']['tune']}; "
           f"{res['versions']['go']}, node {res['versions']['node']} (ws {res['versions']['ws']}), "
           f"{res['versions']['rustc']}. Servers pinned to CPU {run.SERVER_CPU}, the client "
           f"(bench/peers/rust tls-client, full handshakes, ECDSA P-256 certificate) to CPU "
           f"{run.CLIENT_CPU}. Load average (1 min) at the start of the idle and echo "
           "measurements in the last column.", "",
           f"| server | idle B/conn at {fmt(a['conns'])}: total (user / kernel) | handshakes/s "
           f"0->{fmt(a['conns'])} | server CPU µs per handshake | echo/s, {fmt(a['echo_conns'])} "
           f"conns, {a['size']} B (server, client CPU share) | echoes per server core-second | "
           "load avg |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in res["servers"]:
        out.append(row(r["name"], r))
    out += ["", "Configurations:", ""]
    out += [f"- **{p['name']}**: {p['config']}" for p in plist]
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--echo-conns", type=int, default=2000)
    ap.add_argument("--echo-secs", type=int, default=10)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--only", help="comma-separated substrings of server names")
    ap.add_argument("--plain", action="store_true",
                    help="also each peer's plain server over ws:// with the same client")
    a = ap.parse_args()
    if a.conns > run.MAX_PER_PROCESS:
        sys.exit(f"--conns {a.conns}: one client process holds at most {run.MAX_PER_PROCESS}")
    stamp, res = run.sitting(a)
    failed = False
    with tempfile.TemporaryDirectory(prefix="peers-tls-") as d:
        ca, cert, key = make_cert(d)
        plist = [p for p in peers(cert, key)
                 if not a.only or any(s in p["name"] for s in a.only.split(","))]
        has_tls = tune_has_tls()
        for peer in plist:
            runs = [(peer["name"], peer["cmd"], ["--ca", ca])]
            if a.plain:
                runs.append((peer["name"] + " (plain ws, same client)", peer["plain"], ["--plain"]))
            for name, cmd, tls_args in runs:
                print(f"{name} (load {loadavg():.1f})", file=sys.stderr, flush=True)
                if peer.get("tune") and "--tls" in cmd and not has_tls:
                    res["servers"].append({"name": name, "error": "not measured: tune serve has "
                                           "no --tls in this build"})
                    print("  not measured: tune serve has no --tls in this build",
                          file=sys.stderr, flush=True)
                    continue
                try:
                    res["servers"].append(dict(measure(peer, cmd, a, tls_args), name=name))
                except (Failed, subprocess.TimeoutExpired, OSError, ValueError) as err:
                    print(f"  FAILED: {err}", file=sys.stderr, flush=True)
                    res["servers"].append({"name": name, "error": f"FAILED: {err}"})
                    failed = True
                time.sleep(2)
    run.write_results(res, table(res, plist), f"peers-tls-{stamp}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
