"""Interop scenarios against `tune serve`, driven by the Python `websockets` client (an
independent implementation). Usage: ws_client.py ws://HOST:PORT/ SCENARIO [ARG...]

Each scenario prints `ok <scenario> <details>` and exits 0, or raises (non-zero exit) with the
reason. The Rust tests in tests/integration/serve_interop.rs run these against the real binary."""

import asyncio
import json
import sys

import os
import ssl

from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError


def connect(url, **kw):
    """The websockets client; for wss:// it trusts the CA file in TUNE_TEST_CA (the test's own)."""
    if url.startswith("wss://"):
        kw.setdefault("ssl", ssl.create_default_context(cafile=os.environ["TUNE_TEST_CA"]))
    return ws_connect(url, **kw)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


async def echo(url):
    async with connect(url, max_size=None) as ws:
        for msg in ["hello", "κόσμε 𝄞 ünïcødé", "", "x" * 60000]:
            await ws.send(msg)
            got = await ws.recv()
            check(isinstance(got, str) and got == msg, f"text echo of {len(msg)} chars: got {got!r:.60}")
        for msg in [b"\x00\x01\xff", b"", bytes(range(256)) * 200]:
            await ws.send(msg)
            got = await ws.recv()
            check(isinstance(got, bytes) and got == msg, f"binary echo of {len(msg)} bytes differs")
    print("ok echo 7 messages")


async def fragmented(url):
    async with connect(url) as ws:
        parts = ["frag-", "μένες ", "parts", ""]
        await ws.send(parts)  # one text message in 4 frames
        got = await ws.recv()
        check(got == "".join(parts), f"fragmented text: got {got!r}")
        bparts = [b"\x01" * 10, b"\x02" * 5000, b"\x03"]
        await ws.send(bparts)
        got = await ws.recv()
        check(got == b"".join(bparts), "fragmented binary differs")
        # A multi-byte character split across two fragments stays valid.
        euro = "€".encode()
        await ws.send(["a" + euro[:1].decode("latin-1")[:0], "€"])
        got = await ws.recv()
        check(got == "a€", f"split char: {got!r}")
    print("ok fragmented 3 messages")


async def ping(url):
    async with connect(url) as ws:
        for payload in [b"", b"abc", b"p" * 125]:
            waiter = await ws.ping(payload)
            latency = await asyncio.wait_for(waiter, 5)
        # Pings interleaved with a fragmented message are answered too.
        await ws.send(["one", "two"])
        check(await ws.recv() == "onetwo", "message after pings")
    print(f"ok ping 3 pongs latency {latency:.6f}")


async def close_codes(url):
    for code, reason in [(1000, ""), (1001, "going"), (4000, "app-defined"), (3001, "ü")]:
        ws = await connect(url)
        await ws.send("before close")
        check(await ws.recv() == "before close", "echo before close")
        await ws.close(code=code, reason=reason)
        check(ws.close_code == code, f"server answered close {code} with {ws.close_code}")
    print("ok close_codes 4 codes echoed")


async def limit(url, max_message):
    max_message = int(max_message)
    async with connect(url, max_size=None) as ws:
        await ws.send(b"a" * max_message)
        got = await ws.recv()
        check(len(got) == max_message, "message at the limit echoed")
        await ws.send(["b" * (max_message // 2), "c" * (max_message // 2 + 1)])
        try:
            await asyncio.wait_for(ws.recv(), 5)
            raise AssertionError("a message beyond the limit was echoed")
        except ConnectionClosedError as e:
            check(e.rcvd is not None and e.rcvd.code == 1009, f"close code {e.rcvd}")
    async with connect(url, max_size=None) as ws:
        await ws.send(b"z" * (max_message + 1))
        try:
            await asyncio.wait_for(ws.recv(), 5)
            raise AssertionError("a single frame beyond the limit was echoed")
        except ConnectionClosedError as e:
            check(e.rcvd is not None and e.rcvd.code == 1009, f"close code {e.rcvd}")
    print("ok limit at-limit echoed, beyond-limit closed 1009")


async def many(url, n, msgs):
    n, msgs = int(n), int(msgs)

    async def one(i):
        async with connect(url, open_timeout=20) as ws:
            for k in range(msgs):
                m = f"client {i} message {k}"
                await ws.send(m)
                got = await ws.recv()
                check(got == m, f"client {i}: {got!r}")
            return msgs

    # Open them all first, then talk: they are concurrent, not sequential.
    results = await asyncio.gather(*(one(i) for i in range(n)))
    check(sum(results) == n * msgs, "every client finished")
    print(f"ok many {n} clients x {msgs} messages")


async def hold(url, n):
    """Opens n connections, prints `held N`, then waits for the server to close them (shutdown)."""
    n = int(n)
    conns = []
    for _ in range(n):
        conns.append(await connect(url))
    print(f"held {len(conns)}", flush=True)
    codes = []
    for ws in conns:
        try:
            await asyncio.wait_for(ws.recv(), 30)
        except ConnectionClosed as e:
            codes.append(e.rcvd.code if e.rcvd else None)
    print("ok hold close codes " + json.dumps(sorted(set(codes))))


async def main():
    url, scenario, *args = sys.argv[1:]
    await {
        "echo": echo,
        "fragmented": fragmented,
        "ping": ping,
        "close_codes": close_codes,
        "limit": limit,
        "many": many,
        "hold": hold,
    }[scenario](url, *args)


asyncio.run(main())
