'use strict';
/*
 * The load generator of bench/compare.py: one process, pinned away from the servers'
 * core, driving termrooms and both peers with the same frames. The job is a JSON file
 * named by argv[2]; progress lines and the result are JSON lines on stdout. It counts every
 * room event each socket receives, so lost, duplicated and out-of-order deliveries are
 * known exactly, and reports its own CPU so a run where it, not the server, was the
 * limit can be told apart.
 *
 * Modes: register (termrooms accounts and rooms), idle (S1), connect (S2), fanout
 * (S3, S4), persist (S5), http (S7).
 */

const http = require('http');
const WebSocket = require('ws');
const { io } = require('socket.io-client');

const job = JSON.parse(require('fs').readFileSync(process.argv[2], 'utf8'));
// client_msg_ids differ between runs on one database: a repeat is only acked again
const run = Date.now().toString(36);
const now = () => performance.now();

function emit(line) {
  process.stdout.write(JSON.stringify(line) + '\n');
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------- sockets

/*
 * A socket of either kind: `send(frame)`, `close()`, `buffered()`; every frame it
 * receives goes to `onFrame`. Resolves once the server's welcome arrived.
 */
function connect(base, token, onFrame, onClose) {
  return new Promise((resolve, reject) => {
    if (job.protocol === 'socketio') {
      const socket = io(base, {
        transports: ['websocket'],
        query: { token },
        forceNew: true,
        reconnection: false,
        timeout: 20000,
      });
      const client = {
        send: (frame) => socket.emit(frame.type, frame),
        close: () => socket.disconnect(),
        buffered: () => (socket.io.engine && socket.io.engine.transport.ws
          ? socket.io.engine.transport.ws.bufferedAmount : 0),
      };
      socket.on('connect_error', (error) => reject(error));
      socket.on('disconnect', (reason) => onClose && onClose(reason));
      socket.onAny((type, frame) => {
        if (type === 'welcome') resolve(client);
        else onFrame(frame);
      });
      return;
    }
    const url = base.replace(/^http/, 'ws') + '/ws?token=' + encodeURIComponent(token);
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 20000 });
    const client = {
      send: (frame) => ws.send(JSON.stringify(frame)),
      close: () => ws.close(),
      buffered: () => ws.bufferedAmount,
    };
    let welcomed = false;
    ws.on('message', (data) => {
      const frame = JSON.parse(data);
      if (!welcomed && frame.type === 'welcome') {
        welcomed = true;
        resolve(client);
      } else {
        onFrame(frame);
      }
    });
    ws.on('error', (error) => { if (!welcomed) reject(error); });
    ws.on('close', (code) => { if (!welcomed) reject(new Error('closed ' + code)); else if (onClose) onClose(code); });
  });
}

/* Run `task(i)` for i in [0, n) with at most `width` at once. */
async function pooled(n, width, task) {
  let next = 0;
  const results = new Array(n);
  async function worker() {
    while (next < n) {
      const i = next++;
      results[i] = await task(i);
    }
  }
  await Promise.all(Array.from({ length: Math.min(width, n) }, worker));
  return results;
}

// ---------------------------------------------------------------- ledger

/*
 * What one socket received of one room: a bitmap of seqs after the one it joined at,
 * so duplicates, gaps and disorder are exact.
 */
class Ledger {
  constructor(joinedSeq) {
    this.base = joinedSeq + 1;
    this.bits = new Uint8Array(1024);
    this.highest = joinedSeq;
    this.unique = 0;
    this.duplicates = 0;
    this.disorder = 0;
  }

  receive(seq) {
    const i = seq - this.base;
    if (i < 0) { this.duplicates++; return; }
    if (i >= this.bits.length) {
      let size = this.bits.length * 2;
      while (size <= i) size *= 2;
      const grown = new Uint8Array(size);
      grown.set(this.bits);
      this.bits = grown;
    }
    if (this.bits[i]) { this.duplicates++; return; }
    this.bits[i] = 1;
    this.unique++;
    if (seq < this.highest) this.disorder++;
    else this.highest = seq;
  }

  /* Seqs up to `last` (every one the room stored after the join) never received. */
  lost(last) {
    return Math.max(0, last - this.base + 1 - this.unique);
  }
}

/* Latencies (ms) of one step, and their percentiles. */
class Samples {
  constructor() { this.values = new Float64Array(1 << 16); this.n = 0; }
  add(v) {
    if (this.n === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.n++] = v;
  }
  summary() {
    const sorted = this.values.subarray(0, this.n).sort();
    const at = (q) => (this.n ? sorted[Math.min(this.n - 1, Math.floor(q * this.n))] : null);
    const round = (v) => (v === null ? null : Math.round(v * 100) / 100);
    return { count: this.n, p50_ms: round(at(0.5)), p95_ms: round(at(0.95)), p99_ms: round(at(0.99)), max_ms: round(this.n ? sorted[this.n - 1] : null) };
  }
}

function cpuMeter() {
  const start = process.cpuUsage();
  const t0 = now();
  return () => {
    const used = process.cpuUsage(start);
    return (used.user + used.system) / 1000 / (now() - t0);
  };
}

// ---------------------------------------------------------------- rooms and senders

/*
 * Sockets joined to rooms, every received room event entered in its ledger. `sentAt`
 * maps client_msg_id to the send time, so each delivery of a message has a latency.
 */
class Room {
  constructor(name) {
    this.name = name;
    this.sentAt = new Map();
    this.lastAcked = 0;
    this.acks = 0;
    this.refused = 0;
    this.deliveries = 0;      // message events received by counted sockets
    this.latencies = new Samples();
    this.ackLatencies = new Samples();
    this.stepStartedAt = 0;
    this.members = [];        // {ledger, counted}
  }
}

async function joinAll(specs) {
  // specs: [{base, token, room, counted}]
  const closed = [];
  return pooled(specs.length, 50, async (i) => {
    const spec = specs[i];
    const room = spec.room;
    const member = { ledger: null, counted: spec.counted, client: null, closed: null, answered: 0 };
    let joined;
    const joinedPromise = new Promise((resolve) => { joined = resolve; });
    member.client = await connect(spec.base, spec.token, (frame) => {
      const type = frame.type;
      if (type === 'message') {
        member.ledger.receive(frame.seq);
        if (member.counted) {
          room.deliveries++;
          const sent = room.sentAt.get(frame.client_msg_id);
          if (sent !== undefined) room.latencies.add(now() - sent);
        }
      } else if (type === 'ack') {
        room.acks++;
        member.answered++;
        if (frame.seq > room.lastAcked) room.lastAcked = frame.seq;
        const sent = room.sentAt.get(frame.client_msg_id);
        if (sent !== undefined) room.ackLatencies.add(now() - sent);
      } else if (type === 'joined') {
        member.ledger = new Ledger(frame.last_seq);
        joined();
      } else if (frame.seq !== undefined && member.ledger) {
        member.ledger.receive(frame.seq);  // another stored event: member_joined...
      } else if (type === 'error') {
        // A refused send (503 unavailable under overload) is answered, not lost: the
        // client would send it again later. Counted apart from acks.
        if (frame.ref !== undefined && room.sentAt.has(frame.ref)) { room.refused++; member.answered++; }
        else emit({ event: 'error', frame });
      }
    }, (why) => { member.closed = String(why); closed.push(why); });
    member.client.send({ type: 'join', room: room.name });
    await joinedPromise;
    room.members.push(member);
    return member;
  });
}

/*
 * Senders that together offer `rate` messages/s to their rooms, open loop: what falls
 * due every tick is sent, whether or not the server kept up.
 */
function offer(senders, rate, seconds, tag) {
  // As a real client does, a sender keeps at most job.window messages unanswered: what
  // falls due beyond that is held back (counted), not piled up in the server's socket.
  const inFlight = (sender) => sender.unanswered - sender.member.answered;
  let held = 0;
  const perSender = rate / senders.length;
  const counts = new Array(senders.length).fill(0);
  const t0 = now();
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      const elapsed = (now() - t0) / 1000;
      const until = Math.min(elapsed, seconds);
      for (let i = 0; i < senders.length; i++) {
        const { client, room } = senders[i];
        const due = Math.floor(until * perSender) - counts[i];
        for (let k = 0; k < due; k++) {
          const id = `${run}.${tag}.${i}.${counts[i]++}`;
          if (inFlight(senders[i]) >= job.window) { held++; continue; }
          senders[i].unanswered++;
          room.sentAt.set(id, now());
          client.send({ type: 'send', room: room.name, body: job.body, client_msg_id: id });
        }
      }
      if (elapsed >= seconds) {
        clearInterval(timer);
        resolve({ sent: counts.reduce((a, b) => a + b, 0) - held, held });
      }
    }, 5);
  });
}

/*
 * Wait until every socket of `rooms` received every event acked so far: past saturation
 * the server works through a backlog, so give up only after `seconds` without progress.
 */
async function drain(rooms, expectedAcks, seconds) {
  let progress = -1;
  let lastProgressAt = now();
  for (;;) {
    const acked = rooms.reduce((n, r) => n + r.acks + r.refused, 0);
    const done = acked >= expectedAcks && rooms.every(
      (r) => r.members.every((m) => m.closed || m.ledger.lost(r.lastAcked) === 0));
    if (done) return;
    const seen = acked + rooms.reduce((n, r) => n + r.members.reduce((k, m) => k + m.ledger.unique, 0), 0);
    if (seen !== progress) {
      progress = seen;
      lastProgressAt = now();
    } else if (now() - lastProgressAt > seconds * 1000) {
      return;
    }
    await sleep(20);
  }
}

/* Every message sent but never acknowledged, every event a socket missed, got twice or
 * got after a later one, and every socket the server closed under load. */
function integrity(rooms, sent) {
  let lost = 0, duplicates = 0, disorder = 0, closed = 0;
  const refused = rooms.reduce((n, r) => n + r.refused, 0);
  const unacked = sent - refused - rooms.reduce((n, r) => n + r.acks, 0);
  for (const room of rooms) {
    for (const m of room.members) {
      lost += m.ledger.lost(room.lastAcked);
      duplicates += m.ledger.duplicates;
      disorder += m.ledger.disorder;
      if (m.closed) closed++;
    }
  }
  return { refused, unacked, lost, duplicates, disorder, closed };
}

// ---------------------------------------------------------------- modes

async function fanout() {
  // S3/S4: one room; subscribers spread over job.urls, senders on the first.
  const room = new Room(job.room);
  const specs = [];
  for (let i = 0; i < job.subscribers; i++) {
    specs.push({ base: job.urls[i % job.urls.length], token: job.tokens[i], room, counted: true });
  }
  for (let i = 0; i < job.senders; i++) {
    specs.push({ base: job.urls[0], token: job.tokens[job.subscribers + i], room, counted: false });
  }
  const members = await joinAll(specs);
  const senders = members.slice(job.subscribers).map((m) => ({ client: m.client, room, member: m, unanswered: 0 }));
  emit({ event: 'joined', sockets: members.length });
  const steps = [];
  let sentSoFar = 0;
  for (const [index, offered] of job.rates.entries()) {
    const rate = offered / job.subscribers;  // messages/s so that `offered` deliveries/s
    room.latencies = new Samples();
    room.ackLatencies = new Samples();
    const before = room.deliveries;
    const acksBefore = room.acks;
    emit({ event: 'step', phase: 'start', offered });
    const cpu = cpuMeter();
    const t0 = now();
    const sending = await offer(senders, rate, job.step_s, `s${index}`);
    sentSoFar += sending.sent;
    const inWindow = room.deliveries - before;
    const acksInWindow = room.acks - acksBefore;
    const window = (now() - t0) / 1000;
    const loadgenCpu = cpu();
    emit({ event: 'step', phase: 'end', offered });
    await drain([room], sentSoFar, job.drain_s);
    steps.push({
      offered_deliveries_per_s: offered,
      achieved_deliveries_per_s: Math.round(inWindow / window),
      held_back: sending.held,
      acked_per_s: Math.round(acksInWindow / window),
      latency: room.latencies.summary(),
      loadgen_cpu: Math.round(loadgenCpu * 100) / 100,
      ...integrity([room], sentSoFar),
    });
  }
  return { steps };
}

async function persist() {
  // S5: job.rooms rooms, one sender each, acks per second at rising rates.
  const rooms = job.tokens.slice(0, job.rooms).map((_, i) => new Room(`${job.room}${i}`));
  const members = await joinAll(rooms.map((room, i) => ({ base: job.urls[0], token: job.tokens[i], room, counted: true })));
  const senders = members.map((m, i) => ({ client: m.client, room: rooms[i], member: m, unanswered: 0 }));
  emit({ event: 'joined', sockets: members.length });
  const steps = [];
  let sentSoFar = 0;
  for (const [index, rate] of job.rates.entries()) {
    const ackLatencies = new Samples();
    for (const room of rooms) room.ackLatencies = ackLatencies;
    const acksBefore = rooms.reduce((n, r) => n + r.acks, 0);
    emit({ event: 'step', phase: 'start', offered: rate });
    const cpu = cpuMeter();
    const t0 = now();
    const sending = await offer(senders, rate, job.step_s, `p${index}`);
    sentSoFar += sending.sent;
    const acksInWindow = rooms.reduce((n, r) => n + r.acks, 0) - acksBefore;
    const window = (now() - t0) / 1000;
    const loadgenCpu = cpu();
    emit({ event: 'step', phase: 'end', offered: rate });
    await drain(rooms, sentSoFar, job.drain_s);
    steps.push({
      offered_per_s: rate,
      acked_per_s: Math.round(acksInWindow / window),
      held_back: sending.held,
      ack_latency: ackLatencies.summary(),
      loadgen_cpu: Math.round(loadgenCpu * 100) / 100,
      ...integrity(rooms, sentSoFar),
    });
  }
  return { steps };
}

async function idle() {
  // S1: job.count sockets held open while the orchestrator reads the server's RSS.
  const clients = await pooled(job.count, 100, (i) => connect(job.urls[0], job.tokens[i % job.tokens.length], () => {}));
  emit({ event: 'ready', open: clients.length });
  await new Promise((resolve) => process.stdin.once('data', resolve));
  for (const client of clients) client.close();
  return { open: clients.length };
}

async function connectStorm() {
  // S2: `job.concurrency` workers connect, wait for the welcome, close, again.
  const latencies = new Samples();
  let done = 0, failed = 0, i = 0;
  const cpu = cpuMeter();
  const t0 = now();
  const deadline = t0 + job.seconds * 1000;
  await Promise.all(Array.from({ length: job.concurrency }, async () => {
    while (now() < deadline) {
      const started = now();
      try {
        const client = await connect(job.urls[0], job.tokens[i++ % job.tokens.length], () => {});
        latencies.add(now() - started);
        done++;
        client.close();
      } catch (error) {
        failed++;
        await sleep(10);
      }
    }
  }));
  const seconds = (now() - t0) / 1000;
  return { connects_per_s: Math.round(done / seconds), failed, latency: latencies.summary(), loadgen_cpu: Math.round(cpu() * 100) / 100 };
}

async function httpLoad() {
  // S7: open-loop requests at each rate; history reads or bot posts.
  const agent = new http.Agent({ keepAlive: true, maxSockets: job.sockets });
  const target = new URL(job.urls[0]);
  const steps = [];
  let serial = 0;
  for (const rate of job.rates) {
    const latencies = new Samples();
    let ok = 0, failed = 0, inFlight = 0, issued = 0;
    const statuses = {};
    emit({ event: 'step', phase: 'start', offered: rate });
    const cpu = cpuMeter();
    const t0 = now();
    const request = () => {
      const token = job.tokens[serial % job.tokens.length];
      const post = job.kind === 'post';
      const body = post ? JSON.stringify({ body: job.body, client_msg_id: `${run}.h${serial}` }) : null;
      serial++;
      const started = now();
      inFlight++;
      const req = http.request({
        host: target.hostname, port: target.port, agent,
        method: post ? 'POST' : 'GET',
        path: `/api/rooms/${job.room}/messages` + (post ? '' : '?limit=50'),
        headers: { Authorization: `Bearer ${token}`, ...(post ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } : {}) },
      }, (res) => {
        res.resume();
        res.on('end', () => {
          inFlight--;
          latencies.add(now() - started);
          statuses[res.statusCode] = (statuses[res.statusCode] || 0) + 1;
          if (res.statusCode === (post ? 201 : 200)) ok++; else failed++;
        });
      });
      req.on('error', () => { inFlight--; failed++; });
      if (body) req.end(body); else req.end();
    };
    await new Promise((resolve) => {
      const timer = setInterval(() => {
        const elapsed = Math.min((now() - t0) / 1000, job.step_s);
        const due = Math.floor(elapsed * rate) - issued;
        for (let k = 0; k < due; k++) { issued++; request(); }
        if (elapsed >= job.step_s) { clearInterval(timer); resolve(); }
      }, 2);
    });
    while (inFlight > 0 && now() - t0 < (job.step_s + job.drain_s) * 1000) await sleep(10);
    const seconds = (now() - t0) / 1000;
    emit({ event: 'step', phase: 'end', offered: rate });
    steps.push({ offered_per_s: rate, achieved_per_s: Math.round(ok / seconds), failed, unanswered: inFlight, statuses, latency: latencies.summary(), loadgen_cpu: Math.round(cpu() * 100) / 100 });
  }
  agent.destroy();
  return { steps };
}

function api(method, base, path, token, body) {
  return new Promise((resolve, reject) => {
    const target = new URL(base);
    const data = body === undefined ? null : JSON.stringify(body);
    const req = http.request({
      host: target.hostname, port: target.port, method, path,
      headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...(data ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) } : {}) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { text += chunk; });
      res.on('end', () => resolve({ status: res.statusCode, body: text ? JSON.parse(text) : null }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

async function register() {
  // termrooms accounts (open registration) and rooms every account is a member of.
  const base = job.urls[0];
  const tokens = await pooled(job.count, job.concurrency, async (i) => {
    const response = await api('POST', base, '/api/auth/register', null, { username: `${job.prefix}${i}`, password: 'bench-password-1' });
    if (response.status !== 201) throw new Error(`register ${i}: ${response.status} ${JSON.stringify(response.body)}`);
    return response.body.access_token;
  });
  for (const name of job.rooms) {
    const response = await api('POST', base, '/api/rooms', tokens[0], { name, visibility: 'public' });
    if (response.status !== 201) throw new Error(`room ${name}: ${response.status}`);
  }
  for (const name of job.members_of) {
    await pooled(tokens.length, job.concurrency, (i) => api('POST', base, `/api/rooms/${name}/join`, tokens[i]));
  }
  return { tokens };
}

const modes = { register, idle, connect: connectStorm, fanout, persist, http: httpLoad };

modes[job.mode]().then((result) => {
  // exit only once the (possibly large) line is written: stdout to a pipe is async
  process.stdout.write(JSON.stringify({ event: 'result', ...result }) + '\n', () => process.exit(0));
}, (error) => {
  emit({ event: 'failed', error: String(error && error.stack || error) });
  process.exit(1);
});
