// Working on a database with no master running (gaffer clients create --db / --database-url).
import { defaultQueuePolicy } from "./queue/policy.js";
import { openStore, type StoreConfig } from "./store/open.js";
import { systemClock, type Store } from "./store/types.js";

/** Open (creating and migrating if needed) the store the config names, run `work`, close it. */
export async function withStore<T>(config: StoreConfig, work: (store: Store) => Promise<T>): Promise<T> {
  // The queue policy is not used by offline work; the defaults do.
  const store = await openStore({ config, clock: systemClock, policy: defaultQueuePolicy() });
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}
