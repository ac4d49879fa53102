// Working on a database file with no master running (gaffer clients create --db).
import { defaultQueuePolicy } from "./queue/policy.js";
import { openStore } from "./store/open.js";
import { systemClock, type Store } from "./store/types.js";

/** Open (creating and migrating if needed) the store at `path`, run `work`, close it. */
export async function withStore<T>(path: string, work: (store: Store) => Promise<T>): Promise<T> {
  // The queue policy is not used by offline work; the defaults do.
  const store = openStore({ config: { db: path }, clock: systemClock, policy: defaultQueuePolicy() });
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}
