// Open a SQLite store: connect, check, migrate, and wire the aggregates together.
import type { Clock, QueuePolicy, SettingsStore, Store } from "../types.js";
import { createAuditStore, createAuditWriter } from "./audit.js";
import { createClientStore, createTokenStore } from "./clients.js";
import type { StoreContext } from "./context.js";
import { SqliteDatabase, type Synchronous } from "./database.js";
import { SqliteJobStore } from "./jobs/index.js";
import { defaultMigrationsDir, migrate } from "./migrate.js";
import { SqliteNodeStore } from "./nodes.js";
import { createRequirementSets } from "./requirement-sets.js";

export { SqliteDatabase } from "./database.js";
export { migrate, migrationStatus, defaultMigrationsDir } from "./migrate.js";

export interface OpenSqliteStoreParams {
  path: string;
  synchronous?: Synchronous;
  clock: Clock;
  policy: QueuePolicy;
  migrationsDir?: string;
}

function createSettingsStore(db: SqliteDatabase, clock: Clock): SettingsStore {
  return {
    async get(key) {
      return db.get(db.kysely.selectFrom("settings").select("value").where("key", "=", key))?.value;
    },
    async set(key, value) {
      const at = clock.now().toISOString();
      db.run(
        db.kysely
          .insertInto("settings")
          .values({ key, value, updated_at: at })
          .onConflict((oc) => oc.column("key").doUpdateSet({ value, updated_at: at })),
      );
    },
  };
}

/** Opens, verifies and migrates the database; throws with a clear message if it cannot. */
export function openSqliteStore(params: OpenSqliteStoreParams): Store {
  const db = new SqliteDatabase({ path: params.path, synchronous: params.synchronous ?? "full" });
  try {
    const migrated = migrate(db, params.migrationsDir ?? defaultMigrationsDir(), params.clock.now());
    if (migrated.error) throw migrated.error;
    const audit = createAuditWriter(db);
    const ctx: StoreContext = {
      db,
      clock: params.clock,
      policy: params.policy,
      audit,
      requirementSets: createRequirementSets(db),
    };
    return {
      dialect: "sqlite",
      jobs: new SqliteJobStore(ctx),
      nodes: new SqliteNodeStore(ctx),
      audit: createAuditStore(db, audit, () => params.clock.now()),
      settings: createSettingsStore(db, params.clock),
      clients: createClientStore(ctx),
      tokens: createTokenStore(ctx),
      close: async () => db.close(),
    };
  } catch (error) {
    db.close();
    throw error;
  }
}
