// Peer server of bench/peers' TLS rows: Node `https` (OpenSSL as Node links it) under `ws`, the
// Node stack issue 22 names, configured as the plain server.js: no permessage-deflate,
// clientTracking off, bufferutil, maxPayload bounded; TLS as Node configures it by default.
// Usage: node server-tls.js [ADDR] --cert FILE --key FILE. Prints `listening on ADDR`.
'use strict';
const fs = require('fs');
const https = require('https');
const { WebSocketServer } = require('ws');

const argv = process.argv.slice(2);
const flag = (name) => {
  const i = argv.indexOf(name);
  if (i < 0 || i + 1 >= argv.length) {
    process.stderr.write(`usage: node server-tls.js [ADDR] --cert FILE --key FILE (missing ${name})\n`);
    process.exit(2);
  }
  return argv[i + 1];
};
const [host, port] = (argv[0] && !argv[0].startsWith('--') ? argv[0] : '127.0.0.1:0').split(':');
const server = https.createServer({ cert: fs.readFileSync(flag('--cert')), key: fs.readFileSync(flag('--key')) },
  (req, res) => {
    res.writeHead(426);
    res.end();
  });
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
