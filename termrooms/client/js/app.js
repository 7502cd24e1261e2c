// The chat screen: rooms, their timelines, participants, the input line, and the
// bookkeeping that makes every message arrive exactly once across disconnects.

import { Connection } from "./connection.js";
import { renewDelayMs } from "./backoff.js";
import { Completer, COMMANDS } from "./completion.js";
import { bodyNode, el } from "./dom.js";
import { InputHistory } from "./inputhistory.js";
import { applyEdit, editFrame, lastOwnMessage } from "./edits.js";
import { noticeActions, noticeText } from "./notices.js";
import { Outbox } from "./outbox.js";
import { PollBoard } from "./pollchart.js";
import { RetroBoard } from "./retroboard.js";
import { groupRooms, isDirect, listOrder, roomLabel } from "./roomlist.js";
import { snippetParts } from "./snippet.js";
import { TaskPanel } from "./taskpanel.js";
import { Timeline } from "./timeline.js";
import { clockTime, dayTime, nickColour, roleSigil, sortMembers, systemText } from "./text.js";

const PAGE = 50;
const TYPING_SEND_EVERY_MS = 2000; // the server passes one on per 2 s anyway
const TYPING_SHOWN_MS = 4000;
const READ_MARKER_EVERY_MS = 1000;
const ROOM_KEY = "termrooms.room";
const REMOVING_EVENTS = new Set(["member_left", "member_kicked", "member_banned"]);
const TASK_EVENTS = new Set(["task_created", "task_updated", "task_deleted"]);
const POLL_EVENTS = new Set(["poll_created", "poll_closed"]);
const FOUND_SHOWN_MS = 2500; // how long a message jumped to from search stays marked
const PANELS = ["rooms", "members", "tasks", "retro", "search"];
const SIDE_PANELS = ["tasks", "retro"]; // beside the stream: they follow the room in view

const $ = (id) => document.getElementById(id);
const lower = (name) => String(name).toLowerCase();

class Room {
  constructor(name) {
    this.name = name;
    this.topic = "";
    this.peer = null; // a direct room's other member, once the room list names them
    this.unread = 0;
    this.notices = 0; // `notify` frames (a task assigned...) since the room was last in view
    this.timeline = new Timeline();
    this.hasMore = true;
    this.loadingOlder = false;
    this.members = null; // Map lower username -> member, once fetched
    this.membersLoading = false;
    this.membersStale = false; // a member event came while they were being fetched
    this.subscribed = false; // online is known from `joined` and presence frames
    this.online = new Set();
    this.typing = new Map(); // username -> until (ms)
    this.readSent = 0;
    this.readTimer = null;
    this.nodes = new Map(); // seq -> line node
    this.log = el("div", { className: "room-log", hidden: true });
    this.events = el("div", { className: "events" });
    this.pending = el("div", { className: "pending-lines" });
    this.log.append(this.events, this.pending);
  }
}

export class ChatApp {
  constructor(session, { onSignedOut }) {
    this.session = session;
    this.onSignedOut = onSignedOut;
    this.me = session.user;
    this.rooms = new Map();
    this.active = null;
    this.knownRooms = []; // every room name the user can see: for completion
    this.outbox = new Outbox(sessionStorage);
    this.pendingNodes = new Map(); // client_msg_id -> line node
    this.history = new InputHistory();
    this.completer = new Completer();
    this.typingSent = new Map();
    this.commandRefs = new Map(); // ref -> {line, switchTo}
    this.editing = null; // {room, id, body} while the input line edits a message of mine
    this.editRefs = new Map(); // ref of an edit frame -> its room's name
    this.nextRef = 1;
    this.switchTo = null; // "#room" a /join or "@user" a /msg asked for, lowercased: shown once joined
    this.searched = null; // {q, before}: the search whose results are listed, and where its next page starts
    this.revealing = null; // {room, event}: a search result in a room being joined, shown once loaded
    this.renewTimer = null;
    this.statusTimer = null;
    this.connection = new Connection({
      session,
      onFrame: (frame) => this.frame(frame),
      onState: (state) => this.showState(state),
      onSignedOut: (error) => this.signedOut(error),
    });
    this.tasks = new TaskPanel({
      session,
      isOpen: () => $("chat").classList.contains("show-tasks"),
      onError: (text) => this.systemLine(this.active, text, "error"),
    });
    this.retro = new RetroBoard({
      session,
      isOpen: () => $("chat").classList.contains("show-retro"),
      open: () => this.showPanel("retro"),
      canStart: () => this.maySteer(this.active),
      onError: (text) => this.systemLine(this.active, text, "error"),
    });
    this.polls = new PollBoard({
      session,
      onError: (room, text) => this.systemLine(this.rooms.get(lower(room)) ?? this.active, text, "error"),
    });
    this.renewListener = () => this.tokenRenewed();
    session.onChange(this.renewListener);
    this.listening = new AbortController(); // every DOM listener of this app goes with it
  }

  // ------------------------------------------------------------------ start and stop

  async start() {
    $("chat").hidden = false;
    this.bindKeys();
    this.renderAlertsToggle();
    this.scheduleRenewal();
    try {
      await this.loadRoomList();
    } catch (error) {
      this.systemLine(null, `could not list rooms: ${error.detail}`, "error");
    }
    for (const entry of this.outbox.pending()) {
      // A reload keeps what was pending, for the rooms the user still follows.
      if (this.rooms.has(lower(entry.room))) this.showPending(entry);
      else this.outbox.settle(entry.clientMsgId);
    }
    const wanted = localStorage.getItem(ROOM_KEY);
    const first = (wanted && this.rooms.get(lower(wanted))) || this.rooms.values().next().value;
    if (first) this.activate(first);
    else this.showLobby();
    this.connection.start();
    $("input").focus();
  }

  async loadRoomList() {
    const listed = await this.session.rooms();
    this.knownRooms = listed.map((room) => room.name);
    for (const room of listed) {
      if (room.unread !== undefined) this.follow(room); // else not a member: discoverable, not followed
    }
    this.renderRoomList();
  }

  /** A room of GET /api/rooms the user is a member of, with its counts. */
  follow(listed) {
    const state = this.roomFor(listed.name);
    state.topic = listed.topic;
    state.peer = listed.peer ?? null;
    state.unread = listed.unread;
    state.notices = listed.mentions ?? 0; // mentions after the read marker
    return state;
  }

  /**
   * The direct rooms of GET /api/rooms again: one someone else opened (their first
   * message's `notify`) is followed and joined; one a /msg opened learns its peer.
   */
  async learnDirectRooms() {
    let listed;
    try {
      listed = await this.session.rooms();
    } catch (error) {
      this.systemLine(this.active, `could not list rooms: ${error.detail}`, "error");
      return;
    }
    for (const room of listed) {
      if (room.unread === undefined || !isDirect(room.name)) continue;
      const known = this.rooms.get(lower(room.name));
      if (known) known.peer = room.peer;
      else {
        this.follow(room);
        this.connection.send({ type: "join", room: room.name });
      }
    }
    this.renderRoomList();
    this.renderHeader();
  }

  stop() {
    this.connection.stop();
    this.session.listeners.delete(this.renewListener);
    this.listening.abort();
    clearTimeout(this.renewTimer);
    clearInterval(this.statusTimer);
    $("chat").hidden = true;
    $("log").replaceChildren();
    $("room-list").replaceChildren();
    $("direct-list").replaceChildren();
    $("member-list").replaceChildren();
    $("task-list").replaceChildren();
    $("retro-board").replaceChildren();
    $("retro-summary").textContent = "";
    for (const id of ["retro-start-title", "retro-start-columns", "retro-action-title"]) $(id).value = "";
    $("search-results").replaceChildren();
    $("search-input").value = ""; // the next person to sign in here does not see it
  }

  signedOut(error) {
    this.stop();
    this.onSignedOut(error?.detail ?? "Signed out.");
  }

  async signOut() {
    this.stop();
    this.outbox.clear();
    try {
      await this.session.logout();
    } catch {
      // signed out locally either way; the server ends the session when it can
    }
    this.onSignedOut("Signed out.");
  }

  scheduleRenewal() {
    clearTimeout(this.renewTimer);
    this.renewTimer = setTimeout(async () => {
      try {
        await this.session.refresh();
      } catch (error) {
        if (!error.transient) this.signedOut(error);
        else this.renewTimer = setTimeout(() => this.scheduleRenewal(), 10_000);
      }
    }, renewDelayMs(this.session.expiresIn));
  }

  /** A new access token: renew the open socket with an `auth` frame, plan the next one. */
  tokenRenewed() {
    this.me = this.session.user;
    this.scheduleRenewal();
    this.connection.send({ type: "auth", token: this.session.accessToken });
  }

  // ------------------------------------------------------------------ frames

  frame(frame) {
    switch (frame.type) {
      case "welcome":
        return this.welcome(frame);
      case "joined":
        return this.joined(frame);
      case "ack":
        return this.acked(frame);
      case "reply":
        return this.replied(frame);
      case "typing":
        return this.typing(frame);
      case "presence":
        return this.presence(frame);
      case "error":
        return this.refused(frame);
      case "notify":
        return this.notified(frame);
      case "task":
        return this.tasks.changed(null);
      case "poll_update":
        return this.polls.update(frame.poll);
      case "retro_update":
        return this.retro.changed(frame.room, frame.retro);
      case "history_truncated": {
        const room = this.rooms.get(lower(frame.room));
        if (room) {
          room.hasMore = false;
          this.systemLine(room, `older messages were removed by retention; this room now starts at #${frame.oldest_seq}`);
        }
        return undefined;
      }
      case "pong":
      case "authed":
        return undefined;
      default:
        if (typeof frame.seq === "number") return this.roomEvent(frame);
        return undefined;
    }
  }

  /** Every (re)connect: rejoin each room after the last event held, then resend. */
  welcome(frame) {
    this.me = frame.user;
    for (const room of this.rooms.values()) {
      const since = room.timeline.last;
      this.connection.send(since > 0 ? { type: "join", room: room.name, since } : { type: "join", room: room.name });
    }
    for (const entry of this.outbox.pending()) this.sendPending(entry);
    this.tasks.reload(); // what changed while away
    this.polls.reload();
    this.retro.reconnected();
  }

  async joined(frame) {
    const room = this.roomFor(frame.room);
    room.name = frame.room;
    room.topic = frame.topic ?? "";
    room.online = new Set(frame.online.map(lower));
    room.subscribed = true;
    if (room.members) for (const member of room.members.values()) member.online = room.online.has(lower(member.username));
    this.renderRoomList();
    if (isDirect(room.name) && room.peer === null) await this.learnDirectRooms(); // opened by a /msg
    if (this.wanted(room) || this.active === null) {
      this.switchTo = null;
      this.activate(room);
    } else if (room === this.active) {
      this.renderHeader();
      this.renderMembers();
    }
    if (room.timeline.size === 0 && frame.last_seq > 0) {
      await this.loadOlder(room, frame.last_seq + 1); // what came before the live stream
    } else if (frame.last_seq === 0) {
      room.hasMore = false;
    }
    if (this.revealing?.room === lower(room.name)) {
      const { event } = this.revealing;
      this.revealing = null;
      await this.reveal(room, event);
    }
  }

  roomEvent(event) {
    const room = this.rooms.get(lower(event.room));
    if (!room) return;
    const fresh = this.insertEvent(room, event);
    if (!fresh) return;
    if (event.type === "message") {
      room.typing.delete(event.user);
      if (event.client_msg_id && this.outbox.settle(event.client_msg_id)) this.removePending(event.client_msg_id);
      if (lower(event.user ?? "") !== lower(this.me.username)) {
        if (room === this.active && !document.hidden) this.markRead(room);
        else room.unread += 1;
        this.renderRoomList();
      } else if (room === this.active) {
        this.markRead(room);
      }
      if (room === this.active) this.renderTyping();
    } else if (TASK_EVENTS.has(event.type)) {
      this.tasks.changed(room.name);
    } else if (event.type === "message_edited") {
      this.edited(room, event);
    } else if (event.type.startsWith("retro_")) {
      this.retro.event(room.name, event);
    } else if (!POLL_EVENTS.has(event.type)) {
      this.memberChange(room, event);
    }
    if (event.type === "message_deleted") this.markDeleted(room, event.target);
  }

  memberChange(room, event) {
    const subject = ["member_joined", "member_left"].includes(event.type) ? event.user : event.target;
    if (event.type === "topic_changed") {
      room.topic = event.topic;
      if (room === this.active) this.renderHeader();
    }
    if (room.membersLoading) room.membersStale = true;
    if (room.members && subject) {
      const key = lower(subject);
      if (event.type === "member_joined" && !room.members.has(key)) {
        room.members.set(key, { username: subject, display_name: subject, role: "member", online: room.online.has(key) });
      } else if (REMOVING_EVENTS.has(event.type)) {
        room.members.delete(key);
      } else if (event.type === "role_changed" && room.members.has(key)) {
        room.members.get(key).role = event.role;
      }
      if (room === this.active) this.renderMembers();
    }
    if (REMOVING_EVENTS.has(event.type) && subject && lower(subject) === lower(this.me.username)) {
      this.removeRoom(room, systemText(event));
    }
  }

  /** A notice for this user: mark its room, and tell a hidden tab through the browser. */
  async notified(frame) {
    if (frame.reason === "dm" && !this.rooms.has(lower(frame.room))) await this.learnDirectRooms(); // a first message
    const room = this.rooms.get(lower(frame.room));
    const permission = window.Notification?.permission ?? "denied";
    const { mark, notify } = noticeActions({ active: room !== undefined && room === this.active, hidden: document.hidden, permission });
    if (room && mark) {
      room.notices += 1;
      this.renderRoomList();
    }
    if (!notify) return;
    const { title, body, tag } = noticeText(frame);
    const shown = new Notification(title, { body, tag });
    shown.addEventListener("click", () => {
      window.focus();
      if (room && this.rooms.get(lower(room.name)) === room) this.activate(room);
    });
  }

  /** Stored: the line stays until its event arrives in order, then the event replaces it. */
  acked(frame) {
    const entry = this.outbox.get(frame.client_msg_id);
    if (!entry) return; // its event came first
    this.outbox.settle(entry.clientMsgId);
    const node = this.pendingNodes.get(entry.clientMsgId);
    if (!node) return;
    if (this.rooms.get(lower(entry.room))?.timeline.has(frame.seq)) this.removePending(entry.clientMsgId);
    else {
      node.classList.replace("pending", "sent");
      node.dataset.seq = String(frame.seq);
      node.querySelector(".state").textContent = "";
    }
  }

  replied(frame) {
    if (this.editRefs.has(frame.ref)) {
      // The message_edited event shows the edit; only a refusal needs saying.
      const room = this.rooms.get(lower(this.editRefs.get(frame.ref)));
      this.editRefs.delete(frame.ref);
      if (!frame.ok) this.systemLine(room ?? this.active, `could not edit: ${frame.text}`, "error");
      return;
    }
    const asked = this.commandRefs.get(frame.ref);
    this.commandRefs.delete(frame.ref);
    const room = (asked && this.rooms.get(lower(asked.room))) || this.active;
    if (!frame.ok) {
      if (asked?.joining) this.switchTo = null;
      this.systemLine(room, frame.text, "error");
      return;
    }
    if (frame.text) this.systemLine(room, frame.text, "reply");
    if (asked?.parting) {
      const parted = this.rooms.get(lower(asked.parting));
      if (parted) this.removeRoom(parted, null);
    }
  }

  typing(frame) {
    const room = this.rooms.get(lower(frame.room));
    if (!room || lower(frame.user) === lower(this.me.username)) return;
    room.typing.set(frame.user, Date.now() + TYPING_SHOWN_MS);
    if (room === this.active) this.renderTyping();
    setTimeout(() => room === this.active && this.renderTyping(), TYPING_SHOWN_MS + 50);
  }

  presence(frame) {
    const room = this.rooms.get(lower(frame.room));
    if (!room) return;
    const key = lower(frame.user);
    if (frame.status === "online") room.online.add(key);
    else room.online.delete(key);
    const member = room.members?.get(key);
    if (member) member.online = frame.status === "online";
    if (room === this.active) this.renderMembers();
    if (room.peer !== null && key === lower(room.peer)) this.renderRoomList(); // its dot
  }

  refused(frame) {
    const entry = frame.ref !== null && frame.ref !== undefined ? this.outbox.get(String(frame.ref)) : null;
    if (entry) {
      if (frame.error_code === "rate_limited" || frame.error_code === "unavailable") {
        const seconds = frame.retry_after ?? 1;
        setTimeout(() => this.outbox.has(entry.clientMsgId) && this.sendPending(entry), seconds * 1000);
        return;
      }
      this.outbox.settle(entry.clientMsgId); // refused for good: say so, keep the text visible
      const node = this.pendingNodes.get(entry.clientMsgId);
      if (node) {
        node.classList.replace("pending", "failed");
        node.querySelector(".state").textContent = ` not sent: ${frame.detail}`;
        this.pendingNodes.delete(entry.clientMsgId);
      }
      return;
    }
    if (this.editRefs.has(frame.ref)) {
      const room = this.rooms.get(lower(this.editRefs.get(frame.ref)));
      this.editRefs.delete(frame.ref);
      this.systemLine(room ?? this.active, `could not edit: ${frame.detail}`, "error");
      return;
    }
    const asked = this.commandRefs.get(frame.ref);
    this.commandRefs.delete(frame.ref);
    if (asked?.joining) this.switchTo = null;
    if (frame.error_code === "token_invalid" || frame.error_code === "token_expired") return;
    this.systemLine(this.active, frame.detail, "error");
  }

  // ------------------------------------------------------------------ sending

  submit(text) {
    const line = text.replace(/\s+$/, "");
    if (!line.trim()) return;
    this.history.push(line);
    if (line.startsWith("/") && !line.startsWith("//")) {
      this.command(line);
      return;
    }
    const body = line.startsWith("//") ? line.slice(1) : line;
    if (!this.active) {
      this.systemLine(null, "join a room first: /join NAME", "error");
      return;
    }
    const entry = this.outbox.add(this.active.name, body);
    this.showPending(entry);
    this.sendPending(entry);
  }

  /** Up on an empty input line: edit my newest message in the room in view. */
  startEditing(input) {
    const message = this.active && lastOwnMessage(this.active.timeline.events.values(), this.me.username);
    if (!message) return false;
    this.editing = { room: this.active.name, id: message.id, body: message.body };
    input.value = message.body;
    input.classList.add("editing");
    input.setAttribute("aria-description", "editing your last message: Enter saves, Esc cancels");
    return true;
  }

  stopEditing(input) {
    this.editing = null;
    input.value = "";
    input.classList.remove("editing");
    input.removeAttribute("aria-description");
  }

  submitEdit(input) {
    const ref = `e${this.nextRef++}`;
    const frame = editFrame(this.editing, input.value, ref);
    if (frame !== null) {
      if (this.connection.send(frame)) this.editRefs.set(ref, frame.room);
      else this.systemLine(this.active, "not connected: try the edit again once connected", "error");
    }
    this.stopEditing(input);
  }

  sendPending(entry) {
    this.connection.send({ type: "send", room: entry.room, body: entry.body, client_msg_id: entry.clientMsgId, ref: entry.clientMsgId });
  }

  command(line) {
    const [name, argument] = line.slice(1).split(/\s+/, 2);
    const verb = lower(name);
    const room = this.active?.name ?? (verb === "join" && argument ? argument : "_");
    const ref = `c${this.nextRef++}`;
    const asked = { room };
    if (["join", "msg", "query"].includes(verb) && argument) {
      asked.joining = true; // a /msg or /query joins the direct room too
      this.switchTo = lower(`${verb === "join" ? "#" : "@"}${argument}`);
      const known = [...this.rooms.values()].find((candidate) => this.wanted(candidate));
      if (known) this.activate(known);
    }
    if (verb === "part") asked.parting = argument || this.active?.name;
    if (!this.connection.send({ type: "command", room, line, ref })) {
      this.systemLine(this.active, "not connected: commands need a connection; try again once connected", "error");
      return;
    }
    this.commandRefs.set(ref, asked);
  }

  sendTyping() {
    const room = this.active;
    if (!room) return;
    const now = Date.now();
    if (now - (this.typingSent.get(room.name) ?? 0) < TYPING_SEND_EVERY_MS) return;
    if (this.connection.send({ type: "typing", room: room.name })) this.typingSent.set(room.name, now);
  }

  /**
   * Everything shown is read. The marker goes to the server at most once a second per
   * room: in a busy room a frame per message would eat the connection's frame budget.
   */
  markRead(room) {
    room.unread = 0;
    room.notices = 0;
    if (room.readTimer !== null) return;
    room.readTimer = setTimeout(() => {
      room.readTimer = null;
      const seq = room.timeline.last;
      if (seq > room.readSent && this.connection.send({ type: "read", room: room.name, seq })) room.readSent = seq;
    }, READ_MARKER_EVERY_MS);
  }

  // ------------------------------------------------------------------ rooms

  roomFor(name) {
    const key = lower(name);
    let room = this.rooms.get(key);
    if (!room) {
      room = new Room(name);
      this.rooms.set(key, room);
      $("log").append(room.log);
      if (!this.knownRooms.some((known) => lower(known) === key)) this.knownRooms.push(name);
    }
    return room;
  }

  activate(room) {
    if (this.active) this.active.log.hidden = true;
    $("lobby")?.remove();
    this.active = room;
    room.log.hidden = false;
    localStorage.setItem(ROOM_KEY, room.name);
    this.markRead(room);
    this.renderRoomList();
    this.renderHeader();
    this.renderTyping();
    this.renderMembers();
    this.scrollToEnd();
    if (room.members === null) this.loadMembers(room);
    this.tasks.showRoom(room.name);
    this.retro.showRoom(room.name);
    this.closePanels(SIDE_PANELS); // they show this room's tasks and retro now
  }

  /** The room a /join or /msg is waiting for: by its name, or a direct room by its peer. */
  wanted(room) {
    return this.switchTo !== null && (this.switchTo === lower(`#${room.name}`) || this.switchTo === lower(roomLabel(room)));
  }

  switchRoom(step) {
    const names = listOrder([...this.rooms.values()]);
    if (!names.length) return;
    const index = names.indexOf(this.active);
    this.activate(names[(index + step + names.length) % names.length]);
  }

  removeRoom(room, why) {
    for (const entry of this.outbox.dropRoom(room.name)) this.removePending(entry.clientMsgId);
    this.rooms.delete(lower(room.name));
    this.polls.dropRoom(room.name);
    room.log.remove();
    if (this.active === room) {
      this.active = null;
      const next = this.rooms.values().next().value;
      if (next) this.activate(next);
      else this.showLobby();
    }
    if (why) this.systemLine(this.active, why);
    this.renderRoomList();
  }

  showLobby() {
    this.active = null;
    localStorage.removeItem(ROOM_KEY);
    if (!$("lobby")) {
      $("log").append(
        el("div", { id: "lobby", className: "room-log" },
          el("div", { className: "line system" }, "You are in no room yet. Type /join NAME to join or create one, or /rooms to list them."),
        ),
      );
    }
    this.renderHeader();
    this.renderMembers();
    this.tasks.showRoom(null);
    this.retro.showRoom(null);
  }

  /** The participants, once per room; kept current by member events and presence frames. */
  async loadMembers(room) {
    if (room.membersLoading) return;
    room.membersLoading = true;
    try {
      let members;
      do {
        room.membersStale = false;
        members = await this.session.members(room.name);
      } while (room.membersStale); // the answer may predate that event: ask again
      for (const member of members) {
        const key = lower(member.username);
        if (room.subscribed) member.online = room.online.has(key); // frames are newer
        else if (member.online) room.online.add(key);
      }
      room.members = new Map(members.map((member) => [lower(member.username), member]));
      if (room === this.active) this.renderMembers();
    } catch (error) {
      room.members = null;
      if (error.status !== 404 && error.status !== 403) this.systemLine(room, `could not list participants: ${error.detail}`, "error");
    } finally {
      room.membersLoading = false;
    }
  }

  /** A page of older events, before `before` (the oldest held when not given). */
  async loadOlder(room, before = room.timeline.first) {
    if (room.loadingOlder || !room.hasMore || before === null || before <= 1) {
      if (before !== null && before <= 1) room.hasMore = false;
      return;
    }
    room.loadingOlder = true;
    const log = $("log");
    const fromBottom = log.scrollHeight - log.scrollTop;
    try {
      const page = await this.session.history(room.name, { before, limit: PAGE });
      for (const event of page.events) this.insertEvent(room, event);
      room.hasMore = page.has_more;
      if (room === this.active) log.scrollTop = log.scrollHeight - fromBottom;
    } catch (error) {
      this.systemLine(room, `could not load history: ${error.detail}`, "error");
    } finally {
      room.loadingOlder = false;
    }
  }

  // ------------------------------------------------------------------ search

  /** The search box's query, or with `older` the next page of the one listed. */
  async search(older = false) {
    const q = older ? this.searched.q : $("search-input").value.trim();
    if (!q) return;
    const asked = { q, before: older ? this.searched.before : undefined };
    this.searched = asked;
    const list = $("search-results");
    if (!older) list.replaceChildren();
    $("search-more").hidden = true;
    $("search-status").textContent = "searching…";
    try {
      const page = await this.session.search(q, { before: asked.before });
      if (this.searched !== asked) return; // a newer search is under way
      list.append(...page.results.map((result) => el("li", {}, this.searchResult(result))));
      asked.before = page.results.at(-1)?.event.id;
      $("search-more").hidden = !page.has_more;
      $("search-status").textContent = list.children.length ? "" : "no messages found";
    } catch (error) {
      if (this.searched === asked) $("search-status").textContent = error.detail;
    }
  }

  /** A result: where and when, who, and the snippet with its matches marked, as text. */
  searchResult({ room, event, snippet }) {
    const followed = this.rooms.get(lower(room));
    const button = el(
      "button",
      { type: "button", className: "search-result" },
      el("span", { className: "where" }, followed ? roomLabel(followed) : `#${room}`),
      " ",
      el("time", { className: "ts", dateTime: event.ts, title: event.ts }, dayTime(event.ts)),
      " ",
      this.nick(event.user ?? "deleted user", "<", ">"),
      " ",
      el("span", { className: "snippet" }, ...snippetParts(snippet).map((part) => (part.match ? el("mark", {}, part.text) : part.text))),
    );
    button.addEventListener("click", () => this.jumpTo(room, event));
    return button;
  }

  /** A result chosen: its room in view (joined first when not followed), its message shown. */
  async jumpTo(name, event) {
    this.closePanels();
    $("input").focus();
    const room = this.rooms.get(lower(name));
    if (!room) {
      this.revealing = { room: lower(name), event };
      this.command(`/join ${name}`);
      return;
    }
    this.activate(room);
    await this.reveal(room, event);
  }

  /** Older pages until the event is held (or none are left), then it is scrolled to and marked. */
  async reveal(room, event) {
    let oldest;
    while (!room.timeline.has(event.seq) && room.hasMore && room.timeline.first !== oldest && room.timeline.first > event.seq) {
      oldest = room.timeline.first;
      await this.loadOlder(room);
    }
    const line = room.nodes.get(event.seq);
    if (!line || room !== this.active) return;
    line.scrollIntoView({ block: "center" });
    line.classList.add("found");
    setTimeout(() => line.classList.remove("found"), FOUND_SHOWN_MS);
  }

  // ------------------------------------------------------------------ rendering

  /** Put an event into its room's timeline and log; false when it was already there. */
  insertEvent(room, event) {
    const index = room.timeline.insert(event);
    if (index < 0) return false;
    const node = this.eventLine(room, event);
    room.nodes.set(event.seq, node);
    const next = room.timeline.nextAfter(index);
    const stick = room === this.active && this.atBottom();
    room.events.insertBefore(node, next === null ? null : room.nodes.get(next));
    if (stick) this.scrollToEnd();
    const sent = room.pending.querySelector(`[data-seq="${event.seq}"]`);
    if (sent) this.removePendingNode(sent);
    if (event.type === "poll_closed") this.polls.update(event.poll);
    if (event.type === "message_edited") this.edited(room, event);
    return true;
  }

  /** A message_edited event: its message's line shows the message as it is now. */
  edited(room, event) {
    const message = room.timeline.findById(event.target);
    const changed = message && applyEdit(message, event);
    if (!changed) return;
    Object.assign(message, changed);
    this.redraw(room, message);
  }

  /** A stored event's line drawn again where it stands, after the event changed. */
  redraw(room, event) {
    const old = room.nodes.get(event.seq);
    const fresh = this.eventLine(room, event);
    room.nodes.set(event.seq, fresh);
    old?.replaceWith(fresh);
  }

  eventLine(room, event) {
    const time = el("time", { dateTime: event.ts, title: event.ts, className: "ts" }, clockTime(event.ts));
    const line = el("div", { className: "line", dataset: { seq: String(event.seq), id: event.id } }, time, " ");
    if (event.type === "message_edited") {
      line.hidden = true; // its message's line shows the edit, in place
      return line;
    }
    const text = systemText(event, event.type === "task_deleted" ? this.knownTask(room, event.target) : null);
    if (text !== null) {
      line.classList.add("system", event.type);
      line.append(el("span", { className: "sys" }, `-- ${text}`));
      if (event.type === "poll_created") line.append(this.polls.chart(event.poll));
      return line;
    }
    const author = event.user ?? "deleted user";
    if (event.body === null) {
      line.classList.add("deleted");
      line.append(this.nick(author, "<", ">"), " ", el("span", { className: "body" }, "[message deleted]"));
    } else if (event.action) {
      line.classList.add("action");
      line.append("* ", this.nick(author), " ", bodyNode(event.body));
    } else {
      line.append(this.nick(author, "<", ">"), " ", bodyNode(event.body));
    }
    if (event.body !== null && event.edited_at) {
      line.append(el("span", { className: "edited", title: `edited ${event.edited_at}` }, " (edited)"));
    }
    if (event.user && lower(event.user) !== lower(this.me.username) && event.body && this.mentions(event.body)) {
      line.classList.add("mention");
    }
    return line;
  }

  /** The task with this id as the panel or the room's task events last showed it, or null. */
  knownTask(room, id) {
    const listed = this.tasks.find(id);
    if (listed) return listed;
    let known = null;
    for (const event of room.timeline.events.values()) {
      if (event.task?.id === id && (known === null || event.seq > known.seq)) known = event;
    }
    return known?.task ?? null;
  }

  mentions(body) {
    const name = lower(this.me.username).replace(/[.\\-]/g, "\\$&");
    return new RegExp(`(^|[^A-Za-z0-9._-])@?${name}([^A-Za-z0-9._-]|$)`, "i").test(body);
  }

  nick(name, open = "", close = "") {
    return el("span", { className: `nick nick-c${nickColour(name)}` }, `${open}${name}${close}`);
  }

  markDeleted(room, targetId) {
    const event = room.timeline.findById(targetId);
    if (!event || event.body === null) return;
    event.body = null;
    this.redraw(room, event);
  }

  showPending(entry) {
    const room = this.rooms.get(lower(entry.room));
    const line = el(
      "div",
      { className: "line pending", dataset: { clientMsgId: entry.clientMsgId } },
      el("time", { className: "ts" }, clockTime(new Date(entry.queuedAt).toISOString())),
      " ",
      this.nick(this.me.username, "<", ">"),
      " ",
      bodyNode(entry.body),
      el("span", { className: "state", title: "waiting for the server to store it" }, " sending…"),
    );
    this.pendingNodes.set(entry.clientMsgId, line);
    room.pending.append(line);
    if (room === this.active) this.scrollToEnd();
  }

  removePending(clientMsgId) {
    const node = this.pendingNodes.get(clientMsgId);
    if (node) this.removePendingNode(node);
  }

  removePendingNode(node) {
    this.pendingNodes.delete(node.dataset.clientMsgId);
    node.remove();
  }

  /** A line of the client's own (replies, errors): shown, never part of the timeline. */
  systemLine(room, text, kind = "info") {
    const now = new Date().toISOString();
    const line = el(
      "div",
      { className: `line local ${kind}` },
      el("time", { dateTime: now, title: now, className: "ts" }, clockTime(now)),
      " ",
      el("span", { className: "sys" }, `-!- ${text}`),
    );
    if (room) room.log.insertBefore(line, room.pending);
    else ($("lobby") ?? $("log")).append(line);
    this.scrollToEnd();
  }

  /** Rooms, then direct rooms under their own heading, each by its peer with an online dot. */
  renderRoomList() {
    const { rooms, direct } = groupRooms([...this.rooms.values()]);
    $("room-list").replaceChildren(...rooms.map((room) => this.roomEntry(room)));
    $("direct-list").replaceChildren(...direct.map((room) => this.roomEntry(room)));
    $("direct-heading").hidden = direct.length === 0;
    const unread = [...this.rooms.values()].reduce((sum, room) => sum + room.unread, 0);
    document.title = unread ? `(${unread}) termrooms` : "termrooms";
  }

  roomEntry(room) {
    const online = room.peer !== null && room.online.has(lower(room.peer));
    const button = el(
      "button",
      { type: "button", className: "room", "aria-current": room === this.active ? "true" : null },
      el("span", { className: "room-name" }, roomLabel(room)),
      this.unreadMark(room),
    );
    if (isDirect(room.name)) {
      button.classList.add(online ? "online" : "offline");
      button.prepend(
        el("span", { className: "dot", "aria-hidden": "true" }, online ? "●" : "○"),
        el("span", { className: "sr-only" }, online ? "online: " : "offline: "),
      );
    }
    button.addEventListener("click", () => {
      this.activate(room);
      $("input").focus();
    });
    return el("li", {}, button);
  }

  /** The count of unread messages; marked "notice", or "!" alone, when a notice came too. */
  unreadMark(room) {
    if (room.unread === 0 && room.notices === 0) return null;
    const said = [room.unread > 0 ? `${room.unread} unread` : null, room.notices > 0 ? `${room.notices} for you` : null];
    return el(
      "span",
      { className: room.notices > 0 ? "unread notice" : "unread", title: said.filter(Boolean).join(", ") },
      room.unread > 0 ? String(room.unread) : "!",
    );
  }

  renderHeader() {
    $("room-title").textContent = this.active ? roomLabel(this.active) : "termrooms";
    $("topic").textContent = this.active?.topic ?? "";
    $("prompt").textContent = this.active ? `[${this.active.peer ? roomLabel(this.active) : this.active.name}]>` : ">";
  }

  renderMembers() {
    const list = $("member-list");
    const room = this.active;
    if (!room || room.members === null) {
      list.replaceChildren();
      return;
    }
    list.replaceChildren(
      ...sortMembers([...room.members.values()]).map((member) =>
        el(
          "li",
          { className: member.online ? "member online" : "member offline", title: `${member.role}${member.online ? ", online" : ""}` },
          el("span", { className: "dot", "aria-hidden": "true" }, member.online ? "●" : "○"),
          el("span", { className: "sigil" }, roleSigil(member.role)),
          this.nick(member.username),
          el("span", { className: "sr-only" }, member.online ? " online" : " offline"),
        ),
      ),
    );
  }

  renderTyping() {
    const room = this.active;
    const now = Date.now();
    const who = room ? [...room.typing].filter(([, until]) => until > now).map(([user]) => user) : [];
    const line = $("typing");
    if (!who.length) line.textContent = "";
    else if (who.length === 1) line.textContent = `${who[0]} is typing…`;
    else if (who.length === 2) line.textContent = `${who[0]} and ${who[1]} are typing…`;
    else line.textContent = `${who.length} people are typing…`;
  }

  showState({ state, retryAt, detail }) {
    clearInterval(this.statusTimer);
    const text = $("status-text");
    const retry = $("retry-now");
    const status = $("status");
    status.dataset.state = state;
    $("chat").dataset.connection = state; // presence shown is stale while not connected
    retry.hidden = state !== "waiting";
    if (state === "open") text.textContent = "connected";
    else if (state === "connecting") text.textContent = "connecting…";
    else if (state === "stopped") text.textContent = "offline";
    else if (state === "waiting") {
      const tick = () => {
        const seconds = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
        text.textContent = `disconnected: reconnecting in ${seconds} s…${detail ? ` (${detail})` : ""}`;
      };
      tick();
      this.statusTimer = setInterval(tick, 1000);
    }
  }

  atBottom() {
    const log = $("log");
    return log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  }

  scrollToEnd() {
    const log = $("log");
    log.scrollTop = log.scrollHeight;
  }

  // ------------------------------------------------------------------ panels and keys

  togglePanel(id) {
    const chat = $("chat");
    const open = !chat.classList.contains(`show-${id}`);
    this.closePanels();
    if (open) {
      chat.classList.add(`show-${id}`);
      $(`${id}-toggle`).setAttribute("aria-expanded", "true");
      if (id === "tasks") this.tasks.opened();
      else if (id === "retro") this.retro.opened();
      else $(id).querySelector("input, button, li")?.focus?.();
    } else if ($(id).contains(document.activeElement)) {
      $("input").focus(); // the keys leave with the panel
    }
  }

  /** Alt+V: the newest poll of the room in view gets the keys. */
  pollKey() {
    const covering = getComputedStyle($("tasks")).position === "fixed"; // phone width: panels cover the stream
    this.closePanels(covering ? null : SIDE_PANELS);
    if (!this.active || !this.polls.focusNewest(this.active.events)) this.systemLine(this.active, "no poll here to vote in", "error");
  }

  /** Alt+T: open the tasks panel, or give it the keys when open, or close it when it has them. */
  tasksKey() {
    if ($("chat").classList.contains("show-tasks") && !$("tasks").contains(document.activeElement)) this.tasks.focus();
    else this.togglePanel("tasks");
  }

  /** Show a panel without giving it the keys (the board, when a retro begins). */
  showPanel(id) {
    this.closePanels("search");
    $("chat").classList.add(`show-${id}`);
    $(`${id}-toggle`).setAttribute("aria-expanded", "true");
  }

  /** Alt+B: open the retro board, or give its cards the keys, or close it when they have them. */
  retroKey() {
    const active = document.activeElement;
    const onCards = active === $("retro") || active?.closest("#retro-board [data-nav]");
    if ($("chat").classList.contains("show-retro") && !onCards) this.retro.focus();
    else this.togglePanel("retro");
  }

  /** Whether I may start a retro in `room`: its owner or a moderator (unknown: let the server say). */
  maySteer(room) {
    const me = room?.members?.get(lower(this.me.username));
    return me === undefined || me.role === "owner" || me.role === "moderator";
  }

  closePanels(keep = null) {
    for (const id of PANELS) {
      if (id === keep || (Array.isArray(keep) && keep.includes(id))) continue;
      $("chat").classList.remove(`show-${id}`);
      $(`${id}-toggle`).setAttribute("aria-expanded", "false");
    }
  }

  /** The "alerts" control: shown while the browser may still ask to allow notifications. */
  renderAlertsToggle() {
    $("alerts-toggle").hidden = window.Notification?.permission !== "default";
  }

  async allowNotifications() {
    await Notification.requestPermission(); // on this click only: never asked unprompted
    this.renderAlertsToggle();
  }

  completionSources() {
    const nicks = new Set();
    const room = this.active;
    if (room?.members) for (const member of room.members.values()) nicks.add(member.username);
    if (room) for (const event of room.timeline.events.values()) if (event.user) nicks.add(event.user);
    return { commands: COMMANDS, rooms: [...new Set([...this.knownRooms, ...[...this.rooms.values()].map((r) => r.name)])], nicks: [...nicks] };
  }

  bindKeys() {
    const input = $("input");
    const fit = () => {
      input.style.height = "auto";
      input.style.height = `${Math.min(input.scrollHeight, 200)}px`;
    };
    const { signal } = this.listening;
    input.addEventListener("input", () => {
      this.completer.reset();
      fit();
      if (input.value && !input.value.startsWith("/")) this.sendTyping();
    }, { signal });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Tab" && input.value) {
        event.preventDefault();
        const done = this.completer.tab(input.value, input.selectionStart, this.completionSources(), event.shiftKey);
        if (done) {
          input.value = done.text;
          input.setSelectionRange(done.caret, done.caret);
          fit();
        }
        return;
      }
      if (event.key !== "Shift") this.completer.reset();
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        if (this.editing) this.submitEdit(input);
        else this.submit(input.value);
        input.value = "";
        fit();
        return;
      }
      if (event.key === "Escape" && this.editing) {
        event.stopPropagation(); // cancels the edit, closes no panel
        this.stopEditing(input);
        fit();
        return;
      }
      if (event.key === "ArrowUp" && !event.altKey && input.value === "" && !this.editing) {
        if (this.startEditing(input)) {
          event.preventDefault();
          fit();
          return;
        }
      }
      const firstLine = !input.value.slice(0, input.selectionStart).includes("\n");
      const lastLine = !input.value.slice(input.selectionEnd).includes("\n");
      if (event.key === "ArrowUp" && !event.altKey && firstLine) {
        const older = this.history.up(input.value);
        if (older !== null) {
          event.preventDefault();
          input.value = older;
          input.setSelectionRange(older.length, older.length);
          fit();
        }
      } else if (event.key === "ArrowDown" && !event.altKey && lastLine) {
        const newer = this.history.down();
        if (newer !== null) {
          event.preventDefault();
          input.value = newer;
          input.setSelectionRange(newer.length, newer.length);
          fit();
        }
      }
    }, { signal });
    const keyHandler = (event) => {
      if ($("chat").hidden) return;
      if (event.altKey && (event.key === "ArrowUp" || event.key === "ArrowDown")) {
        event.preventDefault();
        this.switchRoom(event.key === "ArrowUp" ? -1 : 1);
        input.focus();
      } else if (event.altKey && lower(event.key) === "r") {
        event.preventDefault();
        this.connection.retryNow();
      } else if (event.altKey && lower(event.key) === "p") {
        event.preventDefault();
        this.togglePanel("members");
      } else if (event.altKey && lower(event.key) === "n") {
        event.preventDefault();
        this.togglePanel("rooms");
      } else if (event.altKey && lower(event.key) === "t") {
        event.preventDefault();
        this.tasksKey();
      } else if (event.altKey && lower(event.key) === "b") {
        event.preventDefault();
        this.retroKey();
      } else if (event.altKey && lower(event.key) === "v") {
        event.preventDefault();
        this.pollKey();
      } else if (event.altKey && lower(event.key) === "s") {
        event.preventDefault();
        this.togglePanel("search");
      } else if (event.key === "Escape") {
        this.closePanels();
        input.focus();
      }
    };
    document.addEventListener("keydown", keyHandler, { signal });
    $("log").addEventListener("scroll", () => {
      if (this.active && $("log").scrollTop < 80) this.loadOlder(this.active);
    }, { signal });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && this.active) {
        this.markRead(this.active);
        this.renderRoomList();
      }
    }, { signal });
    for (const [id, action] of [
      ["rooms-toggle", () => this.togglePanel("rooms")],
      ["members-toggle", () => this.togglePanel("members")],
      ["tasks-toggle", () => this.togglePanel("tasks")],
      ["retro-toggle", () => this.togglePanel("retro")],
      ["retro-close", () => this.togglePanel("retro")],
      ["search-toggle", () => this.togglePanel("search")],
      ["search-more", () => this.search(true)],
      ["alerts-toggle", () => this.allowNotifications()],
      ["retry-now", () => this.connection.retryNow()],
      ["signout", () => this.signOut()],
    ]) {
      $(id).addEventListener("click", action, { signal });
    }
    $("composer").addEventListener("submit", (event) => event.preventDefault(), { signal });
    $("search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.search();
    }, { signal });
    $("search").addEventListener("keydown", (event) => {
      if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
      const stops = [$("search-input"), ...$("search-results").querySelectorAll("button")];
      const next = stops[stops.indexOf(document.activeElement) + (event.key === "ArrowDown" ? 1 : -1)];
      if (next && stops.includes(document.activeElement)) {
        event.preventDefault();
        next.focus();
      }
    }, { signal });
    this.tasks.bind(signal);
    this.retro.bind(signal);
    this.polls.bind(signal);
  }
}
