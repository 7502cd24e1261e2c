// `notify` frames (task_assigned, mention, dm): what one does
// and what its browser notification says. Pure: `node --test` checks it (tests/js/).

import { systemText } from "./text.js";

const REASON_TITLES = { task_assigned: "a task for you", mention: "you were mentioned", dm: "a direct message" };

/**
 * What a notice does: mark its room in the room list unless the room is in view (the
 * active room in a visible tab), and raise a browser notification while the tab is
 * hidden, once the user allowed them.
 */
export function noticeActions({ active, hidden, permission }) {
  return { mark: !(active && !hidden), notify: hidden && permission === "granted" };
}

/** The browser notification of a `notify` frame: {title, body, tag}; one tag per event. */
export function noticeText(frame) {
  const event = frame.event;
  const said = event.type === "message" || event.type === "message_edited"; // an edit shows the message now
  const where = frame.reason === "dm" ? `from ${event.user}` : `in #${frame.room}`; // dm-... says nothing
  const body = said ? `<${event.user}> ${event.body}` : systemText(event);
  return {
    title: `${REASON_TITLES[frame.reason] ?? frame.reason} ${where}`,
    body,
    tag: `termrooms-${event.id}`, // every tab of the user hears it: the browser shows one
  };
}
