"""A wss:// echo server: Python `websockets` over the standard `ssl` module (not by tune), for
tests/integration/serve_tls.rs. Usage: wss_echo_server.py CERT.pem KEY.pem; listens on
127.0.0.1 port 0 and prints the port on its first line, then serves until killed."""

import asyncio
import ssl
import sys

from websockets.asyncio.server import serve


async def echo(ws):
    async for msg in ws:
        await ws.send(msg)


async def main(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    async with serve(echo, "127.0.0.1", 0, ssl=ctx) as server:
        port = server.sockets[0].getsockname()[1]
        print(port, flush=True)
        await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
