'use strict';
// Smoke check: node smoke.js ws|sio URL [URL...]   (JWT_SECRET in the environment)
// 3 clients (spread over the URLs) join r1; two send 50 each concurrently; every
// client must see the 100 events exactly once in seq order, senders 50 acks each;
// then a repeat send (ack only), HTTP history, 401/404, and a bot POST broadcast.
const assert = require('node:assert');
const jwt = require('jsonwebtoken');
const WebSocket = require('ws');
const { io } = require('socket.io-client');

const [kind, ...urls] = process.argv.slice(2);
const token = (sub, name) => jwt.sign({ sub, name }, process.env.JWT_SECRET, { algorithm: 'HS256' });
const until = (pred, what) => new Promise((resolve, reject) => {
  const t0 = Date.now();
  const tick = () => (pred() ? resolve() : Date.now() - t0 > 10000 ? reject(new Error(`timeout: ${what}`)) : setTimeout(tick, 5));
  tick();
});

function client(i) {
  const url = urls[i % urls.length];
  const c = { frames: [], msgs: [], acks: [] };
  const onFrame = (f) => { c.frames.push(f); if (f.type === 'message') c.msgs.push(f); if (f.type === 'ack') c.acks.push(f); };
  const tok = token(`u${i}`, `user${i}`);
  if (kind === 'ws') {
    const ws = new WebSocket(`${url.replace('http', 'ws')}/ws?token=${tok}`);
    ws.on('message', (d) => onFrame(JSON.parse(d)));
    c.send = (f) => ws.send(JSON.stringify(f));
    c.close = () => ws.close();
  } else {
    const s = io(url, { transports: ['websocket'], query: { token: tok } });
    s.onAny((ev, f) => onFrame(f));
    c.send = (f) => s.emit(f.type, f);
    c.close = () => s.close();
  }
  return c;
}

const api = (path, opts = {}) => fetch(urls[0] + path, { ...opts, headers: { 'content-type': 'application/json', ...opts.headers } });
const bearer = { authorization: `Bearer ${token('bot', 'bot')}` };

(async () => {
  const cs = [0, 1, 2].map(client);
  await until(() => cs.every((c) => c.frames.some((f) => f.type === 'welcome')), 'welcome');
  cs.forEach((c) => c.send({ type: 'join', room: 'r1' }));
  await until(() => cs.every((c) => c.frames.some((f) => f.type === 'joined')), 'joined');
  const base = Math.max(...cs.map((c) => c.frames.find((f) => f.type === 'joined').last_seq));
  const t0 = Date.now();
  for (let k = 0; k < 50; k++) for (const i of [0, 1]) cs[i].send({ type: 'send', room: 'r1', body: `m${i}-${k}`, client_msg_id: `${t0}-${i}-${k}` });
  await until(() => cs.every((c) => c.msgs.length >= 100) && cs[0].acks.length === 50 && cs[1].acks.length === 50, '100 events + acks');
  console.log(`100 sends fanned out to 3 clients in ${Date.now() - t0} ms`);
  const want = Array.from({ length: 100 }, (_, k) => base + 1 + k);
  for (const c of cs) assert.deepStrictEqual(c.msgs.map((m) => m.seq), want);
  cs[0].send({ type: 'send', room: 'r1', body: 'again', client_msg_id: `${t0}-0-0` }); // repeat: ack only
  cs[2].send({ type: 'send', room: 'nope', body: 'x', client_msg_id: 'z' });
  cs[2].send({ type: 'ping' });
  await until(() => cs[0].acks.length === 51 && cs[2].frames.some((f) => f.type === 'pong') && cs[2].frames.some((f) => f.error_code === 'forbidden'), 'repeat ack, pong, forbidden');
  assert.strictEqual(cs[0].acks[50].seq, cs[0].msgs.find((m) => m.client_msg_id === `${t0}-0-0`).seq);
  const h = await (await api(`/api/rooms/r1/messages?after=${base}&limit=200`, { headers: bearer })).json();
  assert.deepStrictEqual(h.events.map((e) => e.seq), want);
  assert.strictEqual((await api('/api/rooms/r1/messages')).status, 401);
  assert.strictEqual((await api('/api/rooms/no-such-room/messages', { headers: bearer })).status, 404);
  const r = await api('/api/rooms/r1/messages', { method: 'POST', headers: bearer, body: JSON.stringify({ body: 'from bot' }) });
  assert.strictEqual(r.status, 201);
  assert.strictEqual((await r.json()).seq, base + 101);
  await until(() => cs.every((c) => c.msgs.length === 101), 'bot broadcast');
  await new Promise((res) => setTimeout(res, 200)); // nothing extra may arrive (the repeat must not be broadcast)
  for (const c of cs) assert.deepStrictEqual(c.msgs.map((m) => m.seq), [...want, base + 101]);
  console.log(`OK ${kind} ${urls.join(' ')}: seqs ${base + 1}..${base + 101} in order on all clients`);
  cs.forEach((c) => c.close());
  process.exit(0);
})().catch((err) => { console.error('FAIL', err.message); process.exit(1); });
