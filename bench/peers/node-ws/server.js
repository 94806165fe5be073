// Peer server of bench/peers: Node `ws` echo in one process, configured as ws's README says
// for many connections: no permessage-deflate (its README warns of its memory cost per
// connection), clientTracking off (no Set of every client), the optional native `bufferutil`
// for masking, maxPayload bounded. Prints `listening on ADDR`.
'use strict';
const http = require('http');
const { WebSocketServer } = require('ws');

const [host, port] = (process.argv[2] || '127.0.0.1:0').split(':');
const server = http.createServer((req, res) => {
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
