// Editing one's own messages: which message Up on an empty input line edits, what an
// edit sends, and how a `message_edited` event changes the message it points at.
// Pure: `node --test` checks it (tests/js/).

const lower = (name) => String(name).toLowerCase();

/** The newest message of `me` among a room's events that is still there to edit, or null. */
export function lastOwnMessage(events, me) {
  let newest = null;
  for (const event of events) {
    if (event.type !== "message" || event.body === null || lower(event.user ?? "") !== lower(me)) continue;
    if (newest === null || event.seq > newest.seq) newest = event;
  }
  return newest;
}

/**
 * What submitting the edit line does: null to cancel (nothing typed, or nothing changed:
 * an edit that changes nothing is not worth an event), else the `edit` frame to send.
 */
export function editFrame(editing, text, ref) {
  const body = text.replace(/\s+$/, "");
  if (!body.trim() || body === editing.body) return null;
  return { type: "edit", room: editing.room, id: editing.id, body, ref };
}

/**
 * A message as a `message_edited` event shows it now: its body (null once deleted),
 * mentions and edit time. Returns the changed message, or null when nothing changed.
 */
export function applyEdit(message, edited) {
  if (message.edited_at === edited.edited_at && message.body === edited.body) return null;
  return { ...message, body: edited.body, mentions: edited.mentions ?? [], edited_at: edited.edited_at };
}
