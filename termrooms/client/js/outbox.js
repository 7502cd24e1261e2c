// Messages sent but not yet acknowledged. Each keeps its client_msg_id until its ack
// (or its own message event) arrives, so a resend after any disconnect is answered
// with the original ack instead of storing it twice. The outbox is kept in the tab's
// sessionStorage, so a reload resends what was pending. Pure apart from that storage.

const STORAGE_KEY = "termrooms.outbox";

export function newClientMsgId() {
  return globalThis.crypto.randomUUID();
}

export class Outbox {
  constructor(storage = null) {
    this.storage = storage;
    this.entries = new Map();
    if (storage) {
      try {
        for (const entry of JSON.parse(storage.getItem(STORAGE_KEY) ?? "[]")) {
          this.entries.set(entry.clientMsgId, entry);
        }
      } catch {
        storage.removeItem(STORAGE_KEY);
      }
    }
  }

  add(room, body, clientMsgId = newClientMsgId(), now = Date.now()) {
    const entry = { room, body, clientMsgId, queuedAt: now };
    this.entries.set(clientMsgId, entry);
    this.save();
    return entry;
  }

  has(clientMsgId) {
    return this.entries.has(clientMsgId);
  }

  get(clientMsgId) {
    return this.entries.get(clientMsgId);
  }

  /** Done with a message: acked, or its event seen. True when it was pending. */
  settle(clientMsgId) {
    const had = this.entries.delete(clientMsgId);
    if (had) this.save();
    return had;
  }

  /** Drop every entry of a room the user can no longer post to. */
  dropRoom(room) {
    const lower = room.toLowerCase();
    const dropped = [...this.entries.values()].filter((entry) => entry.room.toLowerCase() === lower);
    for (const entry of dropped) this.entries.delete(entry.clientMsgId);
    if (dropped.length) this.save();
    return dropped;
  }

  /** Pending messages in the order they were written: the order they are resent in. */
  pending() {
    return [...this.entries.values()];
  }

  save() {
    if (this.storage) this.storage.setItem(STORAGE_KEY, JSON.stringify(this.pending()));
  }

  clear() {
    this.entries.clear();
    if (this.storage) this.storage.removeItem(STORAGE_KEY);
  }
}
