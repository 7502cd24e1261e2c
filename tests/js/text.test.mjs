// node --test: the client's pure text helpers.
import assert from "node:assert/strict";
import { test } from "node:test";

import { formatDuration, linkify, NICK_COLOURS, nickColour, sortMembers, systemText } from "../../termrooms/client/js/text.js";

test("a nick's colour is stable, case-blind and in range", () => {
  assert.equal(nickColour("Alice"), nickColour("alice"));
  for (const name of ["alice", "bob", "carol", "dave", "x"]) {
    const colour = nickColour(name);
    assert.ok(Number.isInteger(colour) && colour >= 0 && colour < NICK_COLOURS);
  }
  const spread = new Set(["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"].map(nickColour));
  assert.ok(spread.size >= 4, "names spread over the palette");
});

test("only http and https become links, without trailing punctuation", () => {
  assert.deepEqual(linkify("see https://example.org/a?b=1."), [
    { text: "see " },
    { text: "https://example.org/a?b=1", href: "https://example.org/a?b=1" },
    { text: "." },
  ]);
  assert.deepEqual(linkify("javascript:alert(1) data:text/html,x"), [{ text: "javascript:alert(1) data:text/html,x" }]);
  assert.deepEqual(linkify("(http://a.example/x)"), [
    { text: "(" },
    { text: "http://a.example/x", href: "http://a.example/x" },
    { text: ")" },
  ]);
  assert.deepEqual(linkify("https://en.wikipedia.org/wiki/Foo_(bar)"), [
    { text: "https://en.wikipedia.org/wiki/Foo_(bar)", href: "https://en.wikipedia.org/wiki/Foo_(bar)" },
  ]);
  assert.deepEqual(linkify('<img src=x onerror="https://evil">'), [
    { text: '<img src=x onerror="' },
    { text: "https://evil", href: "https://evil" },
    { text: '">' },
  ]);
  assert.deepEqual(linkify("http://"), [{ text: "http://" }]);
});

test("system lines say who did what", () => {
  const base = { room: "general", user: "alice" };
  assert.equal(systemText({ ...base, type: "message", body: "hi" }), null);
  assert.equal(systemText({ ...base, type: "member_joined" }), "alice joined general");
  assert.equal(systemText({ ...base, type: "topic_changed", topic: "" }), "alice cleared the topic");
  assert.equal(
    systemText({ ...base, type: "member_banned", target: "bob", duration_s: 3600, reason: "spam" }),
    "bob was banned by alice for 1h (spam)",
  );
  assert.equal(systemText({ ...base, type: "role_changed", target: "bob", role: "moderator" }), "alice made bob a moderator");
});

test("durations read short", () => {
  assert.equal(formatDuration(90), "1m 30s");
  assert.equal(formatDuration(86400), "1d");
  assert.equal(formatDuration(0), "0s");
});

test("participants sort by role, then online, then name", () => {
  const sorted = sortMembers([
    { username: "zed", role: "member", online: true },
    { username: "amy", role: "member", online: false },
    { username: "bob", role: "owner", online: false },
    { username: "cat", role: "moderator", online: true },
    { username: "Abe", role: "member", online: true },
  ]);
  assert.deepEqual(sorted.map((member) => member.username), ["bob", "cat", "Abe", "zed", "amy"]);
});
