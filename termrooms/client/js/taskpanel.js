// The tasks panel beside the stream: the active room's tasks, or "mine" (personal tasks
// and those assigned to me), each with a status toggle, and a field to add one. The
// list is read again whenever it may have changed: the app says when (task events,
// `task` frames, reconnects), and the server's answer is what the panel shows.

import { el } from "./dom.js";
import { nextStatus, parseTaskInput, STATUS_MARKS } from "./tasks.js";

const $ = (id) => document.getElementById(id);
const lower = (name) => String(name).toLowerCase();
const STATUS_NAMES = { pending: "pending", in_progress: "in progress", completed: "completed" };

export class TaskPanel {
  /** `isOpen()` says whether the panel shows; `onError(text)` tells the user what failed. */
  constructor({ session, isOpen, onError }) {
    this.session = session;
    this.isOpen = isOpen;
    this.onError = onError;
    this.view = "room"; // or "mine"
    this.room = null; // the active room's name
    this.tasks = [];
    this.hasMore = false;
    this.selected = null; // the id of the task the keys act on
    this.changing = new Set(); // ids whose status change is on its way
    this.loading = false;
    this.stale = false; // asked again while a read was under way
  }

  bind(signal) {
    $("tasks").addEventListener("keydown", (event) => this.key(event), { signal });
    $("task-list").addEventListener("click", (event) => {
      const item = event.target.closest(".task");
      if (!item) return;
      this.select(item.dataset.id);
      if (event.target.closest(".task-status")) this.cycle(item.dataset.id);
    }, { signal });
    $("tasks-room").addEventListener("click", () => this.setView("room"), { signal });
    $("tasks-mine").addEventListener("click", () => this.setView("mine"), { signal });
    $("task-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.add($("task-title").value);
    }, { signal });
  }

  /** The panel was opened: read the list, and take the keys. */
  opened() {
    this.reload();
    this.focus();
  }

  focus() {
    ($("task-list").querySelector('.task[tabindex="0"]') ?? $("tasks")).focus();
  }

  /** The active room is now `name` (null: none). */
  showRoom(name) {
    if (this.room !== null && name !== null && lower(this.room) === lower(name)) return;
    this.room = name;
    if (this.view !== "room") return;
    this.tasks = [];
    this.render();
    this.reload();
  }

  /** A task of `room` changed (null: a personal task): read again when it may be shown. */
  changed(room) {
    const shownRoom = this.view === "room" && room !== null && this.room !== null && lower(room) === lower(this.room);
    if (this.view === "mine" || shownRoom) this.reload();
  }

  /** A task the panel lists, by id, or null. */
  find(id) {
    return this.tasks.find((task) => task.id === id) ?? null;
  }

  setView(view) {
    if (view === this.view) return;
    this.view = view;
    this.tasks = [];
    this.render();
    this.reload();
  }

  async reload() {
    if (!this.isOpen()) return; // opening reads it
    if (this.loading) {
      this.stale = true;
      return;
    }
    this.loading = true;
    try {
      do {
        this.stale = false;
        const room = this.view === "room" ? this.room : null;
        const page = this.view === "room" && room === null ? { tasks: [], has_more: false } : await this.session.tasks(room);
        this.tasks = page.tasks;
        this.hasMore = page.has_more;
      } while (this.stale); // the answer may predate what asked again
      this.render();
    } catch (error) {
      if (error.status !== 404) this.onError(`could not list tasks: ${error.detail}`);
    } finally {
      this.loading = false;
    }
  }

  async add(text) {
    const { title, assignee } = parseTaskInput(text);
    if (!title) return;
    const fields = { title };
    if (this.view === "room") {
      if (this.room === null) {
        this.onError("join a room first: tasks here belong to the room");
        return;
      }
      fields.room = this.room;
    }
    if (assignee) fields.assignee = assignee;
    try {
      const task = await this.session.createTask(fields);
      $("task-title").value = "";
      this.selected = task.id;
      this.reload();
    } catch (error) {
      this.onError(`could not add the task: ${error.detail}`);
    }
  }

  /** Move the task to its next status (one change at a time per task). */
  async cycle(id) {
    const task = this.find(id);
    if (!task || this.changing.has(id)) return;
    this.changing.add(id);
    this.render();
    try {
      const changed = await this.session.updateTask(id, { status: nextStatus(task.status) });
      this.tasks = this.tasks.map((held) => (held.id === id ? changed : held));
    } catch (error) {
      this.onError(`could not change task #${task.number}: ${error.detail}`);
    } finally {
      this.changing.delete(id);
      this.render();
    }
  }

  select(id) {
    this.selected = id;
    this.render();
    this.focus();
  }

  move(step) {
    const index = this.tasks.findIndex((task) => task.id === this.selected);
    const next = this.tasks[Math.min(this.tasks.length - 1, Math.max(0, index + step))];
    if (next) this.select(next.id);
  }

  /** ↑/↓ or j/k move, Space or Enter moves the status on, a adds, m switches room/mine. */
  key(event) {
    if (event.altKey || event.ctrlKey || event.metaKey || event.target === $("task-title")) return;
    const inList = $("task-list").contains(event.target);
    if (inList && (event.key === "ArrowDown" || event.key === "j")) this.move(1);
    else if (inList && (event.key === "ArrowUp" || event.key === "k")) this.move(-1);
    else if (inList && (event.key === " " || event.key === "Enter")) this.cycle(this.selected);
    else if (event.key === "a") $("task-title").focus();
    else if (event.key === "m") this.setView(this.view === "room" ? "mine" : "room");
    else return;
    event.preventDefault();
  }

  render() {
    const keys = $("tasks").contains(document.activeElement) && !["INPUT", "BUTTON"].includes(document.activeElement.tagName);
    if (!this.find(this.selected)) this.selected = this.tasks[0]?.id ?? null;
    $("tasks-room").textContent = this.room === null ? "room" : `#${this.room}`;
    $("tasks-room").setAttribute("aria-pressed", String(this.view === "room"));
    $("tasks-mine").setAttribute("aria-pressed", String(this.view === "mine"));
    $("task-list").replaceChildren(...this.tasks.map((task) => this.item(task)));
    $("task-empty").hidden = this.tasks.length > 0;
    $("task-more").hidden = !this.hasMore;
    if (keys) this.focus();
  }

  item(task) {
    const next = STATUS_NAMES[nextStatus(task.status)];
    const where = this.view === "mine" && task.room ? `${task.room}#${task.number}` : `#${task.number}`;
    return el(
      "li",
      {
        className: `task ${task.status}${this.changing.has(task.id) ? " changing" : ""}`,
        tabIndex: task.id === this.selected ? 0 : -1,
        dataset: { id: task.id },
      },
      el(
        "button",
        { type: "button", className: "task-status", tabIndex: -1, title: `${STATUS_NAMES[task.status]}: click or Space for ${next}` },
        STATUS_MARKS[task.status],
      ),
      " ",
      el("span", { className: "task-number" }, where),
      " ",
      el("span", { className: "task-title" }, task.title),
      task.assignee ? " " : null,
      task.assignee ? el("span", { className: "task-assignee" }, `@${task.assignee}`) : null,
      el("span", { className: "sr-only" }, ` ${STATUS_NAMES[task.status]}`),
    );
  }
}
