// A room's events in seq order, each seq at most once: live frames, replays after a
// reconnect and pages of older history all go through insert(), which says where the
// event belongs or that it is already there. Pure: `node --test` checks it.

export class Timeline {
  constructor() {
    this.seqs = [];
    this.events = new Map();
  }

  get size() {
    return this.seqs.length;
  }

  /** The oldest seq held, or null. */
  get first() {
    return this.seqs.length ? this.seqs[0] : null;
  }

  /** The newest seq held, or 0: what a join's `since` asks after. */
  get last() {
    return this.seqs.length ? this.seqs[this.seqs.length - 1] : 0;
  }

  has(seq) {
    return this.events.has(seq);
  }

  /** Where the event now sits (its index), or -1 when its seq was already there. */
  insert(event) {
    const seq = event.seq;
    if (this.events.has(seq)) return -1;
    this.events.set(seq, event);
    const seqs = this.seqs;
    if (!seqs.length || seq > seqs[seqs.length - 1]) {
      seqs.push(seq); // the live case
      return seqs.length - 1;
    }
    let low = 0;
    let high = seqs.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (seqs[middle] < seq) low = middle + 1;
      else high = middle;
    }
    seqs.splice(low, 0, seq);
    return low;
  }

  /** The seq held after the one at `index`, or null: the node to insert before. */
  nextAfter(index) {
    return index + 1 < this.seqs.length ? this.seqs[index + 1] : null;
  }

  /** The message event with this id, if held (for message_deleted). */
  findById(id) {
    for (const event of this.events.values()) if (event.id === id) return event;
    return null;
  }
}
