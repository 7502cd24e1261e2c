// Polls in the stream: the line of each poll_created event carries a small bar chart of
// the poll's results, kept current in place by `poll_update` frames and the poll_closed
// event. Frames and events carry no one's choices (`mine` is null), so the caller's own
// come from the last HTTP answer: the poll read when its chart is drawn and after each
// reconnect, and each vote's answer.

import { el } from "./dom.js";
import { barWidths, nextChoices, pollFacts } from "./polls.js";
import { dayTime } from "./text.js";

const $ = (id) => document.getElementById(id);
const lower = (name) => String(name).toLowerCase();
const MARKS = { single: ["( )", "(•)"], multiple: ["[ ]", "[x]"] };

export class PollBoard {
  /** `onError(room, text)` tells the user what failed in that room. */
  constructor({ session, onError }) {
    this.session = session;
    this.onError = onError;
    this.polls = new Map(); // poll id -> {poll, mine, chart, voting}
  }

  bind(signal) {
    $("log").addEventListener("click", (event) => {
      const option = event.target.closest(".poll-option");
      if (option) this.choose(option.closest(".poll").dataset.poll, Number(option.dataset.index));
    }, { signal });
    $("log").addEventListener("keydown", (event) => this.key(event), { signal });
  }

  /** The chart for a poll_created event's poll; the poll is read, for `mine` and news. */
  chart(poll) {
    const held = { poll, mine: null, chart: this.build(poll), voting: false };
    this.polls.set(poll.id, held);
    this.render(held);
    this.read(held);
    return held.chart;
  }

  /** Results from a frame or a poll_closed event: ours stay as last answered. */
  update(poll) {
    const held = this.polls.get(poll.id);
    if (!held || (held.poll.closed && !poll.closed)) return; // a closed poll's results are final
    held.poll = poll;
    this.render(held);
  }

  /** Reconnected: the open polls may have had votes while away. */
  reload() {
    for (const held of this.polls.values()) if (!held.poll.closed) this.read(held);
  }

  /** The room is gone from the client: its polls with it. */
  dropRoom(name) {
    for (const [id, held] of this.polls) if (lower(held.poll.room) === lower(name)) this.polls.delete(id);
  }

  async read(held) {
    try {
      this.answered(held, await this.session.poll(held.poll.room, held.poll.id));
    } catch (error) {
      if (error.status !== 404) this.onError(held.poll.room, `could not read the poll: ${error.detail}`);
    }
  }

  answered(held, poll) {
    held.mine = poll.mine;
    this.update(poll);
  }

  /** Option `index` chosen: a vote as nextChoices has it (one at a time per poll). */
  async choose(id, index) {
    const held = this.polls.get(id);
    if (!held || held.voting) return;
    held.voting = true;
    this.render(held);
    try {
      if (held.mine === null) await this.read(held); // what is being toggled
      const choices = nextChoices(held.poll, held.mine, index);
      this.answered(held, await this.session.vote(held.poll.room, id, choices));
    } catch (error) {
      this.onError(held.poll.room, `could not vote in ${held.poll.question}: ${error.detail}`);
    } finally {
      held.voting = false;
      this.render(held);
    }
  }

  /** Give the keys to the newest poll in `events` (a room's lines); false when none. */
  focusNewest(events) {
    const charts = events.querySelectorAll(".poll");
    const chart = charts[charts.length - 1];
    if (!chart) return false;
    this.focusOption(chart, this.polls.get(chart.dataset.poll)?.mine?.[0] ?? 0);
    return true;
  }

  focusOption(chart, index) {
    chart.querySelector(`.poll-option[data-index="${index}"]`)?.focus();
  }

  /** In a poll: 1-9 (0 for the tenth) choose, ↑/↓ or j/k move, Esc goes back to the input line. */
  key(event) {
    const option = event.target.closest(".poll-option");
    if (!option || event.altKey || event.ctrlKey || event.metaKey) return;
    const chart = option.closest(".poll");
    const index = Number(option.dataset.index);
    const count = chart.querySelectorAll(".poll-option").length;
    const digit = /^[0-9]$/.test(event.key) ? (Number(event.key) + 9) % 10 : -1;
    if (digit >= 0 && digit < count) {
      this.focusOption(chart, digit);
      this.choose(chart.dataset.poll, digit);
    } else if (event.key === "ArrowDown" || event.key === "j") {
      this.focusOption(chart, Math.min(count - 1, index + 1));
    } else if (event.key === "ArrowUp" || event.key === "k") {
      this.focusOption(chart, Math.max(0, index - 1));
    } else if (event.key === "Escape") {
      event.stopPropagation(); // only the keys go back: the panels stay as they are
      $("input").focus();
    } else {
      return; // Space and Enter click the option, as on any button
    }
    event.preventDefault();
  }

  /** The chart's nodes, once; render() fills them in place, so focus survives updates. */
  build(poll) {
    return el(
      "div",
      {
        className: "poll",
        role: "group",
        "aria-label": `poll: ${poll.question}`,
        title: "Alt+V: vote by keyboard (1-9, or ↑/↓ and Space), Esc: back",
        dataset: { poll: poll.id },
      },
      ...poll.options.map((option, index) =>
        el(
          "button",
          { type: "button", className: "poll-option", tabIndex: -1, dataset: { index: String(index) } },
          el("span", { className: "poll-mark" }),
          " ",
          el("span", { className: "poll-number" }, String(index + 1)),
          " ",
          el("span", { className: "poll-text" }, option.text),
          el("span", { className: "poll-bar", "aria-hidden": "true" }, el("span", { className: "poll-fill" })),
          el("span", { className: "poll-count" }),
          el("span", { className: "poll-voters" }),
        ),
      ),
      el("p", { className: "poll-facts" }),
    );
  }

  render({ poll, mine, chart, voting }) {
    const widths = barWidths(poll);
    const marks = MARKS[poll.multiple ? "multiple" : "single"];
    chart.classList.toggle("closed", poll.closed);
    chart.classList.toggle("voting", voting);
    chart.querySelectorAll(".poll-option").forEach((button, index) => {
      const option = poll.options[index];
      const chosen = mine?.includes(index) ?? false;
      button.classList.toggle("mine", chosen);
      button.setAttribute("aria-pressed", String(chosen));
      button.querySelector(".poll-mark").textContent = marks[Number(chosen)];
      button.querySelector(".poll-fill").style.width = `${widths[index]}%`;
      button.querySelector(".poll-count").textContent = String(option.votes);
      button.querySelector(".poll-voters").textContent = option.voters?.join(", ") ?? "";
    });
    chart.querySelector(".poll-facts").textContent = pollFacts(poll, poll.closes_at && dayTime(poll.closes_at));
  }
}
