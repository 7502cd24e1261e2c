// node --test: which message Up edits, what an edit sends, and how an edit lands.
import assert from "node:assert/strict";
import { test } from "node:test";

import { applyEdit, editFrame, lastOwnMessage } from "../../termrooms/client/js/edits.js";
import { noticeText } from "../../termrooms/client/js/notices.js";

const message = (seq, fields = {}) => ({ type: "message", id: `m${seq}`, seq, user: "ada", body: `text ${seq}`, edited_at: null, ...fields });

test("Up edits the newest message of one's own that is not deleted", () => {
  const events = [message(1), message(2, { user: "Bob" }), message(3, { user: "ADA" }), message(4, { body: null }), { type: "member_joined", seq: 5, user: "ada" }];
  assert.equal(lastOwnMessage(events, "ada").seq, 3);
  assert.equal(lastOwnMessage(events, "bob").seq, 2);
  assert.equal(lastOwnMessage(events, "carl"), null);
  assert.equal(lastOwnMessage([], "ada"), null);
});

test("an edit sends what changed, and nothing when nothing did", () => {
  const editing = { room: "lobby", id: "m3", body: "helo" };
  assert.deepEqual(editFrame(editing, "hello  \n", "e1"), { type: "edit", room: "lobby", id: "m3", body: "hello", ref: "e1" });
  assert.equal(editFrame(editing, "helo", "e2"), null);
  assert.equal(editFrame(editing, "   ", "e3"), null);
});

test("an edit event shows its message as it is now", () => {
  const edited = { type: "message_edited", target: "m3", body: "hello @bob", mentions: ["bob"], edited_at: "2026-12-04T10:00:00.000Z" };
  assert.deepEqual(applyEdit(message(3), edited), { ...message(3), body: "hello @bob", mentions: ["bob"], edited_at: edited.edited_at });
  const shown = applyEdit(message(3), edited);
  assert.equal(applyEdit(shown, edited), null); // the same edit twice changes nothing
  assert.equal(applyEdit(shown, { ...edited, body: null }).body, null); // deleted since
});

test("a mention an edit brought is told as the message now reads", () => {
  const frame = { type: "notify", reason: "mention", room: "lobby", event: { type: "message_edited", id: "e9", user: "ada", body: "hi @bob", target: "m3" } };
  assert.deepEqual(noticeText(frame), { title: "you were mentioned in #lobby", body: "<ada> hi @bob", tag: "termrooms-e9" });
});
