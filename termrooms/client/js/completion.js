// Tab completion of the input line: command names, then room names after /join and
// /part, and nicks everywhere else. Repeated Tabs cycle through the candidates. Pure.

/** The contract's slash commands; the server's /help says which the user may use. */
export const COMMANDS = [
  "help", "join", "part", "me", "topic", "who", "rooms", "nick", "invite", "kick", "ban",
  "unban", "mute", "unmute", "op", "deop", "delete", "todo", "poll", "msg", "query", "ignore",
  "unignore", "search", "retro",
];
const ROOM_COMMANDS = new Set(["/join", "/part"]);
const USER_COMMANDS = new Set([
  "/invite", "/kick", "/ban", "/unban", "/mute", "/unmute", "/op", "/deop", "/msg", "/query",
  "/ignore", "/unignore",
]);

/** The word the caret ends and what kind of word it is. */
export function completionContext(text, caret) {
  const before = text.slice(0, caret);
  const start = before.search(/\S*$/);
  const prefix = before.slice(start);
  const words = before.slice(0, start).trim().split(/\s+/).filter(Boolean);
  let kind = "nick";
  if (words.length === 0 && prefix.startsWith("/")) kind = "command";
  else if (words.length === 1 && ROOM_COMMANDS.has(words[0].toLowerCase())) kind = "room";
  else if (words.length === 1 && USER_COMMANDS.has(words[0].toLowerCase())) kind = "user";
  return { start, prefix, kind, atLineStart: words.length === 0 };
}

/** Candidates for a context, sorted, matched case-insensitively by prefix. */
export function candidates(context, sources) {
  const wanted = context.prefix.toLowerCase();
  let pool;
  if (context.kind === "command") pool = (sources.commands ?? COMMANDS).map((name) => `/${name}`);
  else if (context.kind === "room") pool = sources.rooms ?? [];
  else pool = sources.nicks ?? [];
  const seen = new Set();
  return pool
    .filter((word) => word.toLowerCase().startsWith(wanted))
    .filter((word) => !seen.has(word.toLowerCase()) && seen.add(word.toLowerCase()))
    .sort((a, b) => a.localeCompare(b, undefined, { sensitivity: "base" }));
}

/** Keeps the cycle between consecutive Tabs; any other edit starts afresh (reset()). */
export class Completer {
  constructor() {
    this.reset();
  }

  reset() {
    this.cycle = null;
  }

  /**
   * Complete at the caret: returns {text, caret} to put in the input, or null when
   * nothing matches. `backwards` (Shift+Tab) cycles the other way.
   */
  tab(text, caret, sources, backwards = false) {
    if (this.cycle === null || this.cycle.text !== text || this.cycle.caret !== caret) {
      const context = completionContext(text, caret);
      const found = candidates(context, sources);
      if (!found.length) return null;
      this.cycle = { context, found, index: backwards ? found.length : -1, original: text };
    }
    const cycle = this.cycle;
    const count = cycle.found.length;
    cycle.index = (cycle.index + (backwards ? -1 : 1) + count) % count;
    const word = cycle.found[cycle.index];
    const { start, prefix, kind, atLineStart } = cycle.context;
    const suffix = kind === "nick" && atLineStart ? ": " : " ";
    const head = cycle.original.slice(0, start) + word + suffix;
    const tail = cycle.original.slice(start + prefix.length).replace(/^ /, "");
    cycle.text = head + tail;
    cycle.caret = head.length;
    return { text: cycle.text, caret: cycle.caret };
  }
}
