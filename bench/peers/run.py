#!/usr/bin/env python3
"""Measure `tune serve` against every peer of bench/peers, side by side (driven by bench/peers/run,
which installs and builds everything first). Not run in CI: a benchmark.

Every server runs in turn pinned to CPU 1 (one core; Go gets GOMAXPROCS=1 from its affinity,
Node is one process, the Rust peers a current-thread runtime, tune one worker), driven by the
same client, bench/server-client (one epoll loop per process, 256 handshakes in flight), pinned
to CPU 0. Loopback only. Per server:
  1. idle: marginal RSS per idle websocket at --conns (19,000) in one process: RSS of the server
     processes with the connections held, less their RSS after a 200-connection warm-up, / N;
     the accept+handshake rate of that 0 -> N ramp, as the client saw it;
  2. wide: the same at --wide (100,000) over --wide-procs server processes (each its own
     listener; tune: one process with that many SO_REUSEPORT workers), one client process each;
  3. echo: --echo-conns (10,000) connections, each one message in flight, --echo-secs: echoes/s
     with 32 B and with 4 KiB messages, server CPU seconds (utime+stime from /proc) / echoes;
  4. latency: p50/p99 round trip at --rate messages/s offered (32 B, round robin over 10,000);
  5. cost: `tune load ws://ADDR/ --conns --cost-conns --server-pid PID --format json` against the
     server alone in a child memory cgroup (v1, no limit, made and removed here): the cost per
     connection tune measures (cgroup charge slope, user/kernel, R²) and the slope of the
     server's RSS over the same samples, next to the idle column's own figure (issue 21).
`--columns idle` (or any comma-separated subset of idle,wide,echo,latency,cost) measures only those;
the others show as "-" (the handshake rate is part of idle). `--repeat N` measures each server N
times in turn (A B A B ...), for ranges on a shared machine; `--fifo` runs servers and clients
SCHED_FIFO (less noise from other work, and a different setting from the published table's).
Prints the markdown table and writes it (and the raw JSON) to bench/results/peers-<UTC>.{md,json}.
Exits non-zero when a server fails to start, to hold its connections or to echo.
"""

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.join(ROOT, "bench/peers/target")
CLIENT = os.path.join(ROOT, "bench/server-client/target/release/server-client")
RUST = os.path.join(ROOT, "bench/peers/rust/target/release")
SERVER_CPU = "1"
CLIENT_CPU = "0"
# A client's connections: one process holds at most ~19,990 fds here (RLIMIT_NOFILE 20,000).
MAX_PER_PROCESS = 19000

PEERS = [
    {
        "name": "tune serve",
        "cmd": [os.path.join(ROOT, "target/release/tune"), "serve", "--listen", "127.0.0.1:0",
                "--backlog", "512"],
        "workers": True,
        "config": "1 worker (one epoll loop, 16-byte slot per connection, one shared read buffer "
                  "per worker); --workers N with SO_REUSEPORT for the wide run; backlog 512 (its fd-cap reserve is backlog + 64, so a larger backlog caps a worker below 19,000); "
                  "TCP_DEFER_ACCEPT 1 s and SO_SNDBUF 256 KiB on the listener (its defaults)",
    },
    {
        "name": "Go gorilla + epoll (seed stage 3)",
        "cmd": [os.path.join(BIN, "go-gorilla")],
        "config": "gorilla/websocket 1.5.0 (Debian), net/http upgrade, fds in one epoll set served by one "
                  "goroutine (the talk's stage 3); ReadBufferSize 256, WriteBufferSize 256 with a "
                  "WriteBufferPool (gorilla's advice for many idle connections); GOMAXPROCS=1 (affinity), "
                  "GOGC default",
    },
    {
        "name": "Go nbio",
        "cmd": [os.path.join(BIN, "go-nbio")],
        "config": "lesismal/nbio v1.6.8 nbhttp + websocket, IOModNonBlocking, NPoller=GOMAXPROCS=1, "
                  "MaxLoad 1M, ReleaseWebsocketPayload, no keepalive deadline",
    },
    {
        "name": "Node ws",
        "cmd": ["node", os.path.join(ROOT, "bench/peers/node-ws/server.js")],
        "config": "ws + bufferutil (versions above the table), one process, noServer on http, perMessageDeflate "
                  "off, clientTracking off, maxPayload 64 KiB",
    },
    {
        "name": "tokio-tungstenite, 0-byte buffers",
        "cmd": [os.path.join(RUST, "tt-echo"), "--read-buf", "0", "--write-buf", "0"],
        "config": "tokio-tungstenite 0.30, read_buffer_size 0 (the smallest: a 14-byte header "
                  "reserve, grows to the largest message), write_buffer_size 0 (eager writes), "
                  "current-thread runtime, task per connection, listen backlog 1024 (tokio's bind gives 128)",
    },
    {
        "name": "tokio-tungstenite, 4 KiB read buffer",
        "cmd": [os.path.join(RUST, "tt-echo"), "--read-buf", "4096", "--write-buf", "0"],
        "config": "as above with read_buffer_size 4096 (its docs' advice for many connections)",
    },
    {
        "name": "fastwebsockets",
        "cmd": [os.path.join(RUST, "fws-echo")],
        "config": "fastwebsockets 0.10 via hyper 1 upgrade (its echo example: FragmentCollector, "
                  "auto close/pong), current-thread runtime, task per connection, listen backlog 1024",
    },
]


class Failed(Exception):
    pass


# `--fifo`: servers and clients run SCHED_FIFO priority 1 (chrt -f 1), so the niced builds of a
# shared machine do not delay their wakeups; the kernel's RT throttling still leaves others 5%.
FIFO = []


def pinned(cpu, cmd, env=None, cgroup=None):
    """`cmd` on CPU `cpu`; with `cgroup`, moved into that memory cgroup before it execs."""
    pre = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup] if cgroup else []
    return subprocess.Popen(pre + FIFO + ["taskset", "-c", cpu] + cmd, stdout=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)


def own_memory_cgroup():
    """This process's memory cgroup directory (v1), where the servers' children are made."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrl, path = line.rstrip("\n").split(":", 2)
            if "memory" in ctrl.split(","):
                return "/sys/fs/cgroup/memory" + path
    raise Failed("no memory cgroup (v1) for this process: the cost column needs one")


def new_cgroup(name):
    """A child memory cgroup (no limit) for one server; `drop_cgroup` removes it."""
    d = os.path.join(own_memory_cgroup(), f"peers-{name}-{os.getpid()}")
    os.mkdir(d)
    return d


def drop_cgroup(d):
    """Removes a server's cgroup once its processes are gone (retries while they exit)."""
    for _ in range(50):
        try:
            os.rmdir(d)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.1)
    print(f"  could not remove cgroup {d}", file=sys.stderr)


def cgroup_read(d, name):
    with open(os.path.join(d, name)) as f:
        return int(f.read())


def start_server(peer, workers=1, cgroup=None):
    cmd = list(peer["cmd"])
    if peer.get("workers"):
        cmd += ["--workers", str(workers)]
    p = pinned(SERVER_CPU, cmd, cgroup=cgroup)
    t = time.time()
    while time.time() - t < 30:
        line = p.stdout.readline()
        if not line:
            break
        if line.startswith("listening on "):
            addr = line.split()[-1]
            pids = [p.pid]
            if peer.get("workers"):
                while len(children(p.pid)) < workers and time.time() - t < 30:
                    time.sleep(0.05)
                pids = children(p.pid)
            return p, addr, pids
    kill(p)
    raise Failed(f"{peer['name']}: did not print `listening on` ({' '.join(cmd)})")


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_secs(pids):
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def kill(p):
    try:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    except ProcessLookupError:
        pass


def client(addr, conns, *extra):
    return pinned(CLIENT_CPU, [CLIENT, addr, str(conns)] + [str(x) for x in extra])


def phase(c, name, what):
    for line in c.stdout:
        d = json.loads(line)
        if d["phase"] == name:
            return d
    raise Failed(f"{what}: client ended without a {name} line (exit {c.wait()})")


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def alive(p, what):
    if p.poll() is not None:
        raise Failed(f"{what}: server exited with {p.returncode}")


def held(peer, n, procs):
    """Open n idle websockets over `procs` server processes; marginal RSS and open rate."""
    per = -(-n // procs)
    if peer.get("workers"):
        p, addr, pids = start_server(peer, workers=procs)
        servers, addrs = [p], [addr] * procs
    else:
        started = [start_server(peer) for _ in range(procs)]
        servers = [s[0] for s in started]
        addrs = [s[1] for s in started]
        pids = [s[2][0] for s in started]
    cs = []
    try:
        for a in dict.fromkeys(addrs):
            w = client(a, 200, "--echo-secs", 1)
            phase(w, "echo", peer["name"] + " warm-up")
            w.wait(30)
        time.sleep(1)
        base = sum(rss(x) for x in pids)
        la = loadavg()
        cs = [client(a, per, "--hold-secs", 30) for a in addrs]
        opens = [phase(c, "open", peer["name"]) for c in cs]
        time.sleep(2)
        for s in servers:
            alive(s, peer["name"])
        full = sum(rss(x) for x in pids)
    finally:
        for c in cs:
            kill(c)
        for s in servers:
            kill(s)
    opened = sum(o["opened"] for o in opens)
    if opened < 0.99 * per * procs:
        raise Failed(f"{peer['name']}: opened {opened} of {per * procs} "
                     f"(failed {sum(o['failed'] for o in opens)})")
    return {"conns": opened, "procs": procs, "rss_base": base, "rss_held": full,
            "bytes_per_conn": (full - base) / opened,
            "open_per_sec": opened / max(o["secs"] for o in opens), "load": la}


def echo(peer, conns, secs, size, rate=0):
    p, addr, pids = start_server(peer)
    try:
        la = loadavg()
        extra = ["--size", size]
        extra += ["--rate", rate, "--latency-secs", secs] if rate else ["--echo-secs", secs]
        c = client(addr, conns, *extra)
        o = phase(c, "open", peer["name"])
        cpu0, ccpu0, t0 = cpu_secs(pids), cpu_secs([c.pid]), time.time()
        e = phase(c, "latency" if rate else "echo", peer["name"])
        cpu = cpu_secs(pids) - cpu0
        ccpu = cpu_secs([c.pid]) - ccpu0
        wall = time.time() - t0
        c.wait(30)
        alive(p, peer["name"])
    finally:
        kill(p)
    if o["opened"] < 0.99 * conns:
        raise Failed(f"{peer['name']}: opened {o['opened']} of {conns} for echo")
    if e["received"] == 0:
        raise Failed(f"{peer['name']}: no echo received ({size} B)")
    e.update(cpu_secs=cpu, cpu_share=cpu / wall, client_cpu_share=ccpu / wall, load=la,
             cpu_per_million=cpu / e["received"] * 1e6)
    return e


def slope(pts):
    """Least-squares slope of (x, y) points."""
    n = len(pts)
    mx = sum(x for x, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sxx if sxx else 0.0


def cost(peer, conns):
    """tune load --server-pid against the server alone in a memory cgroup of its own."""
    cg = new_cgroup("cost")
    try:
        p, addr, pids = start_server(peer, cgroup=cg)
        try:
            la = loadavg()
            cmd = [os.path.join(ROOT, "target/release/tune"), "load", f"ws://{addr}/", "--conns",
                   str(conns), "--hold", "1", "--server-pid", str(pids[0]), "--format", "json"]
            out = subprocess.run(FIFO + ["taskset", "-c", CLIENT_CPU] + cmd, capture_output=True,
                                 text=True, timeout=300)
            alive(p, peer["name"])
        finally:
            kill(p)
    finally:
        drop_cgroup(cg)
    try:
        rep = json.loads(out.stdout)
    except ValueError:
        raise Failed(f"{peer['name']}: tune load gave no JSON (exit {out.returncode}): "
                     f"{out.stderr.strip()[-300:]}")
    server = rep.get("server") or {}
    fit = server.get("cost")
    if not fit:
        raise Failed(f"{peer['name']}: tune load measured no cost (exit {out.returncode})")
    pts = [(x["connections"], x["rss"]) for x in server["samples"] if x.get("rss") is not None]
    return {"cmd": " ".join(cmd[1:]), "exit": out.returncode, "fit": fit,
            "rss_slope": slope(pts), "load": la}


def versions():
    v = {}
    for name, cmd in [("go", ["go", "version"]), ("node", ["node", "--version"]),
                      ("rustc", ["rustc", "--version"])]:
        try:
            v[name] = subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
        except OSError:
            v[name] = "absent"
    try:
        with open(os.path.join(ROOT, "bench/peers/node-ws/node_modules/ws/package.json")) as f:
            v["ws"] = json.load(f)["version"]
    except OSError:
        v["ws"] = "absent"
    v["tune"] = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                               capture_output=True, text=True).stdout.strip()
    return v


def sitting(a):
    """The run's UTC stamp and the results' head: machine, time, arguments, versions."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return stamp, {"machine": f"{platform.node()}, {platform.machine()}, Linux "
                              f"{platform.release()}, {os.cpu_count()} cores",
                   "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                   "args": vars(a), "versions": versions(), "servers": []}


def write_results(res, md, name):
    """Prints the table and writes it and the raw JSON to bench/results/NAME.{md,json}."""
    out = os.path.join(ROOT, "bench/results", name)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out + ".json", "w") as f:
        json.dump(res, f, indent=1)
    with open(out + ".md", "w") as f:
        f.write(md)
    print(md)
    print(f"written: {out}.md, {out}.json", file=sys.stderr)


def fmt(x, nd=0):
    return f"{x:,.{nd}f}"


def table(res):
    a = res["args"]
    out = [f"Machine: {res['machine']}; {res['when']}; tune at commit {res['versions']['tune']}; "
           f"{res['versions']['go']}, node {res['versions']['node']} (ws {res['versions']['ws']}), "
           f"{res['versions']['rustc']}. Servers pinned to CPU {SERVER_CPU} (one core), the client "
           f"(bench/server-client) to CPU {CLIENT_CPU}"
           f"{', both SCHED_FIFO 1 (--fifo)' if a.get('fifo') else ''}. Load average (1 min) at the start of each "
           "measurement in the last column.", "",
           f"| server | idle B/conn at {fmt(a['conns'])} (1 process) | idle B/conn at "
           f"{fmt(a['wide'])} (processes) | handshakes/s 0->{fmt(a['conns'])} | echo/s, "
           f"{fmt(a['echo_conns'])} conns, 32 B (server, client CPU share) = per server core-second | same, 4 KiB | CPU s per 1M echoes "
           f"(32 B / 4 KiB) | p50 / p99 latency at {fmt(a['rate'])}/s offered | load avg |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    costs = [r for r in res["servers"] if r.get("cost")]
    for r in res["servers"]:
        if "error" in r:
            out.append(f"| {r['name']} | FAILED: {r['error']} | | | | | | | |")
            continue
        out.append(row(r))
    if costs:
        out += ["", f"Cost per connection from `tune load URL --conns {fmt(a['cost_conns'])} "
                f"--hold 1 --server-pid PID --format json` (the server alone in a memory cgroup "
                "of its own), next to the idle column's figure:", "",
                "| server | idle column B/conn (RSS) | tune load: total B/conn (R²) | user / kernel | "
                "its RSS slope B/conn | fitted over | load avg |",
                "| --- | --- | --- | --- | --- | --- | --- |"]
        out += [cost_row(r) for r in costs]
    out += ["", "Configurations:", ""]
    out += [f"- **{p['name']}**: {p['config']}" for p in PEERS]
    return "\n".join(out) + "\n"


def row(r):
    """One table row; a column that was not measured (--columns) shows as "-"."""
    i, w, e, k, lat = (r.get(c) for c in ("idle", "wide", "echo32", "echo4k", "latency"))
    cells = [r["name"]]
    cells.append(fmt(i["bytes_per_conn"], 1) if i else "-")
    cells.append(f"{fmt(w['bytes_per_conn'], 1)} ({w['procs']})" if w else "-")
    cells.append(fmt(i["open_per_sec"]) if i else "-")
    for x in (e, k):
        cells.append(f"{fmt(x['msgs_per_sec'])} (CPU {x['cpu_share']:.2f}, client "
                     f"{x['client_cpu_share']:.2f}) = {fmt(x['msgs_per_sec'] / x['cpu_share'])}"
                     if x else "-")
    cells.append(f"{e['cpu_per_million']:.1f} / {k['cpu_per_million']:.1f}" if e else "-")
    cells.append(f"{lat['p50_us'] / 1000:.2f} / {lat['p99_us'] / 1000:.2f} ms"
                 f"{' (busy ' + str(lat['busy_skipped']) + ')' if lat['busy_skipped'] else ''}"
                 if lat else "-")
    cells.append(" / ".join(f"{x['load']:.1f}" if x else "-" for x in (i, w, e, k, lat)))
    return "| " + " | ".join(cells) + " |"


def cost_row(r):
    c, f, i = r["cost"], r["cost"]["fit"], r.get("idle")
    return (f"| {r['name']} | {fmt(i['bytes_per_conn'], 1) if i else '-'} | "
            f"{fmt(f['bytes_per_connection'])} ({f['r_squared']:.3f}) | {fmt(f['user_bytes'])} / "
            f"{fmt(f['kernel_bytes'])} | {fmt(c['rss_slope'])} | {fmt(f['range'][0])} -> "
            f"{fmt(f['range'][1])}, {f['source']}{', not constant' if f.get('varies') else ''} | "
            f"{c['load']:.1f} |")


COLUMNS = ("idle", "wide", "echo", "latency", "cost")


def measure(peer, a):
    r = {"name": peer["name"]}
    cols = a.columns.split(",")
    if "idle" in cols:
        r["idle"] = held(peer, a.conns, 1)
        print(f"  idle {json.dumps(r['idle'])}", file=sys.stderr, flush=True)
    if "wide" in cols:
        r["wide"] = held(peer, a.wide, a.wide_procs)
        print(f"  wide {json.dumps(r['wide'])}", file=sys.stderr, flush=True)
    if "echo" in cols:
        r["echo32"] = echo(peer, a.echo_conns, a.echo_secs, 32)
        r["echo4k"] = echo(peer, a.echo_conns, a.echo_secs, 4096)
        print(f"  echo {json.dumps(r['echo32'])} {json.dumps(r['echo4k'])}", file=sys.stderr,
              flush=True)
    if "latency" in cols:
        r["latency"] = echo(peer, a.echo_conns, a.echo_secs, 32, rate=a.rate)
        print(f"  latency {json.dumps(r['latency'])}", file=sys.stderr, flush=True)
    if "cost" in cols:
        r["cost"] = cost(peer, a.cost_conns)
        print(f"  cost {json.dumps(r['cost'])}", file=sys.stderr, flush=True)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=19000)
    ap.add_argument("--wide", type=int, default=100000)
    ap.add_argument("--wide-procs", type=int, default=6)
    ap.add_argument("--echo-conns", type=int, default=10000)
    ap.add_argument("--echo-secs", type=int, default=10)
    ap.add_argument("--rate", type=int, default=10000)
    ap.add_argument("--cost-conns", type=int, default=10000,
                    help="connections of the cost column's tune load ramp")
    ap.add_argument("--only", help="comma-separated substrings of server names")
    ap.add_argument("--columns", default=",".join(COLUMNS),
                    help="comma-separated subset of " + ",".join(COLUMNS) + " (idle holds the "
                         "handshake rate)")
    ap.add_argument("--baseline", metavar="TUNE_BIN",
                    help="also measure this tune binary (an earlier build) as a row after tune's, "
                         "for before/after figures in one sitting")
    ap.add_argument("--fifo", action="store_true",
                    help="run servers and clients SCHED_FIFO 1 (chrt -f 1): less noise from "
                         "other work on a shared machine; use with --columns idle")
    ap.add_argument("--repeat", type=int, default=1,
                    help="measure the servers this many times in turn (A B A B ...)")
    a = ap.parse_args()
    if a.fifo:
        FIFO[:] = ["chrt", "-f", "1"]
    bad = [c for c in a.columns.split(",") if c not in COLUMNS]
    if bad:
        sys.exit(f"--columns: unknown {','.join(bad)}; choose from {','.join(COLUMNS)}")
    if -(-a.wide // a.wide_procs) > MAX_PER_PROCESS:
        sys.exit(f"--wide {a.wide} over {a.wide_procs} processes exceeds {MAX_PER_PROCESS} a process")
    stamp, res = sitting(a)
    failed = False
    if a.baseline:
        base = dict(PEERS[0], name=f"tune serve (baseline {a.baseline})")
        base["cmd"] = [os.path.abspath(a.baseline)] + PEERS[0]["cmd"][1:]
        PEERS.insert(1, base)
    peers = [p for p in PEERS if not a.only or any(s in p["name"] for s in a.only.split(","))]
    for peer in peers * max(a.repeat, 1):
        print(f"{peer['name']} (load {loadavg():.1f})", file=sys.stderr, flush=True)
        try:
            res["servers"].append(measure(peer, a))
        except (Failed, subprocess.TimeoutExpired, OSError, ValueError) as err:
            print(f"  FAILED: {err}", file=sys.stderr, flush=True)
            res["servers"].append({"name": peer["name"], "error": str(err)})
            failed = True
        time.sleep(2)
    write_results(res, table(res), f"peers-{stamp}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
