// node --test: tasks' status cycle, the add field, task events' lines and notices.
import assert from "node:assert/strict";
import { test } from "node:test";

import { noticeActions, noticeText } from "../../termrooms/client/js/notices.js";
import { nextStatus, parseTaskInput, STATUS_MARKS, TASK_STATUSES } from "../../termrooms/client/js/tasks.js";
import { systemText } from "../../termrooms/client/js/text.js";

const task = (fields = {}) => ({ id: "42", number: 3, title: "buy milk", status: "pending", assignee: null, room: "general", ...fields });
const event = (type, fields = {}) => ({ type, id: "900", room: "general", seq: 7, user: "ada", ...fields });

test("a toggle walks pending, in progress, completed, and round again", () => {
  assert.equal(nextStatus("pending"), "in_progress");
  assert.equal(nextStatus("in_progress"), "completed");
  assert.equal(nextStatus("completed"), "pending");
  for (const status of TASK_STATUSES) assert.ok(STATUS_MARKS[status], `a mark for ${status}`);
});

test("a trailing @user in the add field assigns the task", () => {
  assert.deepEqual(parseTaskInput("  buy milk @bob "), { title: "buy milk", assignee: "bob" });
  assert.deepEqual(parseTaskInput("mail @bob about it"), { title: "mail @bob about it", assignee: null });
  assert.deepEqual(parseTaskInput("@bob"), { title: "@bob", assignee: null }); // a title is needed
  assert.deepEqual(parseTaskInput("ping @x"), { title: "ping @x", assignee: null }); // no such username
  assert.deepEqual(parseTaskInput("   "), { title: "", assignee: null });
});

test("task events read as system lines", () => {
  assert.equal(systemText(event("task_created", { task: task() })), "ada added task #3 buy milk");
  assert.equal(systemText(event("task_created", { task: task({ assignee: "bob" }) })), "ada added task #3 buy milk for bob");
  const updated = (fields, changes, user = "ada") => systemText(event("task_updated", { user, task: task(fields), changes }));
  assert.equal(updated({ assignee: "bob" }, ["assignee"]), "ada assigned #3 to bob");
  assert.equal(updated({}, ["assignee"]), "ada unassigned #3");
  assert.equal(updated({ status: "completed" }, ["status"], "bob"), "bob completed #3");
  assert.equal(updated({ status: "in_progress" }, ["status"], "bob"), "bob started #3");
  assert.equal(updated({ status: "pending" }, ["status"]), "ada reopened #3");
  assert.equal(updated({ title: "buy oat milk" }, ["title"]), "ada renamed #3 to buy oat milk");
  assert.equal(updated({ status: "completed", assignee: "bob" }, ["status", "assignee"]), "ada completed #3, assigned #3 to bob");
  assert.equal(updated({}, ["description"]), "ada edited the description of #3");
  assert.equal(updated({}, []), "ada changed #3");
  assert.equal(systemText(event("task_deleted", { target: "42" }), task()), "ada deleted task #3 buy milk");
  assert.equal(systemText(event("task_deleted", { target: "42" })), "ada deleted a task");
});

test("a notice marks its room unless in view, and notifies only a hidden tab that allowed it", () => {
  assert.deepEqual(noticeActions({ active: true, hidden: false, permission: "granted" }), { mark: false, notify: false });
  assert.deepEqual(noticeActions({ active: false, hidden: false, permission: "granted" }), { mark: true, notify: false });
  assert.deepEqual(noticeActions({ active: true, hidden: true, permission: "granted" }), { mark: true, notify: true });
  assert.deepEqual(noticeActions({ active: false, hidden: true, permission: "default" }), { mark: true, notify: false });
  assert.deepEqual(noticeActions({ active: false, hidden: true, permission: "denied" }), { mark: true, notify: false });
});

test("a notice's browser notification says what happened, one per event", () => {
  const assigned = event("task_updated", { task: task({ assignee: "bob" }), changes: ["assignee"] });
  assert.deepEqual(noticeText({ type: "notify", reason: "task_assigned", room: "general", event: assigned }), {
    title: "a task for you in #general",
    body: "ada assigned #3 to bob",
    tag: "termrooms-900",
  });
  // dm and mention frames carry the message: the same path words them.
  const message = event("message", { body: "@bob lunch?", mentions: ["bob"] });
  assert.deepEqual(noticeText({ type: "notify", reason: "mention", room: "general", event: message }), {
    title: "you were mentioned in #general",
    body: "<ada> @bob lunch?",
    tag: "termrooms-900",
  });
});
