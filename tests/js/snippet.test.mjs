// node --test: search snippets split into plain and marked text, whatever they hold.
import assert from "node:assert/strict";
import { test } from "node:test";

import { snippetParts } from "../../termrooms/client/js/snippet.js";

const marked = (text) => `\u0002${text}\u0003`;

test("each match is a marked piece between plain ones", () => {
  assert.deepEqual(snippetParts(`lunch at ${marked("noon")}, ${marked("noon")}!`), [
    { text: "lunch at ", match: false },
    { text: "noon", match: true },
    { text: ", ", match: false },
    { text: "noon", match: true },
    { text: "!", match: false },
  ]);
  assert.deepEqual(snippetParts(marked("all")), [{ text: "all", match: true }]);
  assert.deepEqual(snippetParts("no marks"), [{ text: "no marks", match: false }]);
  assert.deepEqual(snippetParts(""), []);
  assert.deepEqual(snippetParts(`${marked("a")}${marked("b")}`), [{ text: "ab", match: true }]);
});

test("markup in a snippet stays text: nothing is parsed", () => {
  const hostile = `<script>alert(1)</script> ${marked("<b>x</b>")} &amp; <img src=x onerror=alert(1)>`;
  assert.deepEqual(snippetParts(hostile), [
    { text: "<script>alert(1)</script> ", match: false },
    { text: "<b>x</b>", match: true },
    { text: " &amp; <img src=x onerror=alert(1)>", match: false },
  ]);
});

test("unbalanced marks mark nothing they do not close, and never show", () => {
  assert.deepEqual(snippetParts("open \u0002 never closed"), [{ text: "open  never closed", match: false }]);
  assert.deepEqual(snippetParts("stray \u0003 close"), [{ text: "stray  close", match: false }]);
  assert.deepEqual(snippetParts("\u0002a\u0002b\u0003 c\u0003"), [
    { text: "ab", match: true },
    { text: " c", match: false },
  ]);
  assert.deepEqual(snippetParts(`${marked("x")} tail \u0002`), [
    { text: "x", match: true },
    { text: " tail ", match: false },
  ]);
  const shown = snippetParts("\u0003\u0002\u0002\u0003\u0003").map((part) => part.text).join("");
  assert.equal(shown, "");
});
