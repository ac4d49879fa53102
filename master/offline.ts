// Working on a database file with no master running (gaffer clients create --db, backup, restore).
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { defaultQueuePolicy } from "./queue/policy.js";
import { openSqliteStore } from "./store/sqlite/index.js";
import { systemClock, type Store } from "./store/types.js";

/** Open (creating and migrating if needed) the store at `path`, run `work`, close it. */
export async function withStore<T>(path: string, work: (store: Store) => Promise<T>): Promise<T> {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  // The queue policy is not used by offline work; the defaults do.
  const store = openSqliteStore({ path, clock: systemClock, policy: defaultQueuePolicy() });
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}
