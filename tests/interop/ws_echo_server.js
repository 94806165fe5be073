// An echo server written with the Node `ws` library (not by tune), for tests/integration/yourserver.rs:
// listens on 127.0.0.1 port 0 and prints the port on its first line.
const { WebSocketServer } = require('ws');
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
wss.on('listening', () => console.log(wss.address().port));
