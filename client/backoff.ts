// Waiting between tries: exponential backoff with jitter, and a sleep that an AbortSignal ends.

export interface BackoffParams {
  baseMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffParams = { baseMs: 250, maxMs: 30_000 };

/**
 * Delay before retry number `attempt` (1 for the first): exponential, capped,
 * with "equal jitter" (half fixed, half random) so that many callers that lost
 * the master at the same moment do not come back in lockstep.
 */
export function backoffDelayMs(attempt: number, params: BackoffParams = DEFAULT_BACKOFF, random = Math.random): number {
  const exponential = Math.min(params.maxMs, params.baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(exponential / 2 + (random() * exponential) / 2);
}

/** Resolves after `ms`, or at once when `signal` aborts (it never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
