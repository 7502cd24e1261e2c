// node --test: timelines, backoff, input history, completion and the outbox.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Backoff, closeAction, renewDelayMs } from "../../termrooms/client/js/backoff.js";
import { Completer, completionContext } from "../../termrooms/client/js/completion.js";
import { InputHistory } from "../../termrooms/client/js/inputhistory.js";
import { Outbox } from "../../termrooms/client/js/outbox.js";
import { Timeline } from "../../termrooms/client/js/timeline.js";

const event = (seq) => ({ seq, id: String(1000 + seq), type: "message" });

test("a timeline keeps seq order and refuses duplicates", () => {
  const timeline = new Timeline();
  assert.equal(timeline.last, 0);
  assert.equal(timeline.insert(event(10)), 0);
  assert.equal(timeline.insert(event(11)), 1);
  assert.equal(timeline.insert(event(5)), 0); // an older page
  assert.equal(timeline.insert(event(7)), 1); // a replay filling a hole
  assert.equal(timeline.insert(event(11)), -1); // a duplicate delivery
  assert.deepEqual(timeline.seqs, [5, 7, 10, 11]);
  assert.equal(timeline.first, 5);
  assert.equal(timeline.last, 11);
  assert.equal(timeline.nextAfter(1), 10);
  assert.equal(timeline.nextAfter(3), null);
  assert.equal(timeline.findById("1007").seq, 7);
});

test("backoff doubles up to its cap, with jitter in the upper half", () => {
  const low = new Backoff({ baseMs: 500, capMs: 4000, random: () => 0 });
  assert.deepEqual([1, 2, 3, 4, 5].map(() => low.next()), [250, 500, 1000, 2000, 2000]);
  const high = new Backoff({ baseMs: 500, capMs: 4000, random: () => 1 });
  assert.deepEqual([1, 2, 3, 4, 5].map(() => high.next()), [500, 1000, 2000, 4000, 4000]);
  high.reset();
  assert.equal(high.next(), 500);
});

test("close codes decide how to come back", () => {
  assert.equal(closeAction(1001), "now");
  assert.equal(closeAction(4009), "now");
  assert.equal(closeAction(4001), "refresh");
  for (const code of [1006, 1008, 1011, 4008, 1000]) assert.equal(closeAction(code), "backoff");
  assert.equal(renewDelayMs(900), 720_000);
  assert.equal(renewDelayMs(2), 5000);
});

test("input history walks like a shell and keeps the draft", () => {
  const history = new InputHistory();
  history.push("one");
  history.push("two");
  history.push("two");
  assert.equal(history.up("draft"), "two");
  assert.equal(history.up("two"), "one");
  assert.equal(history.up("one"), null);
  assert.equal(history.down(), "two");
  assert.equal(history.down(), "draft");
  assert.equal(history.down(), null);
});

test("completion knows commands, rooms and nicks", () => {
  assert.equal(completionContext("/jo", 3).kind, "command");
  assert.equal(completionContext("/join ge", 8).kind, "room");
  assert.equal(completionContext("/kick al", 8).kind, "user");
  assert.equal(completionContext("hello al", 8).kind, "nick");
  const sources = { rooms: ["general", "games"], nicks: ["alice", "Albert", "bob"] };
  const completer = new Completer();
  assert.deepEqual(completer.tab("/jo", 3, sources), { text: "/join ", caret: 6 });
  completer.reset();
  assert.deepEqual(completer.tab("/join ga", 8, sources), { text: "/join games ", caret: 12 });
  completer.reset();
  assert.deepEqual(completer.tab("al", 2, sources), { text: "Albert: ", caret: 8 });
  assert.deepEqual(completer.tab("Albert: ", 8, sources), { text: "alice: ", caret: 7 });
  assert.deepEqual(completer.tab("alice: ", 7, sources), { text: "Albert: ", caret: 8 });
  completer.reset();
  assert.deepEqual(completer.tab("hi bo there", 5, sources), { text: "hi bob there", caret: 7 });
  completer.reset();
  assert.equal(completer.tab("xyz", 3, sources), null);
});

test("the outbox keeps pending messages in order, across a reload", () => {
  const storage = new Map();
  const sessionLike = {
    getItem: (key) => storage.get(key) ?? null,
    setItem: (key, value) => storage.set(key, value),
    removeItem: (key) => storage.delete(key),
  };
  const outbox = new Outbox(sessionLike);
  outbox.add("general", "first", "a");
  outbox.add("general", "second", "b");
  outbox.add("other", "third", "c");
  const reloaded = new Outbox(sessionLike);
  assert.deepEqual(reloaded.pending().map((entry) => entry.clientMsgId), ["a", "b", "c"]);
  assert.equal(reloaded.settle("a"), true);
  assert.equal(reloaded.settle("a"), false);
  assert.deepEqual(reloaded.dropRoom("OTHER").map((entry) => entry.body), ["third"]);
  assert.deepEqual(new Outbox(sessionLike).pending().map((entry) => entry.body), ["second"]);
  sessionLike.setItem("termrooms.outbox", "{not json");
  assert.deepEqual(new Outbox(sessionLike).pending(), []);
});
