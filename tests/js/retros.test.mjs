// node --test: the retro board's layout, where its keys move, vote dots, the happiness
// histogram and retro events' lines.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  boardLayout,
  budgetDots,
  happinessFacts,
  histogramBars,
  isOpen,
  keepSelection,
  moveSelection,
  navigation,
  neighbourPhase,
  retroEventText,
  voteDots,
  votesLeftText,
} from "../../termrooms/client/js/retros.js";
import { systemText } from "../../termrooms/client/js/text.js";

const entry = (id, column, text, fields = {}) => ({ id, column, text, mine: false, author: null, group: null, ...fields });
const retro = (fields = {}) => ({
  id: "9",
  room: "team",
  title: "Sprint 12",
  phase: "collect",
  facilitator: "ada",
  columns: ["went well", "to improve", "ideas"],
  votes_per_participant: 3,
  anonymous: true,
  participants: ["ada", "bob"],
  entries: [],
  groups: [],
  my_votes: {},
  votes_left: 3,
  focus: null,
  happiness: { count: 0, histogram: null, mine: null },
  actions: [],
  carried_over: [],
  created_at: "2026-12-04T05:00:00Z",
  closed_at: null,
  ...fields,
});

const keys = (grid) => grid.map((column) => column.map((item) => item.key));

test("while collecting, each card stands alone in its column, face down when not mine", () => {
  const board = retro({
    entries: [entry("1", "went well", "pairing", { mine: true }), entry("2", "to improve", null), entry("3", "went well", null)],
  });
  const layout = boardLayout(board);
  assert.equal(layout.ranked, false);
  assert.deepEqual(layout.columns.map((column) => column.name), ["went well", "to improve", "ideas"]);
  assert.deepEqual(layout.columns.map((column) => column.stacks.map((item) => item.key)), [["e:1", "e:3"], ["e:2"], []]);
  assert.equal(layout.columns[0].stacks[1].entries[0].text, null); // the view draws it face down
  assert.deepEqual(keys(navigation(layout, "collect")), [["c:1", "c:3"], ["c:2"], []]);
});

test("grouped, a stack holds its cards, titled by its own title or its first card", () => {
  const board = retro({
    phase: "group",
    entries: [entry("1", "went well", "pairing", { group: "11" }), entry("2", "went well", "reviews", { group: "11" }), entry("3", "ideas", "demo day", { group: "13" })],
    groups: [
      { id: "11", column: "went well", title: "", entries: ["1", "2"], votes: null },
      { id: "13", column: "ideas", title: "Demos", entries: ["3"], votes: null },
    ],
  });
  const layout = boardLayout(board);
  const [well, , ideas] = layout.columns;
  assert.equal(well.stacks[0].title, "pairing");
  assert.deepEqual(well.stacks[0].entries.map((card) => card.id), ["1", "2"]);
  assert.equal(ideas.stacks[0].title, "Demos");
  assert.deepEqual(keys(navigation(layout, "group")), [["c:1", "c:2"], [], ["c:3"]]);
  assert.deepEqual(keys(navigation(layout, "vote")), [["g:11"], [], ["g:13"]]);
});

test("discussing, the stacks are one list ranked as the server sent them, the focused one marked", () => {
  const board = retro({
    phase: "discuss",
    entries: [entry("1", "went well", "pairing", { group: "11" }), entry("3", "ideas", "demo day", { group: "13" })],
    groups: [
      { id: "13", column: "ideas", title: "", entries: ["3"], votes: 4 },
      { id: "11", column: "went well", title: "", entries: ["1"], votes: 1 },
    ],
    my_votes: { 13: 2 },
    focus: "13",
  });
  const layout = boardLayout(board);
  assert.equal(layout.ranked, true);
  const stacks = layout.columns[0].stacks;
  assert.deepEqual(stacks.map((item) => [item.key, item.votes, item.mine, item.focused]), [
    ["g:13", 4, 2, true],
    ["g:11", 1, 0, false],
  ]);
});

test("the keys walk a column with j/k and cross columns with h/l, skipping empty ones", () => {
  const grid = [[{ key: "a" }, { key: "b" }, { key: "c" }], [], [{ key: "d" }]];
  assert.equal(moveSelection(grid, null), "a");
  assert.equal(moveSelection(grid, "a", { down: 1 }), "b");
  assert.equal(moveSelection(grid, "c", { down: 1 }), "c");
  assert.equal(moveSelection(grid, "a", { down: -1 }), "a");
  assert.equal(moveSelection(grid, "c", { right: 1 }), "d");
  assert.equal(moveSelection(grid, "d", { right: -1 }), "a");
  assert.equal(moveSelection(grid, "d", { right: 1 }), "d");
  assert.equal(moveSelection([[], []], null), null);
});

test("after a re-read the selection stays, or goes to what now stands where it stood", () => {
  const before = [[{ key: "a" }, { key: "b" }], [{ key: "c" }]];
  assert.equal(keepSelection(before, [[{ key: "b" }], [{ key: "c" }]], "b"), "b");
  assert.equal(keepSelection(before, [[{ key: "a" }], [{ key: "c" }]], "b"), "a");
  assert.equal(keepSelection(before, [[], [{ key: "c" }]], "a"), "c");
  assert.equal(keepSelection(null, [[], []], "a"), null);
});

test("vote dots: mine on a stack, and the budget filled for what is left", () => {
  assert.equal(voteDots(0), "");
  assert.equal(voteDots(2), "●●");
  assert.equal(budgetDots(1, 3), "●○○");
  assert.equal(budgetDots(3, 3), "●●●");
  assert.equal(budgetDots(0, 2), "○○");
  assert.equal(votesLeftText(retro({ votes_left: 2 })), "2 of 3 votes left");
});

test("the histogram's bars run from 5 to 1, against the most common score", () => {
  assert.equal(histogramBars({ count: 2, histogram: null, mine: 4 }), null);
  const bars = histogramBars({ count: 4, histogram: { 1: 0, 2: 1, 3: 0, 4: 2, 5: 1 }, mine: 4 });
  assert.deepEqual(bars.map((bar) => [bar.score, bar.count, bar.width]), [
    [5, 1, 50],
    [4, 2, 100],
    [3, 0, 0],
    [2, 1, 50],
    [1, 0, 0],
  ]);
  assert.equal(bars[0].face, ":D");
});

test("happiness facts say how many answered and why no histogram shows yet", () => {
  assert.equal(happinessFacts(retro()), "0 answers · the histogram shows from 3");
  assert.equal(happinessFacts(retro({ happiness: { count: 3, histogram: null, mine: 2 } })), "3 answers · the histogram shows once discussing");
  assert.equal(happinessFacts(retro({ phase: "discuss", happiness: { count: 3, histogram: { 1: 3 }, mine: 1 } })), "3 answers");
});

test("phases step one at a time, and closed goes nowhere", () => {
  assert.equal(neighbourPhase("collect", 1), "group");
  assert.equal(neighbourPhase("collect", -1), null);
  assert.equal(neighbourPhase("discuss", 1), "closed");
  assert.equal(neighbourPhase("vote", -1), "group");
  assert.equal(neighbourPhase("closed", -1), null);
  assert.equal(isOpen(retro()), true);
  assert.equal(isOpen(retro({ phase: "closed" })), false);
  assert.equal(isOpen(null), false);
});

test("retro events read as lines of the stream", () => {
  const started = { type: "retro_started", user: "ada", retro: "9", title: "Sprint 12" };
  assert.equal(systemText(started), "ada started the retro “Sprint 12”");
  assert.equal(retroEventText({ type: "retro_phase_changed", user: "ada", retro: "9", phase: "vote" }), "ada moved the retro to vote");
  const closed = { type: "retro_closed", user: "ada", retro: "9", top: [{ title: "Demos", votes: 4 }, { title: "CI", votes: 1 }] };
  assert.equal(systemText(closed), "retro closed: top “Demos” 4 votes, “CI” 1 vote");
  assert.equal(retroEventText({ type: "retro_closed", retro: "9", top: [] }), "retro closed");
});
