// node --test: polls' result bars, what a choice does to a vote, and poll events' lines.
import assert from "node:assert/strict";
import { test } from "node:test";

import { barWidths, nextChoices, pollFacts, resultsText } from "../../termrooms/client/js/polls.js";
import { dayTime, systemText } from "../../termrooms/client/js/text.js";

const option = (text, voters) => ({ text, votes: voters.length, voters });
const poll = (fields = {}) => ({
  id: "77",
  room: "general",
  question: "Lunch?",
  options: [option("pizza", ["ada", "bob", "cy"]), option("salad", ["dee"])],
  multiple: false,
  anonymous: false,
  closed: false,
  closes_at: null,
  created_by: "ada",
  voters: 4,
  mine: null,
  ...fields,
});

test("a bar is its option's share of the voters, in whole percent", () => {
  assert.deepEqual(barWidths(poll()), [75, 25]);
  assert.deepEqual(barWidths(poll({ options: [option("a", []), option("b", [])], voters: 0 })), [0, 0]);
  // Several choices: each bar against the people who voted, so together past 100.
  const several = poll({ multiple: true, options: [option("a", ["ada", "bob"]), option("b", ["ada"]), option("c", [])], voters: 3 });
  assert.deepEqual(barWidths(several), [67, 33, 0]);
});

test("one choice replaces the vote, and choosing it again withdraws", () => {
  assert.deepEqual(nextChoices(poll(), null, 1), [1]);
  assert.deepEqual(nextChoices(poll(), [], 0), [0]);
  assert.deepEqual(nextChoices(poll(), [0], 1), [1]);
  assert.deepEqual(nextChoices(poll(), [1], 1), []);
});

test("several choices toggle one at a time, in order", () => {
  const several = poll({ multiple: true });
  assert.deepEqual(nextChoices(several, null, 1), [1]);
  assert.deepEqual(nextChoices(several, [1], 0), [0, 1]);
  assert.deepEqual(nextChoices(several, [0, 1], 0), [1]);
  assert.deepEqual(nextChoices(several, [1], 1), []);
});

test("a chart's facts: its kind, its voters, and when it closes", () => {
  assert.equal(pollFacts(poll()), "one choice · 4 voters");
  assert.equal(pollFacts(poll({ multiple: true, anonymous: true, voters: 1 })), "several choices · anonymous · 1 voter");
  assert.equal(pollFacts(poll({ closes_at: "2026-12-04T14:05:00Z" }), "14:05"), "one choice · 4 voters · closes 14:05");
  assert.equal(pollFacts(poll({ closed: true }), "14:05"), "one choice · 4 voters · closed");
  assert.equal(resultsText(poll()), "pizza 3, salad 1");
});

test("a closing time reads as the time today, with its date on another day", () => {
  const now = new Date(2026, 11, 4, 9, 30);
  assert.equal(dayTime(new Date(2026, 11, 4, 14, 5).toISOString(), now), "14:05");
  assert.equal(dayTime(new Date(2026, 11, 6, 8, 0).toISOString(), now), "2026-12-06 08:00");
  assert.equal(dayTime("not a time", now), "--:--");
});

test("poll events read as system lines", () => {
  const event = (type, fields) => ({ type, id: "901", room: "general", seq: 8, user: "ada", ...fields });
  assert.equal(systemText(event("poll_created", { poll: poll({ voters: 0 }) })), "ada started a poll: Lunch?");
  assert.equal(systemText(event("poll_closed", { poll: poll({ closed: true }) })), "poll closed: Lunch? — pizza 3, salad 1");
  assert.equal(systemText(event("poll_closed", { user: null, poll: poll({ closed: true }) })), "poll closed: Lunch? — pizza 3, salad 1");
});
