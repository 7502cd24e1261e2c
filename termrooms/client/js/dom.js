// Building DOM nodes. Text always goes in through textContent, never as HTML, so nothing
// a user types can become markup.

import { linkify } from "./text.js";

/** el("span", {className: "nick", title: "x"}, "text", childNode, ...) */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in node && key !== "role" && !key.startsWith("aria")) node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A message body: text with http(s) links made clickable, opening outside the app. */
export function bodyNode(text) {
  const span = el("span", { className: "body" });
  for (const segment of linkify(text)) {
    if (segment.href) {
      span.append(
        el("a", { href: segment.href, target: "_blank", rel: "noopener noreferrer nofollow" }, segment.text),
      );
    } else {
      span.append(document.createTextNode(segment.text));
    }
  }
  return span;
}
