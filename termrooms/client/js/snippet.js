// Search snippets: the server wraps each match in U+0002 ... U+0003, characters a
// message body never holds. They are split here into plain and marked pieces, never
// parsed as markup. Pure: `node --test` checks it (tests/js/).

const OPEN = "\u0002";
const CLOSE = "\u0003";

/**
 * [{text, match}] pieces of a snippet, in order, none empty. A mark counts only when
 * closed: an OPEN without its CLOSE leaves the rest plain, a stray CLOSE is dropped,
 * and an OPEN inside a mark is dropped too.
 */
export function snippetParts(snippet) {
  const parts = [];
  const push = (text, match) => {
    if (!text) return;
    const last = parts[parts.length - 1];
    if (last && last.match === match) last.text += text;
    else parts.push({ text, match });
  };
  let rest = String(snippet);
  while (rest) {
    const open = rest.indexOf(OPEN);
    const close = open < 0 ? -1 : rest.indexOf(CLOSE, open);
    if (close < 0) {
      push(rest.replaceAll(OPEN, "").replaceAll(CLOSE, ""), false);
      break;
    }
    push(rest.slice(0, open).replaceAll(CLOSE, ""), false);
    push(rest.slice(open + 1, close).replaceAll(OPEN, ""), true);
    rest = rest.slice(close + 1);
  }
  return parts;
}
