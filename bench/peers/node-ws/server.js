// Peer server of bench/peers: Node `ws` echo in one process, configured as ws's README says
// for many connections: no permessage-deflate (its README warns of its memory cost per
// connection), clientTracking off (no Set of every client), the optional native `bufferutil`
// for masking, maxPayload bounded. With `--cert FILE --key FILE` it serves over `https` (Node's
// OpenSSL, its defaults): the TLS row of bench/peers/tls.py. Prints `listening on ADDR`.
// Usage: node server.js [ADDR] [--cert FILE --key FILE]
'use strict';
const fs = require('fs');
const http = require('http');
const https = require('https');
const { WebSocketServer } = require('ws');

const argv = process.argv.slice(2);
const flag = (name) => {
  const i = argv.indexOf(name);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : undefined;
};
const [host, port] = (argv[0] && !argv[0].startsWith('--') ? argv[0] : '127.0.0.1:0').split(':');
const [cert, key] = [flag('--cert'), flag('--key')];
if (!cert !== !key) {
  process.stderr.write('usage: node server.js [ADDR] [--cert FILE --key FILE] (both or neither)\n');
  process.exit(2);
}
const refuse = (req, res) => {
  res.writeHead(426);
  res.end();
};
const server = cert
  ? https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, refuse)
  : http.createServer(refuse);
const wss = new WebSocketServer({
  noServer: true,
  perMessageDeflate: false,
  clientTracking: false,
  maxPayload: 64 * 1024,
});
server.on('upgrade', (req, socket, head) => {
  socket.setNoDelay(true);
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on('error', () => ws.terminate());
  });
});
server.maxConnections = 1000000;
server.listen({ host, port: Number(port), backlog: 4096 }, () => {
  const a = server.address();
  process.stdout.write(`listening on ${a.address}:${a.port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
