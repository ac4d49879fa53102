// Working on a database file with no master running (gaffer clients create --db, backup, restore).
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { createQueuePolicy } from "./queue/policy.js";
import { openSqliteStore } from "./store/sqlite/index.js";
import { systemClock, type Store } from "./store/types.js";

/** Open (creating and migrating if needed) the store at `path`, run `work`, close it. */
export async function withStore<T>(path: string, work: (store: Store) => Promise<T>): Promise<T> {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  // The queue policy is not used by offline work; these are the defaults.
  const policy = createQueuePolicy({ retryDelayS: 5, retryMaxDelayS: 300, stallGraceS: 300, agingS: 300, nodeTimeoutS: 60 });
  const store = openSqliteStore({ path, clock: systemClock, policy });
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}
