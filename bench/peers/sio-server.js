'use strict';
// Baseline peer: Node.js + Socket.IO + pg, optionally several instances sharing
// rooms through @socket.io/redis-adapter (REDIS_URL). Frames are Socket.IO events:
// event name = frame type, argument = the whole frame object.

const http = require('node:http');
const { Server } = require('socket.io');
const store = require('./store');

const { config } = store;
const HEARTBEAT_S = 30;
const clustered = Boolean(config.redisUrl);

// The server's 'request' handler is the API; Socket.IO intercepts /socket.io/.
const server = http.createServer({ keepAliveTimeout: 65000 }, (req, res) => api(req, res));
const io = new Server(server, {
  transports: ['websocket'],
  perMessageDeflate: false,
  serveClient: false,
  maxHttpBufferSize: 64 * 1024,
});

// Called by the room's sequencer in seq order. With the Redis adapter, the event
// goes to other instances' sockets through Redis; the 'published' notice follows
// it on the same Redis connection, so peers advance their own sequencers for this
// room only after the event reached their sockets, keeping the order global.
function publish(event) {
  io.to(event.room).emit('message', event);
  if (clustered) io.serverSideEmit('published', event.room, event.seq);
}

const hub = new store.Hub(publish);
const api = store.httpHandler(hub);

io.use((socket, next) => {
  const { query, auth } = socket.handshake;
  const user = store.verifyToken(query.token || auth?.token);
  if (!user) return next(new Error('unauthorized'));
  socket.data.user = user;
  next();
});

if (clustered) io.on('published', (room, seq) => hub.remote(room, seq));

const error = (socket, code, detail, ref) => socket.emit('error', ref === undefined
  ? { type: 'error', error_code: code, detail }
  : { type: 'error', error_code: code, detail, ref });

io.on('connection', (socket) => {
  const { user } = socket.data;
  const joined = new Set();
  socket.emit('welcome', { type: 'welcome', user: { id: user.id, username: user.username }, server_id: config.serverId, heartbeat_s: HEARTBEAT_S });

  socket.on('ping', () => socket.emit('pong', { type: 'pong' }));

  socket.on('join', async (msg) => {
    const room = msg?.room;
    if (!store.validRoom(room)) return error(socket, 'validation_error', 'room must be a non-empty string');
    socket.join(room);
    joined.add(room);
    try {
      const r = await hub.join(room); // last_seq read after subscribing
      socket.emit('joined', { type: 'joined', room, topic: null, last_seq: r.last_seq, online: [] });
    } catch (err) {
      console.error('join failed:', err.message);
      error(socket, 'internal', 'join failed');
    }
  });

  socket.on('send', async (msg) => {
    if (!msg || typeof msg !== 'object') return error(socket, 'validation_error', 'frame must be an object');
    const { room, body, client_msg_id: ref } = msg;
    if (!joined.has(room)) return error(socket, 'forbidden', 'join the room first', ref);
    if (!store.validBody(body) || !store.validClientMsgId(ref)) {
      return error(socket, 'validation_error', 'body must be a 1..4000 character string', ref);
    }
    try {
      const { stored } = await hub.send(room, user, body, ref);
      socket.emit('ack', { type: 'ack', client_msg_id: ref ?? null, id: String(stored.id), seq: stored.seq });
    } catch (err) {
      console.error('send failed:', err.message);
      error(socket, 'internal', 'send failed', ref);
    }
  });

  socket.onAny((event) => {
    if (event !== 'ping' && event !== 'join' && event !== 'send') {
      error(socket, 'validation_error', `unknown frame type: ${event}`);
    }
  });
});

let redisClients = [];

async function main() {
  if (clustered) {
    const { createClient } = require('redis');
    const { createAdapter } = require('@socket.io/redis-adapter');
    const pub = createClient({ url: config.redisUrl });
    const sub = pub.duplicate();
    for (const c of [pub, sub]) c.on('error', (err) => console.error('redis error:', err.message));
    await Promise.all([pub.connect(), sub.connect()]);
    redisClients = [pub, sub];
    // Redis pub/sub ignores the db number: scope channels to the deployment (its database).
    const key = `socket.io:${new URL(config.databaseUrl).pathname.slice(1)}`;
    io.adapter(createAdapter(pub, sub, { key }));
  }
  await store.init();
  server.listen(config.port, '127.0.0.1', () => console.log(`listening ${config.port}`));
}

function shutdown() {
  io.close();
  server.closeAllConnections?.();
  Promise.allSettled([store.pool.end(), ...redisClients.map((c) => c.quit())])
    .finally(() => process.exit(0));
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

main().catch((err) => { console.error(err); process.exit(1); });
