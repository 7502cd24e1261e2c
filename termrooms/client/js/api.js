// HTTP: the session (access token in memory only; the refresh token is an httpOnly
// cookie this script never sees) and the REST routes the client uses.

const CSRF_COOKIE = "termrooms_csrf";
export const TASK_PAGE = 200; // the most one page of tasks holds

export class ApiError extends Error {
  constructor(status, body, retryAfter = null) {
    super(body?.detail ?? `HTTP ${status}`);
    this.status = status;
    this.errorCode = body?.error_code ?? (status === 0 ? "network" : "unknown");
    this.detail = this.message;
    this.retryAfter = retryAfter;
  }

  /** The server or the network is away for now; worth trying again later. */
  get transient() {
    return this.status === 0 || this.status === 502 || this.status === 503 || this.status === 504;
  }
}

function readCookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...value] = part.trim().split("=");
    if (key === name) return decodeURIComponent(value.join("="));
  }
  return null;
}

async function call(method, path, { body, token, headers = {} } = {}) {
  const init = { method, headers: { ...headers }, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (token) init.headers.authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, { detail: "The server cannot be reached." });
  }
  if (response.status === 204) return null;
  if (response.ok && response.headers.get("content-type")?.startsWith("text/")) return response.text(); // a retro's summary
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = { detail: `The server answered ${response.status}.` };
  }
  if (!response.ok) {
    throw new ApiError(response.status, data, Number(response.headers.get("retry-after")) || null);
  }
  return data;
}

/**
 * Who is signed in. The access token lives only in this object; renewing it goes through
 * the refresh cookie, one tab at a time (navigator.locks), because refresh tokens rotate
 * and two tabs spending the same one at once would revoke the session.
 */
export class Session {
  constructor() {
    this.user = null;
    this.accessToken = null;
    this.expiresAt = 0;
    this.listeners = new Set();
  }

  /** A browser session may exist: the CSRF cookie that comes with the refresh cookie. */
  get resumable() {
    return readCookie(CSRF_COOKIE) !== null;
  }

  onChange(listener) {
    this.listeners.add(listener);
  }

  adopt(answer) {
    this.user = answer.user;
    this.accessToken = answer.access_token;
    this.expiresAt = Date.now() + answer.expires_in * 1000;
    this.expiresIn = answer.expires_in;
    for (const listener of this.listeners) listener(this);
  }

  async login(username, password) {
    this.adopt(await call("POST", "/api/auth/login", { body: { username, password, refresh_cookie: true } }));
  }

  async register(username, password, inviteCode) {
    const body = { username, password, refresh_cookie: true };
    if (inviteCode) body.invite_code = inviteCode;
    this.adopt(await call("POST", "/api/auth/register", { body }));
  }

  /** A new access token from the refresh cookie; ApiError 401/403 means signed out. */
  async refresh() {
    const renew = async () => {
      const csrf = readCookie(CSRF_COOKIE);
      if (csrf === null) throw new ApiError(401, { error_code: "unauthorized", detail: "Not signed in." });
      this.adopt(await call("POST", "/api/auth/refresh", { body: {}, headers: { "x-csrf-token": csrf } }));
    };
    if (navigator.locks) await navigator.locks.request("termrooms-refresh", renew);
    else await renew();
  }

  async logout() {
    try {
      if (this.accessToken) await call("POST", "/api/auth/logout", { token: this.accessToken });
    } finally {
      this.user = null;
      this.accessToken = null;
    }
  }

  /** An authenticated call; an expired access token is renewed once and the call retried. */
  async request(method, path, body) {
    try {
      return await call(method, path, { body, token: this.accessToken });
    } catch (error) {
      if (error.status !== 401 || error.errorCode !== "token_expired") throw error;
    }
    await this.refresh();
    return call(method, path, { body, token: this.accessToken });
  }

  rooms() {
    return this.request("GET", "/api/rooms");
  }

  members(room) {
    return this.request("GET", `/api/rooms/${encodeURIComponent(room)}/members`);
  }

  /** A page of history: {events, has_more}, oldest first. */
  history(room, { before, after, limit = 50 } = {}) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (before !== undefined) query.set("before", String(before));
    if (after !== undefined) query.set("after", String(after));
    return this.request("GET", `/api/rooms/${encodeURIComponent(room)}/messages?${query}`);
  }

  /** A room's tasks, or without a room the caller's: {tasks, has_more}, oldest first. */
  tasks(room = null) {
    const query = new URLSearchParams({ limit: String(TASK_PAGE) });
    if (room !== null) query.set("room", room);
    return this.request("GET", `/api/tasks?${query}`);
  }

  /** {title, room?, assignee?}: a room task, or without a room a personal one. */
  createTask(fields) {
    return this.request("POST", "/api/tasks", fields);
  }

  updateTask(id, changes) {
    return this.request("PATCH", `/api/tasks/${encodeURIComponent(id)}`, changes);
  }

  /** GET /api/search: {results: [{room, event, snippet}], has_more}, newest first. */
  search(q, { before } = {}) {
    const query = new URLSearchParams({ q, limit: "20" });
    if (before !== undefined) query.set("before", String(before));
    return this.request("GET", `/api/search?${query}`);
  }

  /** One poll with its results and the caller's choices (`mine`). */
  poll(room, id) {
    return this.request("GET", `/api/rooms/${encodeURIComponent(room)}/polls/${encodeURIComponent(id)}`);
  }

  /** Replaces the caller's choices (option indexes from 0; [] withdraws): the poll. */
  vote(room, id, choices) {
    return this.request("POST", `/api/rooms/${encodeURIComponent(room)}/polls/${encodeURIComponent(id)}/vote`, { choices });
  }

  // A room's retros: `retroPath` is where the board and its parts live.

  retroPath(room, id, part = "") {
    return `/api/rooms/${encodeURIComponent(room)}/retros/${encodeURIComponent(id)}${part}`;
  }

  /** {retros: [board], has_more}, newest first: `limit` 1 finds the room's latest. */
  retros(room, limit = 1) {
    return this.request("GET", `/api/rooms/${encodeURIComponent(room)}/retros?limit=${limit}`);
  }

  /** {title?, columns?, votes_per_participant?, anonymous?}: the new retro's board. */
  startRetro(room, fields) {
    return this.request("POST", `/api/rooms/${encodeURIComponent(room)}/retros`, fields);
  }

  /** The board as the caller may see it. */
  retro(room, id) {
    return this.request("GET", this.retroPath(room, id));
  }

  /** The retro as Markdown, showing what the caller's board shows. */
  retroSummary(room, id) {
    return this.request("GET", this.retroPath(room, id, "/summary"));
  }

  /** A POST, PATCH or DELETE on a part of the board (`part` starts with "/"). */
  retroChange(method, room, id, part, body) {
    return this.request(method, this.retroPath(room, id, part), body);
  }
}
