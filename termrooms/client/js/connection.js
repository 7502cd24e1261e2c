// The WebSocket: connect with the access token, keep it alive, pace what is sent, and
// come back after every kind of disconnect. What to resend is the app's business: on
// every `welcome` it rejoins its rooms with `since` and resends what is unacked.

import { Backoff, closeAction } from "./backoff.js";

const SEND_RATE_PER_S = 8; // under the server's 10 frames/s (bursts of 20) per connection
const SEND_BURST = 16;
const REFRESH_MARGIN_MS = 30_000; // renew before connecting when the token is this close to expiry

export class Connection {
  /**
   * `session` gives and renews the token; `onFrame(frame)` gets every frame;
   * `onState({state, retryAt, detail})` hears "connecting", "open", "waiting" and
   * "stopped"; `onSignedOut(error)` is told when the session can no longer be renewed.
   */
  constructor({ session, onFrame, onState, onSignedOut, backoff = new Backoff() }) {
    this.session = session;
    this.onFrame = onFrame;
    this.onState = onState;
    this.onSignedOut = onSignedOut;
    this.backoff = backoff;
    this.socket = null;
    this.welcomed = false;
    this.stopped = true;
    this.refreshFirst = false;
    this.failedHandshakes = 0;
    this.retryTimer = null;
    this.heartbeatTimer = null;
    this.lastHeard = 0;
    this.queue = [];
    this.tokens = SEND_BURST;
    this.tokensAt = 0;
    this.flushTimer = null;
  }

  get open() {
    return this.welcomed && this.socket !== null && this.socket.readyState === WebSocket.OPEN;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.drop(1000);
    this.onState({ state: "stopped" });
  }

  /** Skip the rest of the wait (the "retry now" key). */
  retryNow() {
    if (this.stopped || this.socket !== null) return;
    clearTimeout(this.retryTimer);
    this.connect();
  }

  /** Queue a frame for the open socket; false (nothing queued) while not connected. */
  send(frame) {
    if (!this.open) return false;
    this.queue.push(JSON.stringify(frame));
    this.flush();
    return true;
  }

  async connect() {
    this.retryTimer = null;
    this.onState({ state: "connecting" });
    const expiring = this.session.expiresAt - Date.now() < REFRESH_MARGIN_MS;
    if (this.refreshFirst || expiring || !this.session.accessToken) {
      try {
        await this.session.refresh();
        this.refreshFirst = false;
      } catch (error) {
        if (this.stopped) return;
        if (!error.transient) {
          this.stopped = true;
          this.onSignedOut(error);
          return;
        }
        this.wait(this.backoff.next(), error.detail);
        return;
      }
    }
    if (this.stopped) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const url = `${scheme}://${location.host}/ws?token=${encodeURIComponent(this.session.accessToken)}`;
    const socket = new WebSocket(url);
    this.socket = socket;
    this.welcomed = false;
    socket.onmessage = (message) => this.received(socket, message);
    socket.onclose = (event) => this.closed(socket, event.code);
  }

  received(socket, message) {
    if (socket !== this.socket) return;
    this.lastHeard = Date.now();
    let frame;
    try {
      frame = JSON.parse(message.data);
    } catch {
      return;
    }
    if (frame.type === "welcome") {
      this.welcomed = true;
      this.failedHandshakes = 0;
      this.backoff.reset();
      this.tokens = SEND_BURST;
      this.startHeartbeat(frame.heartbeat_s ?? 25);
      this.onState({ state: "open" });
    }
    this.onFrame(frame);
  }

  closed(socket, code) {
    if (socket !== this.socket) return;
    const wasWelcomed = this.welcomed;
    this.detach();
    if (this.stopped) return;
    if (!wasWelcomed) {
      // A refused handshake (401 for a revoked or expired token) looks like 1006 to a
      // page: after two in a row, renew the token before the next try.
      this.failedHandshakes += 1;
      if (this.failedHandshakes >= 2) this.refreshFirst = true;
    }
    const action = closeAction(code);
    if (action === "refresh") this.refreshFirst = true;
    if (action === "backoff" || (!wasWelcomed && this.failedHandshakes > 1)) {
      this.wait(this.backoff.next(), null);
    } else {
      this.connect();
    }
  }

  wait(delayMs, detail) {
    const retryAt = Date.now() + delayMs;
    this.onState({ state: "waiting", retryAt, detail });
    this.retryTimer = setTimeout(() => this.connect(), delayMs);
  }

  /** Ping when quiet; a socket that stays silent for two heartbeats is dead (no close comes). */
  startHeartbeat(seconds) {
    clearInterval(this.heartbeatTimer);
    const periodMs = Math.max(5, seconds) * 1000;
    this.heartbeatTimer = setInterval(() => {
      if (Date.now() - this.lastHeard > 2 * periodMs) {
        this.drop(4000);
        this.wait(this.backoff.next(), "the connection went quiet");
        return;
      }
      this.send({ type: "ping" });
    }, periodMs);
  }

  flush() {
    clearTimeout(this.flushTimer);
    this.flushTimer = null;
    const now = Date.now();
    this.tokens = Math.min(SEND_BURST, this.tokens + ((now - this.tokensAt) / 1000) * SEND_RATE_PER_S);
    this.tokensAt = now;
    while (this.queue.length && this.tokens >= 1 && this.open) {
      this.socket.send(this.queue.shift());
      this.tokens -= 1;
    }
    if (this.queue.length) {
      const waitMs = ((1 - this.tokens) / SEND_RATE_PER_S) * 1000;
      this.flushTimer = setTimeout(() => this.flush(), Math.max(10, waitMs));
    }
  }

  drop(code) {
    const socket = this.socket;
    this.detach();
    if (socket) {
      try {
        socket.close(code);
      } catch {
        socket.close();
      }
    }
  }

  detach() {
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.flushTimer);
    this.heartbeatTimer = null;
    this.flushTimer = null;
    this.queue = [];
    this.welcomed = false;
    if (this.socket) {
      this.socket.onclose = null;
      this.socket.onmessage = null;
    }
    this.socket = null;
  }
}
