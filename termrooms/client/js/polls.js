// Polls without the DOM: how long each result bar is, what a choice does to a vote, and
// the wording of poll events in the stream. `node --test` checks it (tests/js/).

/**
 * Each option's bar as a percentage (0-100, whole) of the people who voted: in a poll of
 * several choices the bars may add up to more than 100. No votes: every bar is empty.
 */
export function barWidths(poll) {
  return poll.options.map((option) => (poll.voters ? Math.round((option.votes / poll.voters) * 100) : 0));
}

/**
 * The vote that choosing option `index` makes, given the caller's choices `mine`: in a
 * single-choice poll it replaces them (choosing the current one again withdraws); with
 * several choices it toggles that one.
 */
export function nextChoices(poll, mine, index) {
  const held = mine ?? [];
  if (!poll.multiple) return held.length === 1 && held[0] === index ? [] : [index];
  const chosen = held.includes(index) ? held.filter((choice) => choice !== index) : [...held, index];
  return chosen.sort((a, b) => a - b);
}

/** "pizza 3, salad 1". */
export function resultsText(poll) {
  return poll.options.map((option) => `${option.text} ${option.votes}`).join(", ");
}

/**
 * What the chart says under its options: the kind of poll, how many voted, and when it
 * closes (`closesAt`: that time as the reader reads it) or that it is closed.
 */
export function pollFacts(poll, closesAt = null) {
  const facts = [poll.multiple ? "several choices" : "one choice"];
  if (poll.anonymous) facts.push("anonymous");
  facts.push(poll.voters === 1 ? "1 voter" : `${poll.voters} voters`);
  if (poll.closed) facts.push("closed");
  else if (closesAt) facts.push(`closes ${closesAt}`);
  return facts.join(" · ");
}

/** The system line of a poll_created or poll_closed event. */
export function pollEventText(event) {
  const poll = event.poll;
  if (event.type === "poll_created") return `${event.user ?? "someone"} started a poll: ${poll.question}`;
  return `poll closed: ${poll.question} — ${resultsText(poll)}`;
}
