// The input line's history, as a shell keeps it: Up walks back through sent lines,
// Down walks forward and finally returns the draft that was being typed. Pure.

export class InputHistory {
  constructor(limit = 200) {
    this.limit = limit;
    this.lines = [];
    this.position = 0; // == lines.length while editing the draft
    this.draft = "";
  }

  /** Remember a sent line (not a repeat of the previous one) and go back to a new draft. */
  push(line) {
    if (line && this.lines[this.lines.length - 1] !== line) {
      this.lines.push(line);
      if (this.lines.length > this.limit) this.lines.shift();
    }
    this.position = this.lines.length;
    this.draft = "";
  }

  /** The older line to show, or null at the oldest; `current` is what the input holds. */
  up(current) {
    if (this.position === 0) return null;
    if (this.position === this.lines.length) this.draft = current;
    this.position -= 1;
    return this.lines[this.position];
  }

  /** The newer line to show (the draft last), or null when already on the draft. */
  down() {
    if (this.position >= this.lines.length) return null;
    this.position += 1;
    return this.position === this.lines.length ? this.draft : this.lines[this.position];
  }
}
