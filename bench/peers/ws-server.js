'use strict';
// Baseline peer: Node.js + ws + pg. Same wire protocol as termrooms (JSON frames).

const http = require('node:http');
const { WebSocketServer, WebSocket } = require('ws');
const store = require('./store');

const { config } = store;
const HEARTBEAT_S = 30;

const subscribers = new Map(); // room name -> Set<WebSocket>

// Called by the room's sequencer, in seq order: one stringify (and one UTF-8
// encode) per broadcast, then the same buffer goes to every subscriber as text.
function publish(event) {
  const set = subscribers.get(event.room);
  if (!set || set.size === 0) return;
  const data = Buffer.from(JSON.stringify(event));
  for (const ws of set) if (ws.readyState === WebSocket.OPEN) ws.send(data, { binary: false });
}

const hub = new store.Hub(publish);
const server = http.createServer({ keepAliveTimeout: 65000 }, store.httpHandler(hub));
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 64 * 1024 });

server.on('upgrade', (req, socket, head) => {
  const url = new URL(req.url, 'http://x');
  const user = url.pathname === '/ws' ? store.verifyToken(url.searchParams.get('token')) : null;
  if (!user) {
    socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, user));
});

const send = (ws, obj) => { if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj)); };
const error = (ws, code, detail, ref) => send(ws, ref === undefined
  ? { type: 'error', error_code: code, detail }
  : { type: 'error', error_code: code, detail, ref });

function onConnection(ws, user) {
  const joined = new Set();
  ws.isAlive = true;
  ws.on('pong', () => { ws.isAlive = true; });
  send(ws, { type: 'welcome', user: { id: user.id, username: user.username }, server_id: config.serverId, heartbeat_s: HEARTBEAT_S });

  ws.on('message', (data, isBinary) => {
    let msg;
    try { msg = JSON.parse(isBinary ? data : data.toString()); } catch {
      return error(ws, 'invalid_json', 'frame is not valid JSON');
    }
    if (!msg || typeof msg !== 'object') return error(ws, 'invalid_json', 'frame must be a JSON object');
    switch (msg.type) {
      case 'ping': return send(ws, { type: 'pong' });
      case 'join': return onJoin(msg);
      case 'send': return onSend(msg);
      default: return error(ws, 'validation_error', `unknown frame type: ${msg.type}`);
    }
  });

  async function onJoin({ room }) {
    if (!store.validRoom(room)) return error(ws, 'validation_error', 'room must be a non-empty string');
    let set = subscribers.get(room);
    if (!set) subscribers.set(room, (set = new Set()));
    set.add(ws);
    joined.add(room);
    try {
      const r = await hub.join(room); // last_seq read after subscribing
      send(ws, { type: 'joined', room, topic: null, last_seq: r.last_seq, online: [] });
    } catch (err) {
      console.error('join failed:', err.message);
      error(ws, 'internal', 'join failed');
    }
  }

  async function onSend({ room, body, client_msg_id: ref }) {
    if (!joined.has(room)) return error(ws, 'forbidden', 'join the room first', ref);
    if (!store.validBody(body) || !store.validClientMsgId(ref)) {
      return error(ws, 'validation_error', 'body must be a 1..4000 character string', ref);
    }
    try {
      const { stored } = await hub.send(room, user, body, ref);
      send(ws, { type: 'ack', client_msg_id: ref ?? null, id: String(stored.id), seq: stored.seq });
    } catch (err) {
      console.error('send failed:', err.message);
      error(ws, 'internal', 'send failed', ref);
    }
  }

  ws.on('close', () => {
    for (const room of joined) {
      const set = subscribers.get(room);
      if (set) { set.delete(ws); if (set.size === 0) subscribers.delete(room); }
    }
  });
  ws.on('error', () => {});
}

// Drop peers that stop answering protocol pings.
const heartbeat = setInterval(() => {
  for (const ws of wss.clients) {
    if (!ws.isAlive) { ws.terminate(); continue; }
    ws.isAlive = false;
    ws.ping();
  }
}, HEARTBEAT_S * 1000);
heartbeat.unref();

async function main() {
  await store.init();
  server.listen(config.port, '127.0.0.1', () => console.log(`listening ${config.port}`));
}

function shutdown() {
  clearInterval(heartbeat);
  for (const ws of wss.clients) ws.terminate();
  server.close();
  server.closeAllConnections?.();
  store.pool.end().finally(() => process.exit(0));
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

main().catch((err) => { console.error(err); process.exit(1); });
