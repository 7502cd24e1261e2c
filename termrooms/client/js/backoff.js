// When to reconnect: exponential backoff with jitter, and what each close code asks for.
// Pure: `node --test` checks it.

export class Backoff {
  constructor({ baseMs = 500, capMs = 30000, random = Math.random } = {}) {
    this.baseMs = baseMs;
    this.capMs = capMs;
    this.random = random;
    this.attempt = 0;
  }

  /**
   * The next delay: the ceiling doubles per failed attempt up to the cap, and the delay
   * is drawn from its upper half so that many clients dropped together spread out
   * without any of them hammering the server.
   */
  next() {
    const ceiling = Math.min(this.capMs, this.baseMs * 2 ** this.attempt);
    this.attempt += 1;
    return Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
  }

  reset() {
    this.attempt = 0;
  }
}

/**
 * What a closed socket asks of the client, by close code:
 * - "now": reconnect at once (1001 server going away, 4009 too slow: catch up with `since`);
 * - "refresh": get a new access token first (4001 token expired or revoked);
 * - "backoff": wait, then reconnect (anything else: network loss, crashes, 1008, 4008).
 */
export function closeAction(code) {
  if (code === 1001 || code === 4009) return "now";
  if (code === 4001) return "refresh";
  return "backoff";
}

/** When to renew an access token that lives `expiresIn` seconds: at 80%, not before 5 s. */
export function renewDelayMs(expiresIn) {
  return Math.max(5, expiresIn * 0.8) * 1000;
}
