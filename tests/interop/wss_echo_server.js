// A wss:// echo server written with Node's `https` and the `ws` library (not by tune), for
// tests/integration/serve_tls.rs: wss_echo_server.js CERT.pem KEY.pem listens on 127.0.0.1
// port 0 over TLS and prints the port on its first line.
const fs = require('fs');
const https = require('https');
const { WebSocketServer } = require('ws');
const [cert, key] = process.argv.slice(2);
const server = https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) });
const wss = new WebSocketServer({ server });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
