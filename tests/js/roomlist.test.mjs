// node --test: how the room list groups, orders and names rooms and direct rooms.
import assert from "node:assert/strict";
import { test } from "node:test";

import { noticeText } from "../../termrooms/client/js/notices.js";
import { groupRooms, isDirect, listOrder, roomLabel } from "../../termrooms/client/js/roomlist.js";

test("a direct room is one the server named dm-, in any case", () => {
  assert.equal(isDirect("dm-12"), true);
  assert.equal(isDirect("DM-12"), true);
  assert.equal(isDirect("dm"), false);
  assert.equal(isDirect("admin-dm-1"), false);
});

test("a direct room is called by its peer once the peer is known", () => {
  assert.equal(roomLabel({ name: "lobby" }), "#lobby");
  assert.equal(roomLabel({ name: "dm-3", peer: "Bob" }), "@Bob");
  assert.equal(roomLabel({ name: "dm-3", peer: null }), "#dm-3");
  assert.equal(roomLabel({ name: "lobby", peer: "bob" }), "#lobby"); // only direct rooms have peers
});

test("rooms keep their order; direct rooms follow, by peer, the unknown ones last", () => {
  const rooms = [
    { name: "zeta" },
    { name: "dm-9", peer: "carl" },
    { name: "dm-2", peer: null },
    { name: "alpha" },
    { name: "dm-7", peer: "Bob" },
    { name: "dm-1", peer: "ada" },
  ];
  const { rooms: named, direct } = groupRooms(rooms);
  assert.deepEqual(named.map((room) => room.name), ["zeta", "alpha"]);
  assert.deepEqual(direct.map((room) => room.name), ["dm-1", "dm-7", "dm-9", "dm-2"]);
  assert.deepEqual(listOrder(rooms).map((room) => room.name), ["zeta", "alpha", "dm-1", "dm-7", "dm-9", "dm-2"]);
  assert.deepEqual(rooms[0].name, "zeta"); // the caller's array is left as it was
  assert.deepEqual(groupRooms([]), { rooms: [], direct: [] });
});

test("a direct message's browser notification says whom it is from, not the room's name", () => {
  const event = { type: "message", id: "41", user: "ada", body: "<b>psst</b>" };
  assert.deepEqual(noticeText({ type: "notify", reason: "dm", room: "dm-3", event }), {
    title: "a direct message from ada",
    body: "<ada> <b>psst</b>",
    tag: "termrooms-41",
  });
});
