'use strict';
// Shared by ws-server.js and sio-server.js: PostgreSQL storage, the per-room
// in-order publisher, token checks and the small HTTP API both servers expose.

const crypto = require('node:crypto');
const jwt = require('jsonwebtoken');
const { Pool } = require('pg');

const BODY_MAX = 4000;
const HISTORY_DEFAULT = 50;
const HISTORY_MAX = 200;
const GAP_TIMEOUT_MS = 5000;

const config = {
  port: Number(process.env.PORT || 8080),
  databaseUrl: process.env.DATABASE_URL,
  jwtSecret: process.env.JWT_SECRET,
  poolSize: Number(process.env.PG_POOL || 10),
  redisUrl: process.env.REDIS_URL || '',
  serverId: process.env.SERVER_ID || crypto.randomBytes(4).toString('hex'),
};
if (!config.databaseUrl || !config.jwtSecret) {
  console.error('DATABASE_URL and JWT_SECRET are required');
  process.exit(2);
}

const pool = new Pool({ connectionString: config.databaseUrl, max: config.poolSize });
pool.on('error', (err) => console.error('pg pool error:', err.message));

const SCHEMA = `
CREATE TABLE IF NOT EXISTS rooms (
  id bigserial PRIMARY KEY,
  name text UNIQUE NOT NULL,
  last_seq bigint NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS messages (
  id bigserial PRIMARY KEY,
  room_id bigint NOT NULL REFERENCES rooms,
  seq bigint NOT NULL,
  user_id text NOT NULL,
  username text NOT NULL,
  body text NOT NULL,
  client_msg_id text,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (room_id, seq),
  UNIQUE (user_id, client_msg_id)
);`;
// UNIQUE (room_id, seq) creates the btree index history reads by (room_id, seq).

async function init() {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query("SELECT pg_advisory_xact_lock(hashtext('termrooms_bench_peers_schema'))");
    await client.query(SCHEMA);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

const roomIds = new Map(); // name -> id

const Q_ROOM_INSERT = {
  name: 'room_insert',
  text: 'INSERT INTO rooms (name) VALUES ($1) ON CONFLICT (name) DO NOTHING',
};
const Q_ROOM_BY_NAME = { name: 'room_by_name', text: 'SELECT id, name, last_seq FROM rooms WHERE name = $1' };
const Q_ROOM_BY_ID = { name: 'room_by_id', text: 'SELECT id, name, last_seq FROM rooms WHERE id = $1' };

function roomRow(row) {
  return { id: row.id, name: row.name, last_seq: Number(row.last_seq) };
}

// Create-or-get; last_seq is always read fresh.
async function roomFor(name) {
  const id = roomIds.get(name);
  if (id !== undefined) {
    const { rows } = await pool.query({ ...Q_ROOM_BY_ID, values: [id] });
    if (rows.length) return roomRow(rows[0]);
    roomIds.delete(name);
  }
  await pool.query({ ...Q_ROOM_INSERT, values: [name] });
  const { rows } = await pool.query({ ...Q_ROOM_BY_NAME, values: [name] });
  roomIds.set(name, rows[0].id);
  return roomRow(rows[0]);
}

// Lookup only (HTTP GET must 404 on unknown rooms rather than create them).
async function findRoom(name) {
  const { rows } = await pool.query({ ...Q_ROOM_BY_NAME, values: [name] });
  if (!rows.length) return null;
  roomIds.set(name, rows[0].id);
  return roomRow(rows[0]);
}

// One statement, one round trip, its own transaction; idempotent on (user_id, client_msg_id).
const Q_STORE = {
  name: 'store_message',
  text: `WITH existing AS (
    SELECT id, seq, created_at FROM messages WHERE user_id = $2 AND client_msg_id = $4
  ), r AS (
    UPDATE rooms SET last_seq = last_seq + 1
    WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM existing) RETURNING last_seq
  ), ins AS (
    INSERT INTO messages (room_id, seq, user_id, body, client_msg_id, username)
    SELECT $1, last_seq, $2, $3, $4, $5 FROM r RETURNING id, seq, created_at
  )
  SELECT id, seq, created_at, true AS fresh FROM ins
  UNION ALL SELECT id, seq, created_at, false FROM existing`,
};

async function storeMessage(roomId, user, body, clientMsgId) {
  const query = { ...Q_STORE, values: [roomId, user.id, body, clientMsgId ?? null, user.username] };
  let rows;
  try {
    ({ rows } = await pool.query(query));
  } catch (err) {
    // Two concurrent sends with the same client_msg_id: the loser's statement
    // (UPDATE included) rolled back; running it again returns the winner's row.
    if (err.code !== '23505' || err.constraint !== 'messages_user_id_client_msg_id_key') throw err;
    ({ rows } = await pool.query(query));
  }
  if (!rows.length) throw new Error('room not found');
  const row = rows[0];
  return { id: row.id, seq: Number(row.seq), ts: row.created_at, fresh: row.fresh };
}

function messageEvent(roomName, id, seq, ts, user, body, clientMsgId) {
  return {
    type: 'message',
    id: String(id),
    room: roomName,
    seq,
    ts: ts.toISOString(),
    user,
    body,
    client_msg_id: clientMsgId ?? null,
    action: false,
  };
}

function rowEvent(roomName, row) {
  return messageEvent(roomName, row.id, Number(row.seq), row.created_at, row.username, row.body, row.client_msg_id);
}

const HISTORY_COLS = 'id, seq, username, body, client_msg_id, created_at';
const Q_HIST_LATEST = {
  name: 'hist_latest',
  text: `SELECT ${HISTORY_COLS} FROM messages WHERE room_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3`,
};
const Q_HIST_AFTER = {
  name: 'hist_after',
  text: `SELECT ${HISTORY_COLS} FROM messages WHERE room_id = $1 AND seq > $2 AND seq < $3 ORDER BY seq LIMIT $4`,
};

// Events oldest first. Without `after`: the newest `limit` before `before`;
// with `after`: the oldest `limit` after it. has_more: more exist in that direction.
async function history(room, { before, after, limit } = {}) {
  limit = Math.min(Math.max(Number(limit) || HISTORY_DEFAULT, 1), HISTORY_MAX);
  const hi = before != null ? Number(before) : Number.MAX_SAFE_INTEGER;
  let rows;
  if (after != null) {
    ({ rows } = await pool.query({ ...Q_HIST_AFTER, values: [room.id, Number(after), hi, limit + 1] }));
  } else {
    ({ rows } = await pool.query({ ...Q_HIST_LATEST, values: [room.id, hi, limit + 1] }));
  }
  const hasMore = rows.length > limit;
  if (hasMore) rows.length = limit;
  if (after == null) rows.reverse();
  return { events: rows.map((r) => rowEvent(room.name, r)), has_more: hasMore };
}

// Publishes a room's events strictly in seq order without gaps. Commits finish on
// different pool connections, so a later seq may be committed first: it is held
// until the missing ones arrive. commit(seq, null) advances without publishing
// (an event another instance publishes). If lastSeq is not known yet the
// sequencer buffers until prime(lastSeq). A gap that persists (a commit whose
// reply was lost, a peer instance that died) is filled from the database.
class Sequencer {
  constructor(room, publish, lastSeq) {
    this.room = room; // {id, name}
    this.publish = publish;
    this.next = lastSeq == null ? null : lastSeq + 1;
    this.pending = new Map();
    this.timer = null;
  }

  prime(lastSeq) {
    if (this.next !== null) return;
    this.next = lastSeq + 1;
    for (const seq of this.pending.keys()) if (seq < this.next) this.pending.delete(seq);
    this.drain();
  }

  commit(seq, event) {
    if (this.next !== null && seq < this.next) return;
    this.pending.set(seq, event);
    if (this.next !== null) this.drain();
  }

  drain() {
    const { pending } = this;
    while (pending.has(this.next)) {
      const event = pending.get(this.next);
      pending.delete(this.next);
      this.next++;
      if (event) this.publish(event);
    }
    if (pending.size === 0) {
      if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    } else if (!this.timer) {
      this.timer = setTimeout(() => this.fillGap(), GAP_TIMEOUT_MS);
      this.timer.unref();
    }
  }

  async fillGap() {
    this.timer = null;
    if (this.pending.size === 0) return;
    const upto = Math.min(...this.pending.keys());
    try {
      const { rows } = await pool.query({ ...Q_HIST_AFTER, values: [this.room.id, this.next - 1, upto, upto - this.next] });
      for (const row of rows) this.commit(Number(row.seq), rowEvent(this.room.name, row));
      // Still missing after the read: those seqs were never committed; skip them.
      if (!this.pending.has(this.next) && this.next < upto) this.next = upto;
    } catch (err) {
      console.error('gap fill failed:', err.message);
    }
    this.drain();
  }
}

// Token checks: HS256, sub = user id, name = username.
function verifyToken(token) {
  if (!token) return null;
  try {
    const claims = jwt.verify(token, config.jwtSecret, { algorithms: ['HS256'] });
    if (claims.sub == null) return null;
    return { id: String(claims.sub), username: String(claims.name ?? claims.sub) };
  } catch {
    return null;
  }
}

// Rooms this instance publishes for: name -> {room, sequencer}. `publish(event)`
// delivers an event to the room's subscribers (and, when an instance shares rooms
// with others, `announce(name, seq)` tells them this seq has been published).
class Hub {
  constructor(publish) {
    this.publish = publish;
    this.rooms = new Map();
  }

  // Synchronously create the room's sequencer (unprimed) so nothing committed from
  // now on can be missed; primed from the first fresh last_seq read.
  sequencer(name) {
    let s = this.rooms.get(name);
    if (!s) {
      s = new Sequencer({ id: null, name }, this.publish, null);
      this.rooms.set(name, s);
    }
    return s;
  }

  // Called after the socket is subscribed; returns the room with a fresh last_seq.
  async join(name) {
    const s = this.sequencer(name);
    const room = await roomFor(name);
    s.room.id = room.id;
    s.prime(room.last_seq);
    return room;
  }

  // Store, then hand the event to the room's sequencer. Returns {stored, event}.
  async send(name, user, body, clientMsgId) {
    const s = this.sequencer(name);
    let roomId = s.room.id;
    if (roomId === null || s.next === null) roomId = (await this.join(name)).id;
    const stored = await storeMessage(roomId, user, body, clientMsgId);
    const event = messageEvent(name, stored.id, stored.seq, stored.ts, user.username, body, clientMsgId);
    if (stored.fresh) s.commit(stored.seq, event);
    return { stored, event };
  }

  // Another instance published `seq` in room `name`.
  remote(name, seq) {
    const s = this.rooms.get(name);
    if (s) s.commit(seq, null);
  }
}

function validRoom(room) {
  return typeof room === 'string' && room.length > 0 && room.length <= 200;
}
function validBody(body) {
  return typeof body === 'string' && body.length > 0 && body.length <= BODY_MAX;
}
function validClientMsgId(id) {
  return id == null || (typeof id === 'string' && id.length > 0 && id.length <= 200);
}

// ---- HTTP API shared by both servers ----

function sendJson(res, status, obj) {
  const data = JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
  res.end(data);
}

function readBody(req, max = 64 * 1024) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > max) { reject(new Error('too large')); req.destroy(); return; }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

const ROUTE = /^\/api\/rooms\/([^/]+)\/messages$/;

function httpHandler(hub) {
  return async (req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/health' && req.method === 'GET') return sendJson(res, 200, { status: 'ok' });
    const m = ROUTE.exec(url.pathname);
    if (!m || (req.method !== 'GET' && req.method !== 'POST')) {
      req.resume();
      return sendJson(res, 404, { error_code: 'not_found', detail: 'no such route' });
    }
    const auth = req.headers.authorization || '';
    const user = verifyToken(auth.startsWith('Bearer ') ? auth.slice(7) : null);
    if (!user) {
      req.resume();
      return sendJson(res, 401, { error_code: 'unauthorized', detail: 'missing or invalid bearer token' });
    }
    let name;
    try { name = decodeURIComponent(m[1]); } catch { name = ''; }
    if (!validRoom(name)) return sendJson(res, 400, { error_code: 'validation_error', detail: 'bad room name' });
    try {
      if (req.method === 'GET') {
        const q = url.searchParams;
        const num = (k) => {
          const v = q.get(k);
          if (v == null || v === '') return undefined;
          if (!/^\d+$/.test(v)) throw Object.assign(new Error(`${k} must be a non-negative integer`), { status: 400 });
          return Number(v);
        };
        const opts = { limit: num('limit'), before: num('before'), after: num('after') };
        const room = await findRoom(name);
        if (!room) return sendJson(res, 404, { error_code: 'not_found', detail: 'no such room' });
        return sendJson(res, 200, await history(room, opts));
      }
      let payload;
      try { payload = JSON.parse(await readBody(req)); } catch {
        return sendJson(res, 400, { error_code: 'invalid_json', detail: 'body must be a JSON object' });
      }
      if (!payload || !validBody(payload.body) || !validClientMsgId(payload.client_msg_id)) {
        return sendJson(res, 400, { error_code: 'validation_error', detail: `body must be a 1..${BODY_MAX} character string` });
      }
      const { event } = await hub.send(name, user, payload.body, payload.client_msg_id);
      return sendJson(res, 201, event);
    } catch (err) {
      if (err.status) return sendJson(res, err.status, { error_code: 'validation_error', detail: err.message });
      console.error('http error:', err.message);
      return sendJson(res, 500, { error_code: 'internal', detail: 'internal error' });
    }
  };
}

module.exports = {
  config, pool, init, roomFor, findRoom, storeMessage, history, messageEvent,
  Sequencer, Hub, verifyToken, httpHandler, validRoom, validBody, validClientMsgId,
};
