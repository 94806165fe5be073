"""A server shutdown that meets connections whose clients have closed already: does the
server write a 1001 close frame into them (their kernel answers with a reset), or read the
pending end of file first and just close? Run inside a network namespace of the test's own
(`unshare -n`), so the Tcp counters of /proc/net/snmp are this run's alone.
Usage: shutdown_eof.py TUNE CONNECTIONS

It starts `TUNE serve --workers 1`, opens CONNECTIONS websockets (raw sockets: the upgrade
request by hand, the 101 read whole), stops the worker (SIGSTOP), asks the server to stop
(SIGTERM to the supervisor, which passes it on), closes every client socket (a FIN each, into
a worker that cannot read it), and lets the worker run again (SIGCONT): its signal is ready
before the clients' ends of file, so its shutdown begins while most of them are unread.
Prints one JSON object: the growth of EstabResets, OutRsts and InErrs, and the server's
exit code."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

REQUEST = (
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
).encode()


def tcp_counters():
    """The Tcp: line of /proc/net/snmp as a dict."""
    lines = [l.split() for l in open("/proc/net/snmp") if l.startswith("Tcp:")]
    return dict(zip(lines[0][1:], map(int, lines[1][1:])))


def main():
    tune, n = sys.argv[1], int(sys.argv[2])
    server = subprocess.Popen(
        [tune, "serve", "--listen", "127.0.0.1:0", "--workers", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    addr = re.search(r"listening on (\S+):(\d+)", server.stdout.readline())
    pids = re.search(r"pids \[(\d+)\]", server.stdout.readline())
    host, port, worker = addr.group(1), int(addr.group(2)), int(pids.group(1))
    clients = []
    for _ in range(n):
        s = socket.create_connection((host, port))
        s.sendall(REQUEST)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                raise AssertionError("the server closed during the upgrade")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise AssertionError(f"no upgrade: {head[:80]!r}")
        clients.append(s)
    before = tcp_counters()
    os.kill(worker, signal.SIGSTOP)
    server.send_signal(signal.SIGTERM)
    # The supervisor passes SIGTERM on within its 100 ms poll.
    time.sleep(0.5)
    for s in clients:
        s.close()
    time.sleep(0.5)
    os.kill(worker, signal.SIGCONT)
    code = server.wait(timeout=60)
    time.sleep(0.5)
    after = tcp_counters()
    print(
        json.dumps(
            {
                "connections": n,
                "server_exit": code,
                "EstabResets": after["EstabResets"] - before["EstabResets"],
                "OutRsts": after["OutRsts"] - before["OutRsts"],
                "InErrs": after["InErrs"] - before["InErrs"],
            }
        )
    )


main()
