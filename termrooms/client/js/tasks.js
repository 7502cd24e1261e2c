// Tasks without the DOM: the status cycle the panel's toggles walk, what the add field
// means, and the wording of task events in the stream. `node --test` checks it (tests/js/).

export const TASK_STATUSES = ["pending", "in_progress", "completed"];

/** What a task's toggle shows for each status. */
export const STATUS_MARKS = { pending: "[ ]", in_progress: "[~]", completed: "[x]" };

const STATUS_VERBS = { pending: "reopened", in_progress: "started", completed: "completed" };
const ASSIGNED_AT_END = /^(.*\S)\s+@([A-Za-z0-9._-]{3,32})$/s;

/** The status a toggle moves to: pending -> in_progress -> completed -> pending. */
export function nextStatus(status) {
  const index = TASK_STATUSES.indexOf(status);
  return TASK_STATUSES[(index + 1) % TASK_STATUSES.length];
}

/** The add field: "buy milk @bob" is {title: "buy milk", assignee: "bob"}; no @user, no assignee. */
export function parseTaskInput(text) {
  const line = text.trim();
  const assigned = line.match(ASSIGNED_AT_END);
  if (assigned) return { title: assigned[1], assignee: assigned[2] };
  return { title: line, assignee: null };
}

/**
 * The system line of a task_created, task_updated or task_deleted event. A deletion
 * names only the task's id: `deleted` is that task when the client still knows it.
 */
export function taskEventText(event, deleted = null) {
  const who = event.user ?? "someone";
  if (event.type === "task_deleted") {
    return deleted ? `${who} deleted task #${deleted.number} ${deleted.title}` : `${who} deleted a task`;
  }
  const task = event.task;
  const ref = `#${task.number}`;
  if (event.type === "task_created") {
    return `${who} added task ${ref} ${task.title}${task.assignee ? ` for ${task.assignee}` : ""}`;
  }
  const done = [];
  for (const change of event.changes ?? []) {
    if (change === "status") done.push(`${STATUS_VERBS[task.status]} ${ref}`);
    else if (change === "assignee") done.push(task.assignee ? `assigned ${ref} to ${task.assignee}` : `unassigned ${ref}`);
    else if (change === "title") done.push(`renamed ${ref} to ${task.title}`);
    else if (change === "description") done.push(`edited the description of ${ref}`);
  }
  return `${who} ${done.length ? done.join(", ") : `changed ${ref}`}`;
}
