// Example function handlers, run by the local worker of `gaffer dev` (npm start).
import type { FunctionHandler } from "../runner.js";

const wait = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });

export const exampleHandlers: Record<string, FunctionHandler> = {
  /** Answers its payload. */
  echo: async (job) => ({ echo: job.payload, attempt: job.attempt }),
  /** Works for payload.seconds (default 3), reporting progress every tenth. */
  sleep: async (job, { signal, progress }) => {
    const seconds = Number((job.payload as { seconds?: unknown })?.seconds ?? 3);
    for (let step = 1; step <= 10 && !signal.aborted; step++) {
      await wait((seconds * 1000) / 10, signal);
      progress(step * 10, `step ${step} of 10`);
    }
    if (signal.aborted) throw new Error("stopped");
    return { slept_s: seconds };
  },
  /** Fails: retryably (the master retries it while max_retries allows), unless payload.permanent is true. */
  fail: async (job) => {
    const permanent = (job.payload as { permanent?: unknown })?.permanent === true;
    throw Object.assign(new Error(permanent ? "failed: not retryable (payload.permanent)" : "failed: a retryable error"), { retryable: !permanent });
  },
};
