#!/usr/bin/env python3
"""Server benchmarks for BENCHMARKS.md (not run in CI): `tune serve` against a default
tokio-tungstenite echo server (bench/tokio-echo), same run, same cores, loopback only.

1. Marginal RSS per idle websocket: RSS of the server processes with N connections held, less
   their RSS after a warm-up, divided by N. One `tune` worker vs tokio-echo at --conns; then
   `tune` with 2 workers and 2 client processes (one process cannot hold more than ~19,990 fds).
2. Accept + handshake rate: how fast the client (256 handshakes in flight) got N open.
3. Echo throughput: --echo-conns connections, each with one small text message in flight,
   for --echo-secs; messages echoed per second. Servers pinned to CPU 1, client to CPU 0.

Usage: python3 bench/server-bench/run.py [--conns 19000] [--echo-conns 10000] [--echo-secs 10]
Every phase is bounded in time (the client gives up after 120 s); nothing leaves loopback.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TUNE = os.path.join(ROOT, "target/release/tune")
TOKIO = os.path.join(ROOT, "bench/tokio-echo/target/release/tokio-echo")
CLIENT = os.path.join(ROOT, "bench/server-client/target/release/server-client")


def build():
    subprocess.run(["cargo", "build", "--release", "--bin", "tune"], cwd=ROOT, check=True)
    for d in ["bench/tokio-echo", "bench/server-client"]:
        subprocess.run(["cargo", "build", "--release"], cwd=os.path.join(ROOT, d), check=True)


def start(cmd):
    p = subprocess.Popen(["taskset", "-c", "1"] + cmd, stdout=subprocess.PIPE, text=True)
    t = time.time()
    while time.time() - t < 20:
        line = p.stdout.readline()
        if line.startswith("listening on "):
            return p, line.split()[-1]
    p.kill()
    raise SystemExit(f"{cmd} did not start")


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


def stop(p):
    p.terminate()
    try:
        p.wait(30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def client(addr, conns, *extra):
    return subprocess.Popen(
        ["taskset", "-c", "0", CLIENT, addr, str(conns)] + [str(x) for x in extra],
        stdout=subprocess.PIPE,
        text=True,
    )


def phase(c, name):
    for line in c.stdout:
        d = json.loads(line)
        if d["phase"] == name:
            return d
    raise SystemExit(f"client ended without a {name} line")


def held_rss(addr, pids, conns, clients=1):
    """Warm up, take the baseline, open `conns` (split over `clients`), hold, measure."""
    w = client(addr, 200, "--echo-secs", 1)
    w.wait()
    time.sleep(1)
    base = sum(rss(p) for p in pids)
    cs = [client(addr, conns // clients, "--hold-secs", 6) for _ in range(clients)]
    opens = [phase(c, "open") for c in cs]
    time.sleep(2)
    full = sum(rss(p) for p in pids)
    for c in cs:
        c.wait()
    opened = sum(o["opened"] for o in opens)
    rate = opened / max(o["secs"] for o in opens)
    return {
        "opened": opened,
        "failed": sum(o["failed"] for o in opens),
        "rss_base": base,
        "rss_held": full,
        "bytes_per_conn": (full - base) / max(opened, 1),
        "open_per_sec": rate,
    }


def tune_server(workers, backlog=512):
    p, addr = start([TUNE, "serve", "--listen", "127.0.0.1:0", "--workers", str(workers),
                     "--backlog", str(backlog)])
    t = time.time()
    while len(children(p.pid)) < workers and time.time() - t < 10:
        time.sleep(0.05)
    return p, addr, children(p.pid)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=19000)
    ap.add_argument("--echo-conns", type=int, default=10000)
    ap.add_argument("--echo-secs", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-build", action="store_true")
    a = ap.parse_args()
    if not a.no_build:
        build()
    res = {"machine": f"{platform.node()} {platform.machine()} Linux {platform.release()}, "
                      f"{os.cpu_count()} cores", "args": vars(a), "runs": []}

    for rnd in range(a.rounds):
        # 1 + 2: one tune worker vs tokio-echo.
        p, addr, pids = tune_server(1)
        r = held_rss(addr, pids, a.conns)
        r.update(server="tune 1 worker", round=rnd)
        res["runs"].append(r)
        stop(p)
        p, addr = start([TOKIO, "127.0.0.1:0"])
        r = held_rss(addr, [p.pid], a.conns)
        r.update(server="tokio-tungstenite", round=rnd)
        res["runs"].append(r)
        stop(p)
        print(json.dumps(res["runs"][-2:]), file=sys.stderr)

        # 3: echo throughput.
        for name in ["tune 1 worker", "tokio-tungstenite"]:
            if name.startswith("tune"):
                p, addr, _ = tune_server(1)
            else:
                p, addr = start([TOKIO, "127.0.0.1:0"])
            c = client(addr, a.echo_conns, "--echo-secs", a.echo_secs)
            o = phase(c, "open")
            e = phase(c, "echo")
            c.wait()
            stop(p)
            e.update(server=name, round=rnd, open_per_sec=o["per_sec"])
            res["runs"].append(e)
            print(json.dumps(e), file=sys.stderr)

    # Across workers: 2 tune workers, 2 client processes.
    p, addr, pids = tune_server(2)
    r = held_rss(addr, pids, 2 * (a.conns - 1000), clients=2)
    r.update(server="tune 2 workers", round=0)
    res["runs"].append(r)
    stop(p)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
