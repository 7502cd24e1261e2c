// Pure text helpers: nick colours, links, times and the wording of system lines.
// Nothing here touches the DOM, so `node --test` checks it (tests/js/).

import { pollEventText } from "./polls.js";
import { retroEventText } from "./retros.js";
import { taskEventText } from "./tasks.js";

export const NICK_COLOURS = 12;

/** A stable colour class index for a name: FNV-1a over the lowercased name. */
export function nickColour(name) {
  let hash = 0x811c9dc5;
  for (const ch of String(name).toLowerCase()) {
    hash ^= ch.codePointAt(0);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % NICK_COLOURS;
}

const URL_PATTERN = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const TRAILING_PUNCTUATION = /[.,;:!?)\]}'"]+$/;

/**
 * Split text into plain and link segments: [{text}, {text, href}, ...]. Only http and
 * https become links (never javascript: or data:), and trailing punctuation stays text.
 */
export function linkify(text) {
  const segments = [];
  let last = 0;
  for (const match of text.matchAll(URL_PATTERN)) {
    let url = match[0];
    const trailing = url.match(TRAILING_PUNCTUATION);
    if (trailing) {
      // Keep a closing bracket that the link itself opened (wiki-style URLs).
      let cut = trailing[0].length;
      if (url.endsWith(")") && url.includes("(")) cut = trailing[0].replace(/\)+$/, "").length;
      url = url.slice(0, url.length - cut);
    }
    if (!url.match(/^https?:\/\/./i)) continue;
    if (match.index > last) segments.push({ text: text.slice(last, match.index) });
    segments.push({ text: url, href: url });
    last = match.index + url.length;
  }
  if (last < text.length) segments.push({ text: text.slice(last) });
  return segments;
}

function pad(number) {
  return String(number).padStart(2, "0");
}

/** "HH:MM" in the reader's time zone. */
export function clockTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "--:--";
  return `${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** "HH:MM" on the reader's today, else "YYYY-MM-DD HH:MM": a time that may be days away. */
export function dayTime(iso, now = new Date()) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime()) || date.toDateString() === now.toDateString()) return clockTime(iso);
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${clockTime(iso)}`;
}

function withReason(text, event) {
  let line = text;
  if (event.duration_s) line += ` for ${formatDuration(event.duration_s)}`;
  if (event.reason) line += ` (${event.reason})`;
  return line;
}

/** 90 -> "1m 30s", 86400 -> "1d". */
export function formatDuration(seconds) {
  const units = [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]];
  const parts = [];
  let left = Math.round(seconds);
  for (const [unit, size] of units) {
    if (left >= size) {
      parts.push(`${Math.floor(left / size)}${unit}`);
      left %= size;
    }
    if (parts.length === 2) break;
  }
  return parts.join(" ") || "0s";
}

const ROLE_NAMES = { owner: "an owner", moderator: "a moderator", member: "a member" };

/**
 * The text of a room event shown as a system line; null for messages. `deletedTask`:
 * the task a task_deleted event names, when known (the event carries only its id).
 */
export function systemText(event, deletedTask = null) {
  const who = event.user ?? "someone";
  switch (event.type) {
    case "message":
      return null;
    case "member_joined":
      return `${who} joined ${event.room}`;
    case "member_left":
      return `${who} left ${event.room}`;
    case "topic_changed":
      return event.topic ? `${who} set the topic: ${event.topic}` : `${who} cleared the topic`;
    case "member_kicked":
      return withReason(`${event.target} was kicked by ${who}`, event);
    case "member_banned":
      return withReason(`${event.target} was banned by ${who}`, event);
    case "member_unbanned":
      return `${event.target} was unbanned by ${who}`;
    case "member_muted":
      return withReason(`${event.target} was muted by ${who}`, event);
    case "member_unmuted":
      return `${event.target} was unmuted by ${who}`;
    case "role_changed":
      return `${who} made ${event.target} ${ROLE_NAMES[event.role] ?? event.role}`;
    case "message_deleted":
      return `${who} deleted a message`;
    case "task_created":
    case "task_updated":
    case "task_deleted":
      return taskEventText(event, deletedTask);
    case "poll_created":
    case "poll_closed":
      return pollEventText(event);
    case "retro_started":
    case "retro_phase_changed":
    case "retro_closed":
      return retroEventText(event);
    default:
      return `${event.type} by ${who}`;
  }
}

/** Members sorted as a participants list shows them: role, then online, then name. */
export function sortMembers(members) {
  const rank = { owner: 0, moderator: 1, member: 2 };
  return [...members].sort(
    (a, b) =>
      (rank[a.role] ?? 3) - (rank[b.role] ?? 3) ||
      Number(b.online) - Number(a.online) ||
      a.username.localeCompare(b.username, undefined, { sensitivity: "base" }),
  );
}

/** The sigil before a member's name: @ owner, + moderator. */
export function roleSigil(role) {
  return role === "owner" ? "@" : role === "moderator" ? "+" : "";
}
