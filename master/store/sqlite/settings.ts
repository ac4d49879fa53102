// Settings: a few named values the master keeps (the JWT secret, the read-only mode).
import type { SettingsStore } from "../types.js";
import type { StoreContext } from "./context.js";

export class SqliteSettingsStore implements SettingsStore {
  constructor(private readonly ctx: StoreContext) {}

  async get(key: string): Promise<string | undefined> {
    const { db } = this.ctx;
    return db.get(db.kysely.selectFrom("settings").select("value").where("key", "=", key))?.value;
  }

  async set(key: string, value: string): Promise<void> {
    const { db } = this.ctx;
    const at = this.ctx.clock.now().toISOString();
    db.transaction(() => {
      db.run(
        db.kysely
          .insertInto("settings")
          .values({ key, value, updated_at: at })
          .onConflict((oc) => oc.column("key").doUpdateSet({ value, updated_at: at })),
      );
      this.ctx.signal.mark({ settings: true });
    });
  }

  async setIfAbsent(key: string, value: string): Promise<string> {
    const { db } = this.ctx;
    const at = this.ctx.clock.now().toISOString();
    return db.transaction(() => {
      db.run(db.kysely.insertInto("settings").values({ key, value, updated_at: at }).onConflict((oc) => oc.column("key").doNothing()));
      return db.get(db.kysely.selectFrom("settings").select("value").where("key", "=", key))?.value ?? value;
    });
  }
}
