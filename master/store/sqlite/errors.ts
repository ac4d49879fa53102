// Driver errors the core must understand, mapped to the store's own: the core never sees better-sqlite3's.
import { StorageUnavailableError } from "../types.js";

/** SQLite result codes that mean the disk, not the query, is the problem. */
const STORAGE_FAILURES = /^SQLITE_(FULL|IOERR|READONLY|CANTOPEN|NOTADB|CORRUPT|PROTOCOL)/;

/** Map a driver error the core must understand (a full disk) to the store's own; leave the rest. */
export function translateError(error: unknown): unknown {
  const code = (error as { code?: unknown })?.code;
  if (typeof code === "string" && STORAGE_FAILURES.test(code)) {
    return new StorageUnavailableError(`the database refuses writes (${code}): ${(error as Error).message}`, code);
  }
  return error;
}

/** `work()`, its driver errors translated. */
export function translated<T>(work: () => T): T {
  try {
    return work();
  } catch (error) {
    throw translateError(error);
  }
}

/** `fn` with its driver errors translated, at each call. */
export function guarded<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R {
  return (...args: A) => translated(() => fn(...args));
}
