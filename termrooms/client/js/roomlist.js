// The room list: rooms first, as they were joined, then direct rooms by the peer's
// name; each shown by its label. Pure: `node --test` checks it (tests/js/).

/** The server names every direct room, and only those, dm-... (any case). */
export function isDirect(name) {
  return /^dm-/i.test(name);
}

/** What a room is called on screen: "#name", or "@peer" for a direct room. */
export function roomLabel(room) {
  return isDirect(room.name) && room.peer ? `@${room.peer}` : `#${room.name}`;
}

/**
 * The rooms as the list shows them: {rooms, direct}. Direct rooms go by their peer's
 * name; one whose peer is not known yet goes last, by its own name.
 */
export function groupRooms(rooms) {
  const direct = rooms.filter((room) => isDirect(room.name));
  const byName = (a, b) => a.localeCompare(b, undefined, { sensitivity: "base" });
  direct.sort((a, b) => Number(!a.peer) - Number(!b.peer) || byName(a.peer ?? a.name, b.peer ?? b.name));
  return { rooms: rooms.filter((room) => !isDirect(room.name)), direct };
}

/** The rooms in the order Alt+Up/Down steps through them: the list's, top to bottom. */
export function listOrder(rooms) {
  const { rooms: named, direct } = groupRooms(rooms);
  return [...named, ...direct];
}
