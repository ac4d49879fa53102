// Talking to a master that may be slow, down or restarting: backoff with jitter and a circuit breaker.

import { sleep } from "../client/backoff.js";

// Backoff and sleep live with the SDK's client (client/backoff.ts), which retries too.
export { backoffDelayMs, DEFAULT_BACKOFF, sleep, type BackoffParams } from "../client/backoff.js";

export type CircuitState = "closed" | "open" | "half_open";

export interface CircuitBreakerParams {
  /** Consecutive failures that open the circuit. */
  failureThreshold: number;
  /** How long it stays open before one probe request may pass. */
  openMs: number;
  now?: () => number;
  onChange?: (state: CircuitState, failures: number) => void;
}

export const DEFAULT_CIRCUIT: CircuitBreakerParams = { failureThreshold: 5, openMs: 5000 };

/** Thrown instead of making a request while the circuit is open. */
export class CircuitOpenError extends Error {
  constructor(readonly retryInMs: number) {
    super(`the master is unreachable; trying again in ${Math.ceil(retryInMs / 1000)} s`);
  }
}

/**
 * Closed: requests pass. After `failureThreshold` failures in a row: open, and
 * requests fail at once. After `openMs`: half open, one probe passes; its
 * success closes the circuit, its failure opens it again.
 */
export class CircuitBreaker {
  private failures = 0;
  private openedAt = 0;
  private probing = false;
  private current: CircuitState = "closed";
  private readonly now: () => number;
  /** Aborted (and replaced) each time the circuit closes: ends the waits of calls held back while it was open. */
  private closing = new AbortController();

  constructor(private readonly params: CircuitBreakerParams = DEFAULT_CIRCUIT) {
    this.now = params.now ?? Date.now;
  }

  get state(): CircuitState {
    return this.current;
  }

  /** Throws CircuitOpenError when no request may go out now. */
  check(): void {
    if (this.current === "closed") return;
    const waited = this.now() - this.openedAt;
    if (this.current === "open" && waited >= this.params.openMs) this.set("half_open");
    if (this.current === "half_open" && !this.probing) {
      this.probing = true;
      return;
    }
    throw new CircuitOpenError(Math.max(0, this.params.openMs - waited));
  }

  /**
   * Wait before trying again after a CircuitOpenError: `ms`, or less when another
   * call (a heartbeat probe) finds the master back and closes the circuit first.
   */
  wait(ms: number, signal?: AbortSignal): Promise<void> {
    return sleep(ms, signal ? AbortSignal.any([signal, this.closing.signal]) : this.closing.signal);
  }

  succeeded(): void {
    this.failures = 0;
    this.probing = false;
    if (this.current !== "closed") this.set("closed");
  }

  failed(): void {
    this.failures += 1;
    this.probing = false;
    if (this.current === "half_open" || this.failures >= this.params.failureThreshold) {
      this.openedAt = this.now();
      if (this.current !== "open") this.set("open");
    }
  }

  private set(state: CircuitState): void {
    this.current = state;
    if (state === "closed") {
      this.closing.abort();
      this.closing = new AbortController();
    }
    this.params.onChange?.(state, this.failures);
  }
}
