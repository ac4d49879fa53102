// WAL flushes a test holds: to see who waits for them (syncOffThread's fdatasync).

/** One turn of the event loop. */
export const turn = () => new Promise((resolve) => setImmediate(resolve));

/**
 * An fdatasync the test releases (or fails) by hand. While `hold` is off (say,
 * while a test sets up its data) flushes complete at once.
 */
export function heldFlushes(holding = true) {
  const calls: { resolve: () => void; reject: (error: Error) => void }[] = [];
  let hold = holding;
  return {
    calls,
    fdatasync: (_fd: number) =>
      new Promise<void>((resolve, reject) => {
        if (hold) calls.push({ resolve, reject });
        else resolve();
      }),
    hold(on: boolean): void {
      hold = on;
    },
    /** Stop holding, and complete every flush held so far. */
    releaseAll(): void {
      hold = false;
      for (const call of calls.splice(0)) call.resolve();
    },
  };
}
