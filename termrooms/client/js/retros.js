// Retros without the DOM: how the board lays out a retro (columns of cards and stacks,
// or the ranked list once discussing), where the keys move, the vote dots, the happiness
// histogram and the wording of retro events in the stream. `node --test` checks it
// (tests/js/).

export const PHASES = ["collect", "group", "vote", "discuss", "closed"];

/** What each phase asks of the people in it, shown under the phase line. */
export const PHASE_HINTS = {
  collect: "write cards: others' stay face down until grouping",
  group: "stack cards that belong together (m: merge into another stack) and name the stacks",
  vote: "spend your votes on the stacks that matter most (+ or v votes, - or u takes back)",
  discuss: "talk through the stacks, most votes first; add actions as you go",
  closed: "this retro is closed",
};

export const HAPPINESS_FACES = { 1: ":((", 2: ":(", 3: ":|", 4: ":)", 5: ":D" };

const lower = (name) => String(name).toLowerCase();

/** An open retro is one not closed yet. */
export function isOpen(retro) {
  return retro !== null && retro !== undefined && retro.phase !== "closed";
}

/** The phase one step forwards or back from `phase`, or null at either end (closed is final). */
export function neighbourPhase(phase, step) {
  if (phase === "closed") return null;
  const index = PHASES.indexOf(phase) + step;
  return index >= 0 && index < PHASES.length ? PHASES[index] : null;
}

/** A stack's title as the board shows it: its own, else its first card's text. */
export function groupTitle(group, entriesById) {
  if (group.title) return group.title;
  for (const id of group.entries) {
    const text = entriesById.get(id)?.text;
    if (text) return text;
  }
  return "untitled";
}

/**
 * The board as it is drawn: `ranked` (discuss and closed) is one list of stacks, most
 * votes first, as the server ordered them; otherwise one column per name of
 * `retro.columns`, each with its stacks (a group and its cards) and then its loose cards
 * (entries in no group yet, each a stack of its own with `group: null`). Every stack
 * has a `key` the keys and the selection use: "g:ID" or "e:ID".
 */
export function boardLayout(retro) {
  const entriesById = new Map(retro.entries.map((entry) => [entry.id, entry]));
  const focus = retro.focus ?? null;
  const stack = (group) => ({
    key: `g:${group.id}`,
    group: group.id,
    column: group.column,
    title: groupTitle(group, entriesById),
    ownTitle: group.title,
    entries: group.entries.map((id) => entriesById.get(id)).filter(Boolean),
    votes: group.votes ?? null,
    mine: retro.my_votes?.[group.id] ?? 0,
    focused: focus !== null && group.id === focus,
  });
  const grouped = new Set();
  const stacks = retro.groups.map((group) => {
    for (const id of group.entries) grouped.add(id);
    return stack(group);
  });
  const loose = retro.entries
    .filter((entry) => !grouped.has(entry.id))
    .map((entry) => ({
      key: `e:${entry.id}`,
      group: null,
      column: entry.column,
      title: entry.text ?? "",
      ownTitle: "",
      entries: [entry],
      votes: null,
      mine: 0,
      focused: false,
    }));
  if (retro.phase === "discuss" || retro.phase === "closed") {
    return { ranked: true, columns: [{ name: "by votes", stacks: [...stacks, ...loose] }] };
  }
  const columns = retro.columns.map((name) => ({ name, stacks: [] }));
  const byName = new Map(columns.map((column) => [lower(column.name), column]));
  for (const item of [...stacks, ...loose]) byName.get(lower(item.column))?.stacks.push(item);
  return { ranked: false, columns };
}

/**
 * The things the arrow keys walk, column by column: in collect and group each card (its
 * key "c:ENTRY"), in vote, discuss and closed each stack (its stack key).
 */
export function navigation(layout, phase) {
  const byCard = phase === "collect" || phase === "group";
  return layout.columns.map((column) =>
    byCard
      ? column.stacks.flatMap((item) => item.entries.map((entry) => ({ key: `c:${entry.id}`, stack: item, entry })))
      : column.stacks.map((item) => ({ key: item.key, stack: item, entry: item.entries[0] ?? null })),
  );
}

/** Where `key` sits in `grid` (navigation's answer): {column, row}, or null. */
export function locate(grid, key) {
  for (let column = 0; column < grid.length; column += 1) {
    const row = grid[column].findIndex((item) => item.key === key);
    if (row >= 0) return { column, row };
  }
  return null;
}

/**
 * The key a move lands on: `down` rows within the column (j/k), `right` columns across
 * (h/l), keeping the row as near as the next column allows and skipping empty columns.
 * No selection yet: the first item of the board. Null on an empty board.
 */
export function moveSelection(grid, key, { down = 0, right = 0 } = {}) {
  const first = grid.find((column) => column.length)?.[0];
  const at = locate(grid, key);
  if (at === null) return first?.key ?? null;
  if (down) {
    const column = grid[at.column];
    return column[Math.min(column.length - 1, Math.max(0, at.row + down))].key;
  }
  if (right) {
    for (let index = at.column + right; index >= 0 && index < grid.length; index += right) {
      if (grid[index].length) return grid[index][Math.min(at.row, grid[index].length - 1)].key;
    }
  }
  return key;
}

/** The key standing nearest where `key` stood in `before`, once the board is `after`. */
export function keepSelection(before, after, key) {
  if (locate(after, key)) return key;
  const at = before ? locate(before, key) : null;
  if (at !== null && after[at.column]?.length) {
    return after[at.column][Math.min(at.row, after[at.column].length - 1)].key;
  }
  return after.find((column) => column.length)?.[0]?.key ?? null;
}

/** A stack's vote dots: "●●" for two of mine, "" for none. */
export function voteDots(mine) {
  return "●".repeat(Math.max(0, mine));
}

/** The vote budget as dots: filled for each vote left, hollow for each spent. */
export function budgetDots(left, total) {
  const spare = Math.max(0, Math.min(left, total));
  return "●".repeat(spare) + "○".repeat(Math.max(0, total - spare));
}

/**
 * The happiness histogram as bars: one per score 5 to 1, each `width` a whole percent of
 * the most common score's count. Null while the server shows no histogram.
 */
export function histogramBars(happiness) {
  const histogram = happiness?.histogram;
  if (!histogram) return null;
  const counts = [5, 4, 3, 2, 1].map((score) => ({ score, count: Number(histogram[String(score)] ?? 0) }));
  const most = Math.max(...counts.map((bar) => bar.count));
  return counts.map((bar) => ({ ...bar, face: HAPPINESS_FACES[bar.score], width: most ? Math.round((bar.count / most) * 100) : 0 }));
}

/** "3 answers", said under the happiness buttons, with why no histogram shows yet. */
export function happinessFacts(retro) {
  const count = retro.happiness?.count ?? 0;
  const said = [count === 1 ? "1 answer" : `${count} answers`];
  if (!retro.happiness?.histogram) {
    if (count < 3) said.push("the histogram shows from 3");
    else if (retro.phase !== "discuss" && retro.phase !== "closed") said.push("the histogram shows once discussing");
  }
  return said.join(" · ");
}

/** "2 of 3 votes left". */
export function votesLeftText(retro) {
  return `${retro.votes_left} of ${retro.votes_per_participant} votes left`;
}

const quoted = (text) => `“${text || "untitled"}”`;

/** The system line of a retro_started, retro_phase_changed or retro_closed event. */
export function retroEventText(event) {
  const who = event.user ?? "someone";
  if (event.type === "retro_started") return `${who} started the retro ${quoted(event.title)}`;
  if (event.type === "retro_phase_changed") return `${who} moved the retro to ${event.phase}`;
  if (event.type === "retro_closed") {
    const top = (event.top ?? []).map((item) => `${quoted(item.title)} ${item.votes === 1 ? "1 vote" : `${item.votes} votes`}`);
    return top.length ? `retro closed: top ${top.join(", ")}` : "retro closed";
  }
  return `${event.type} by ${who}`;
}
