// The retro board beside the stream: the active room's newest retro as its columns of
// cards and stacks (or, discussing, the stacks ranked by votes), the vote dots, the
// actions, the happiness check, and the facilitator's controls. It follows the phase by
// reading the board again whenever it may have changed (the app says when: retro_update
// frames, retro_* events, reconnects); the server's answer is all it shows, so nothing
// hidden can show.

import { el } from "./dom.js";
import {
  boardLayout,
  budgetDots,
  happinessFacts,
  histogramBars,
  HAPPINESS_FACES,
  isOpen,
  keepSelection,
  locate,
  moveSelection,
  navigation,
  neighbourPhase,
  PHASE_HINTS,
  PHASES,
  voteDots,
  votesLeftText,
} from "./retros.js";
import { parseTaskInput, STATUS_MARKS } from "./tasks.js";

const $ = (id) => document.getElementById(id);
const lower = (name) => String(name).toLowerCase();
const MOVES = {
  ArrowDown: { down: 1 }, j: { down: 1 },
  ArrowUp: { down: -1 }, k: { down: -1 },
  ArrowRight: { right: 1 }, l: { right: 1 },
  ArrowLeft: { right: -1 }, h: { right: -1 },
};

export class RetroBoard {
  /**
   * `isOpen()` says whether the board shows; `open()` shows it without taking the keys;
   * `canStart()` whether the user may start one here; `onError(text)` says what failed.
   */
  constructor({ session, isOpen: shown, open, canStart, onError }) {
    this.session = session;
    this.shown = shown;
    this.open = open;
    this.canStart = canStart;
    this.onError = onError;
    this.room = null; // the active room's name
    this.retroId = null; // the retro shown; null: find the room's newest
    this.retro = null;
    this.grid = null; // where the keys move, as last drawn
    this.stacks = new Map(); // stack key -> stack, as last drawn
    this.selected = null; // the key of the card or stack the keys act on
    this.merging = null; // the entry being merged into another stack, while picking
    this.editing = null; // {key, input} while a stack's title ("g:ID") or my card ("c:ID") is edited
    this.adders = new Map(); // lower column name -> its add form: kept, so typing survives a re-read
    this.autoOpened = new Set(); // retros the board opened itself for, once each
    this.joining = new Set(); // retros joined (or tried) as the board showed them
    this.loading = false;
    this.stale = false;
    this.changes = Promise.resolve(); // the last change asked for: the next one waits for it
  }

  get me() {
    return lower(this.session.user?.username ?? "");
  }

  bind(signal) {
    $("retro").addEventListener("keydown", (event) => this.key(event), { signal });
    $("retro").addEventListener("click", (event) => this.click(event), { signal });
    $("retro-start-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.start(this.startFields());
    }, { signal });
    $("retro-action-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.addAction($("retro-action-title").value);
    }, { signal });
  }

  /** The board was opened: read it, and take the keys. */
  opened() {
    if (this.retro) this.takePart();
    this.reload();
    this.focus();
  }

  focus() {
    ($("retro-board").querySelector('[data-nav][tabindex="0"]') ?? $("retro")).focus();
  }

  /** The active room is now `name` (null: none): find its newest retro. */
  showRoom(name) {
    if (this.room !== null && name !== null && lower(this.room) === lower(name)) return;
    this.room = name;
    this.retroId = null;
    this.retro = null;
    this.grid = null;
    this.merging = null;
    this.editing = null;
    this.adders.clear();
    this.render();
    this.reload();
  }

  /** A retro_update frame: that retro's board changed. */
  changed(room, retroId) {
    if (!this.here(room) || (this.retroId !== null && retroId !== this.retroId)) return;
    if (this.shown()) this.reload();
  }

  /** A retro_* event of `room` arrived live: a new retro is the one shown from now on. */
  event(room, event) {
    if (!this.here(room)) return;
    if (event.type === "retro_started") this.retroId = event.retro;
    this.reload();
  }

  /** Reconnected: anything may have happened, a new retro included. */
  reconnected() {
    this.retroId = null;
    this.reload();
  }

  here(room) {
    return this.room !== null && room !== null && lower(room) === lower(this.room);
  }

  async reload() {
    if (this.room === null) return;
    if (this.loading) {
      this.stale = true;
      return;
    }
    this.loading = true;
    try {
      let board;
      let room;
      do {
        this.stale = false;
        room = this.room;
        if (room === null) return; // no room in view any more
        if (this.retroId === null) board = (await this.session.retros(room, 1)).retros[0] ?? null;
        else board = await this.session.retro(room, this.retroId);
      } while (this.stale || room !== this.room); // the answer may predate what asked again
      this.show(board);
    } catch (error) {
      if (error.status === 404) this.show(null);
      else this.onError(`could not read the retro: ${error.detail}`);
    } finally {
      this.loading = false;
    }
  }

  /** A board from the server (null: none in this room) is the one shown. */
  show(board) {
    this.retro = board;
    this.retroId = board?.id ?? null;
    if (isOpen(board) && !this.autoOpened.has(board.id)) {
      this.autoOpened.add(board.id); // closed by hand, it stays closed
      if (!this.shown()) this.open();
    }
    this.render();
    this.takePart();
  }

  /**
   * Whoever has the board open takes part: joining as the board opens, not with a first
   * card, says nothing about who wrote what in an anonymous retro.
   */
  takePart() {
    const retro = this.retro;
    if (!isOpen(retro) || !this.shown() || this.joining.has(retro.id)) return;
    if (retro.participants.some((name) => lower(name) === this.me)) return;
    this.joining.add(retro.id); // once: the "take part" button is there if it fails
    this.change("take part", "POST", "/join", {});
  }

  // ------------------------------------------------------------------ changes

  /**
   * One change on the server, after those asked before it (three quick + then - are
   * four votes in that order); a board in the answer is shown, else the board is read again.
   */
  change(what, method, part, body) {
    const done = this.changes.then(() => this.send(what, method, part, body));
    this.changes = done;
    return done;
  }

  async send(what, method, part, body) {
    const retro = this.retro;
    if (!retro) return null;
    try {
      const answer = await this.session.retroChange(method, retro.room, retro.id, part, body);
      if (answer && answer.id === retro.id && Array.isArray(answer.groups)) this.show(answer);
      else {
        if (answer?.my_votes && this.retro === retro) {
          Object.assign(retro, { my_votes: answer.my_votes, votes_left: answer.votes_left }); // my dots at once
          this.render();
        }
        this.reload();
      }
      return answer ?? {};
    } catch (error) {
      this.onError(`could not ${what}: ${error.detail}`);
      return null;
    }
  }

  /** The start form's fields, only those given: the server's defaults for the rest. */
  startFields() {
    const fields = {};
    const title = $("retro-start-title").value.trim();
    const columns = $("retro-start-columns").value.split(",").map((name) => name.trim()).filter(Boolean);
    const votes = Number($("retro-start-votes").value);
    if (title) fields.title = title;
    if (columns.length) fields.columns = columns;
    if (Number.isInteger(votes) && votes !== 3) fields.votes_per_participant = votes;
    if ($("retro-start-named").checked) fields.anonymous = false;
    return fields;
  }

  async start(fields) {
    if (this.room === null) return;
    try {
      const board = await this.session.startRetro(this.room, fields);
      $("retro-start-title").value = "";
      this.autoOpened.add(board.id);
      this.show(board);
      this.focus();
    } catch (error) {
      this.onError(`could not start a retro: ${error.detail}`);
    }
  }

  async addCard(column, input) {
    const text = input.value.trim();
    if (!text) return;
    input.value = ""; // at once: the next card may be typed while this one is on its way
    const card = await this.change("add the card", "POST", "/entries", { column, text });
    if (!card && !input.value) input.value = text;
  }

  async addAction(text) {
    const { title, assignee } = parseTaskInput(text);
    if (!title) return;
    const fields = assignee ? { title, assignee } : { title };
    const input = $("retro-action-title");
    input.value = "";
    if (!(await this.change("add the action", "POST", "/actions", fields)) && !input.value) input.value = text;
  }

  vote(group) {
    if (group) return this.change("vote", "POST", "/votes", { group });
    return null;
  }

  unvote(group) {
    if (group) return this.change("take the vote back", "DELETE", `/votes/${encodeURIComponent(group)}`);
    return null;
  }

  step(by) {
    const phase = neighbourPhase(this.retro?.phase, by);
    if (phase) this.change(`move the retro to ${phase}`, "POST", "/phase", { phase });
  }

  async merge(entry, stack) {
    this.merging = null;
    const moving = this.retro?.entries.find((card) => card.id === entry);
    if (!moving || !stack?.group || stack.entries.some((card) => card.id === entry)) {
      this.render(); // dropped where it was: nothing to do
      return;
    }
    if (lower(stack.column) !== lower(moving.column)) {
      this.onError(`a card joins a stack of its own column (${moving.column})`);
      this.render();
      return;
    }
    this.selected = `c:${entry}`;
    await this.change("merge the card", "POST", `/groups/${encodeURIComponent(stack.group)}/entries`, { entry });
  }

  startRenaming(stack) {
    if (!stack?.group || this.retro?.phase !== "group") return;
    this.edit(`g:${stack.group}`, {
      value: stack.ownTitle,
      placeholder: stack.title,
      maxLength: 100,
      label: "the stack's title: Enter saves, Esc cancels",
      save: (title) => this.change("rename the stack", "PATCH", `/groups/${encodeURIComponent(stack.group)}`, { title }),
    });
  }

  startEditingCard(entry) {
    if (!entry?.mine || this.retro?.phase !== "collect") return;
    this.edit(`c:${entry.id}`, {
      value: entry.text ?? "",
      maxLength: 500,
      label: "your card: Enter saves, Esc cancels",
      save: (text) => text && this.change("change the card", "PATCH", `/entries/${encodeURIComponent(entry.id)}`, { text }),
    });
  }

  /** An input in place of a title or a card's text: Enter saves, Esc (key()) cancels. */
  edit(key, { value, placeholder = "", maxLength, label, save }) {
    const input = el("input", { className: "retro-edit", maxLength, value, placeholder, "aria-label": label });
    input.addEventListener("keydown", (event) => {
      if (event.key !== "Enter") return;
      event.preventDefault();
      this.editing = null;
      save(input.value.trim());
      this.render();
      this.focus();
    });
    this.editing = { key, input };
    this.render();
    input.focus();
    input.select();
  }

  async summary() {
    const retro = this.retro;
    if (!retro) return;
    try {
      $("retro-summary").textContent = await this.session.retroSummary(retro.room, retro.id);
      $("retro-summary").hidden = false;
    } catch (error) {
      this.onError(`could not read the summary: ${error.detail}`);
    }
  }

  // ------------------------------------------------------------------ keys and clicks

  /** The selected card or stack: {key, stack, entry}, or null. */
  current() {
    const at = this.grid && locate(this.grid, this.selected);
    return at ? this.grid[at.column][at.row] : null;
  }

  select(key) {
    this.selected = key;
    this.render();
    this.focus();
  }

  /**
   * ↑/↓/←/→ or h/j/k/l move; a adds (a card while collecting, else an action); e edits
   * and Delete (or x) removes my card; m merges the card into the stack picked next
   * (Enter); t names the stack; + or v votes, - or u takes a vote back; f puts the
   * stack up for discussion (again: takes it down).
   */
  key(event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    const field = event.target.closest("input, textarea");
    if (field) {
      if (event.key === "Escape") {
        event.stopPropagation(); // back to the board, which stays open
        if (this.editing?.input === field) this.editing = null;
        this.render();
        this.focus();
      }
      return;
    }
    if (event.target.closest("button") && (event.key === "Enter" || event.key === " ")) return; // buttons click
    const item = this.current();
    const phase = this.retro?.phase;
    const move = MOVES[event.key];
    if (move && this.grid) {
      this.select(moveSelection(this.pickable(), this.selected, move));
    } else if (event.key === "Escape" && this.merging) {
      event.stopPropagation();
      this.merging = null;
      this.render();
    } else if ((event.key === "Enter" || event.key === "m") && this.merging) {
      this.merge(this.merging, item?.stack);
    } else if (event.key === "m" && phase === "group" && item?.entry) {
      this.merging = item.entry.id;
      this.render();
    } else if (event.key === "a" && phase === "collect") {
      const column = item?.entry?.column ?? this.retro.columns[0];
      this.adders.get(lower(column))?.querySelector("input").focus();
    } else if (event.key === "a" && isOpen(this.retro)) {
      $("retro-action-title").focus();
    } else if (event.key === "t" && item) {
      this.startRenaming(item.stack);
    } else if (event.key === "e" && item?.entry) {
      this.startEditingCard(item.entry);
    } else if ((event.key === "+" || event.key === "v") && phase === "vote") {
      this.vote(item?.stack.group);
    } else if ((event.key === "-" || event.key === "u") && phase === "vote") {
      this.unvote(item?.stack.group);
    } else if (event.key === "f" && phase === "discuss" && this.facilitating() && item?.stack.group) {
      const group = item.stack.focused ? null : item.stack.group; // f again: nothing under discussion
      this.change("focus the stack", "POST", "/focus", { group });
    } else if ((event.key === "Delete" || event.key === "x") && phase === "collect" && item?.entry?.mine) {
      this.change("delete the card", "DELETE", `/entries/${encodeURIComponent(item.entry.id)}`);
    } else {
      return;
    }
    event.preventDefault();
  }

  /** Where the keys may go: while merging, the cards of the merged card's column only. */
  pickable() {
    if (!this.merging) return this.grid;
    const at = locate(this.grid, `c:${this.merging}`);
    return this.grid.map((column, index) => (at === null || index === at.column ? column : []));
  }

  click(event) {
    const button = event.target.closest("button[data-action]");
    const action = button?.dataset.action;
    if (action === "next") return this.step(1);
    if (action === "back") return this.step(-1);
    if (action === "join") return this.change("take part", "POST", "/join", {});
    if (action === "summary") return this.summary();
    if (action === "happy") return this.change("score happiness", "POST", "/happiness", { score: Number(button.dataset.score) });
    const stackNode = event.target.closest("[data-stack]");
    const stack = stackNode ? this.stacks.get(stackNode.dataset.stack) : null;
    if (!stack) return undefined;
    if (this.merging) return this.merge(this.merging, stack); // the card goes where the click was
    const nav = event.target.closest("[data-nav]") ?? stackNode.querySelector("[data-nav]");
    if (nav) this.selected = nav.dataset.nav;
    const entry = this.current()?.entry;
    if (action === "vote") this.vote(stack.group);
    else if (action === "unvote") this.unvote(stack.group);
    else if (action === "focus") this.change("focus the stack", "POST", "/focus", { group: stack.group });
    else if (action === "merge" && entry) this.merging = entry.id;
    else if (action === "delete" && entry) this.change("delete the card", "DELETE", `/entries/${encodeURIComponent(entry.id)}`);
    else if (action === "rename") return this.startRenaming(stack);
    else if (action === "edit" && entry) return this.startEditingCard(entry);
    this.render();
    this.focus(); // the keys stay on the board, whatever the click redrew
    return undefined;
  }

  /** Whether what `key` names may still be edited on `retro`, once read again. */
  editable(retro, key) {
    const [kind, id] = key.split(":");
    if (kind === "g") return retro.phase === "group" && retro.groups.some((group) => group.id === id);
    return retro.phase === "collect" && retro.entries.some((entry) => entry.id === id && entry.mine);
  }

  facilitating() {
    return this.retro !== null && lower(this.retro.facilitator) === this.me;
  }

  // ------------------------------------------------------------------ drawing

  render() {
    const board = $("retro-board");
    const active = document.activeElement;
    const keys = $("retro").contains(active) && (active === $("retro") || active.hasAttribute("data-nav"));
    const typing = board.contains(active) && active.tagName === "INPUT" ? { node: active, from: active.selectionStart, to: active.selectionEnd } : null;
    const retro = this.retro;
    const open = isOpen(retro);
    $("retro-toggle").classList.toggle("live", open);
    $("retro-empty").hidden = retro !== null;
    $("retro-start-form").hidden = open || this.room === null || !this.canStart();
    for (const id of ["retro-heading", "retro-facilitator", "retro-phases", "retro-hint", "retro-controls", "retro-board", "retro-actions", "retro-happiness"]) {
      $(id).hidden = retro === null;
    }
    if (retro === null) {
      this.grid = null;
      board.replaceChildren();
      $("retro-summary").hidden = true;
      return;
    }
    const layout = boardLayout(retro);
    const grid = navigation(layout, retro.phase);
    this.selected = keepSelection(this.grid, grid, this.selected);
    this.grid = grid;
    this.stacks = new Map(layout.columns.flatMap((column) => column.stacks.map((stack) => [stack.key, stack])));
    if (this.merging && !locate(grid, `c:${this.merging}`)) this.merging = null;
    if (this.editing && !this.editable(retro, this.editing.key)) this.editing = null;

    $("retro-title").textContent = retro.title;
    $("retro-facilitator").textContent = `facilitator ${retro.facilitator} · ${retro.participants.length} taking part${retro.anonymous ? " · anonymous" : ""}`;
    $("retro-phases").replaceChildren(
      ...PHASES.flatMap((phase, index) => [
        index ? " › " : null,
        el("span", { className: phase === retro.phase ? "retro-phase current" : "retro-phase", "aria-current": phase === retro.phase ? "step" : null }, phase),
      ]).filter(Boolean),
    );
    $("retro-hint").textContent = this.merging ? "merging: pick the stack to put the card in (Enter or a click), Esc cancels" : PHASE_HINTS[retro.phase];
    this.renderControls(retro, open);
    board.classList.toggle("ranked", layout.ranked);
    board.classList.toggle("merging", this.merging !== null);
    board.replaceChildren(...layout.columns.map((column) => this.column(retro, column)));
    this.renderActions(retro, open);
    this.renderHappiness(retro, open);
    if (typing && typing.node.isConnected) {
      typing.node.focus();
      typing.node.setSelectionRange(typing.from, typing.to);
    } else if (keys) this.focus();
  }

  renderControls(retro, open) {
    const back = neighbourPhase(retro.phase, -1);
    const next = neighbourPhase(retro.phase, 1);
    const facilitating = this.facilitating();
    const joined = retro.participants.some((name) => lower(name) === this.me);
    $("retro-back").hidden = !facilitating || !open || back === null;
    $("retro-back").textContent = `◂ ${back ?? ""}`;
    $("retro-back").title = `back to ${back}: entries, stacks and votes stay`;
    $("retro-next").hidden = !facilitating || !open || next === null;
    $("retro-next").textContent = next === "closed" ? "close the retro ▸" : `${next} ▸`;
    $("retro-join").hidden = !open || joined;
    $("retro-votes-left").hidden = retro.phase !== "vote";
    $("retro-votes-left").replaceChildren(
      el("span", { className: "retro-dots", "aria-hidden": "true" }, budgetDots(retro.votes_left, retro.votes_per_participant)),
      ` ${votesLeftText(retro)}`,
    );
    $("retro-summary-button").hidden = open;
    if (open) $("retro-summary").hidden = true;
  }

  column(retro, column) {
    const key = lower(column.name);
    const adding = retro.phase === "collect";
    let adder = this.adders.get(key);
    if (adding && !adder) {
      const input = el("input", { maxLength: 500, autoComplete: "off", placeholder: `add to ${column.name} (a)`, "aria-label": `new card in ${column.name}` });
      adder = el("form", { className: "retro-add" }, input);
      adder.addEventListener("submit", (event) => {
        event.preventDefault();
        this.addCard(column.name, input);
      });
      this.adders.set(key, adder);
    }
    return el(
      "section",
      { className: "retro-column", "aria-label": column.name },
      el("h3", {}, column.name, el("span", { className: "dim" }, ` ${column.stacks.reduce((sum, item) => sum + item.entries.length, 0)} cards`)),
      el("ul", { className: "retro-stacks" }, ...column.stacks.map((stack) => this.stack(retro, stack))),
      adding ? adder : null,
    );
  }

  /** A stack: its head (title, votes, controls) over its cards; in collect a lone card. */
  stack(retro, stack) {
    const phase = retro.phase;
    const byStack = !(phase === "collect" || phase === "group");
    const selected = byStack && stack.key === this.selected;
    const many = stack.entries.length > 1 || phase !== "collect";
    const node = el("li", {
      className: `retro-stack${stack.focused ? " focused" : ""}${selected ? " selected" : ""}${stack.entries.length > 1 ? " stacked" : ""}`,
      "aria-label": stack.focused ? `${stack.title}: being discussed` : stack.title,
      dataset: { stack: stack.key },
    });
    if (byStack) {
      node.dataset.nav = stack.key;
      node.tabIndex = selected ? 0 : -1;
    }
    if (many) node.append(this.stackHead(retro, stack));
    // A lone card whose text is its stack's title says it once, unless its author is shown.
    const said = byStack && stack.entries.length === 1 && !stack.ownTitle && !stack.entries[0].author;
    if (!said) node.append(el("ul", { className: "retro-cards" }, ...stack.entries.map((entry) => this.card(retro, stack, entry, byStack))));
    return node;
  }

  stackHead(retro, stack) {
    const phase = retro.phase;
    const head = el("div", { className: "retro-stack-head" });
    if (stack.group && this.editing?.key === `g:${stack.group}`) head.append(this.editing.input);
    else if (phase === "group" && stack.group && stack.entries.length === 1 && !stack.ownTitle) {
      // A lone card needs no title yet: its text says it.
      head.append(el("button", { type: "button", className: "retro-stack-title untitled link", dataset: { action: "rename" }, title: "name the stack (t)", "aria-label": `name the stack of ${stack.title}` }, "name…"));
    } else if (phase === "group" && stack.group) {
      head.append(el("button", { type: "button", className: "retro-stack-title link", dataset: { action: "rename" }, title: "rename the stack (t)" }, stack.title));
    } else {
      head.append(el("span", { className: "retro-stack-title" }, stack.title));
    }
    if (stack.focused) head.append(el("span", { className: "retro-focus-mark" }, " ◆ discussing"));
    if (stack.votes !== null) head.append(el("span", { className: "retro-votes" }, ` ${stack.votes === 1 ? "1 vote" : `${stack.votes} votes`}`));
    if (stack.mine) {
      head.append(" ", el("span", { className: "retro-dots mine", title: `your votes: ${stack.mine}` }, voteDots(stack.mine)),
        el("span", { className: "sr-only" }, ` ${stack.mine} of your votes`));
    }
    if (phase === "vote" && stack.group) {
      head.append(
        el("button", { type: "button", className: "retro-vote", dataset: { action: "vote" }, disabled: retro.votes_left <= 0, "aria-label": `vote for ${stack.title} (+)` }, "+"),
        el("button", { type: "button", className: "retro-vote", dataset: { action: "unvote" }, disabled: !stack.mine, "aria-label": `take a vote back from ${stack.title} (-)` }, "−"),
      );
    }
    if (phase === "discuss" && this.facilitating() && stack.group && !stack.focused) {
      head.append(el("button", { type: "button", className: "retro-focus", dataset: { action: "focus" }, title: "discuss this stack (f)" }, "discuss"));
    }
    return head;
  }

  card(retro, stack, entry, byStack) {
    const key = `c:${entry.id}`;
    const selected = !byStack && key === this.selected;
    const hidden = entry.text === null;
    const node = el(
      "li",
      {
        className: `retro-card${entry.mine ? " mine" : ""}${hidden ? " face-down" : ""}${selected ? " selected" : ""}${this.merging === entry.id ? " moving" : ""}`,
        "aria-label": hidden ? "a card face down: its text shows once grouping" : null,
      },
      this.editing?.key === key ? this.editing.input : el("span", { className: "retro-card-text" }, hidden ? "▒▒▒▒▒▒" : entry.text),
      entry.author ? el("span", { className: "retro-author" }, ` — ${entry.author}`) : null,
      entry.mine ? el("span", { className: "sr-only" }, " (yours)") : null,
    );
    if (!byStack) {
      node.dataset.nav = key;
      node.tabIndex = selected ? 0 : -1;
      if (retro.phase === "group" && !this.merging) {
        node.append(el("button", { type: "button", className: "retro-card-action", dataset: { action: "merge" }, title: "merge into another stack (m)" }, "merge"));
      }
      if (retro.phase === "collect" && entry.mine && this.editing?.key !== key) {
        node.append(
          el("button", { type: "button", className: "retro-card-action", dataset: { action: "edit" }, "aria-label": "change your card (e)" }, "edit"),
          el("button", { type: "button", className: "retro-card-action", dataset: { action: "delete" }, "aria-label": "delete your card (Delete)" }, "×"),
        );
      }
    }
    return node;
  }

  renderActions(retro, open) {
    const task = (item) =>
      el(
        "li",
        { className: `retro-action ${item.status}` },
        el("span", { className: "task-status" }, STATUS_MARKS[item.status] ?? "[ ]"),
        ` #${item.number} `,
        el("span", { className: "task-title" }, item.title),
        item.assignee ? el("span", { className: "task-assignee" }, ` @${item.assignee}`) : null,
      );
    $("retro-action-list").replaceChildren(...retro.actions.map(task));
    $("retro-action-none").hidden = retro.actions.length > 0;
    $("retro-action-form").hidden = !open;
    $("retro-carried").replaceChildren(...retro.carried_over.map(task));
    $("retro-carried-heading").hidden = retro.carried_over.length === 0;
  }

  fill(width) {
    const fill = el("span", { className: "poll-fill" });
    fill.style.width = `${width}%`;
    return fill;
  }

  renderHappiness(retro, open) {
    const mine = retro.happiness?.mine ?? null;
    $("retro-happy").hidden = !open;
    if (!$("retro-happy").children.length) {
      // Built once: a click's button stays, and so does the focus on it.
      $("retro-happy").append(
        ...[1, 2, 3, 4, 5].map((score) =>
          el("button", { type: "button", className: "retro-score", dataset: { action: "happy", score: String(score) }, "aria-label": `happiness ${score} of 5` }, `${score} ${HAPPINESS_FACES[score]}`),
        ),
      );
    }
    for (const button of $("retro-happy").children) button.setAttribute("aria-pressed", String(Number(button.dataset.score) === mine));
    $("retro-happy-facts").textContent = `${happinessFacts(retro)}${mine ? ` · yours: ${mine}` : ""}`;
    const bars = histogramBars(retro.happiness);
    $("retro-histogram").hidden = bars === null;
    $("retro-histogram").replaceChildren(
      ...(bars ?? []).map((bar) =>
        el(
          "li",
          { className: "retro-bar", "aria-label": `${bar.score}: ${bar.count}` },
          el("span", { className: "retro-bar-score" }, `${bar.score} ${bar.face}`),
          el("span", { className: "poll-bar", "aria-hidden": "true" }, this.fill(bar.width)),
          el("span", { className: "retro-bar-count" }, String(bar.count)),
        ),
      ),
    );
  }
}
