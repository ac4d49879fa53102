// A PostgreSQL migration that alters a table another transaction holds gives up after its lock
// timeout and tries again, rather than queueing every claim and result of the cluster behind it.
import { copyFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { PostgresDatabase } from "../../../master/store/postgres/database.js";
import { migratePostgres, postgresMigrationsDir } from "../../../master/store/postgres/migrate.js";
import { dialects, TEST_DATABASE_URL, type TestStore } from "../../helpers/store.js";
import { removeTempDirs, tempDir } from "../../helpers/temp.js";

const postgres = dialects.find((dialect) => dialect.name === "postgres");

describe.runIf(postgres)("PostgreSQL migrations and long transactions", () => {
  let t: TestStore | undefined;
  afterEach(async () => {
    await t?.store.close();
    t = undefined;
    removeTempDirs();
  });

  it("gives up on a table lock a long transaction holds, tries again, and applies once it ends", async () => {
    t = await (postgres as NonNullable<typeof postgres>).open();
    const schema = String((await t.store.describe()).schema);
    // The shipped migrations (applied by the store's opening), and one more that alters jobs.
    const dir = tempDir();
    const shipped = readdirSync(postgresMigrationsDir()).filter((name) => name.endsWith(".sql"));
    for (const name of shipped) copyFileSync(join(postgresMigrationsDir(), name), join(dir, name));
    const next = String(shipped.length + 1).padStart(4, "0");
    writeFileSync(join(dir, `${next}_probe.sql`), "ALTER TABLE jobs ADD COLUMN probe integer;\n");

    const holder = new pg.Client({ connectionString: TEST_DATABASE_URL, options: `-c search_path=${schema}` });
    await holder.connect();
    const db = new PostgresDatabase({ url: TEST_DATABASE_URL, schema, max: 1 });
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT count(*) FROM jobs");
      const started = Date.now();
      const refused = await migratePostgres(db, dir, new Date(), { timeoutMs: 100, tries: 3 });
      expect(refused.error?.message).toMatch(/waited 3 times 100 ms for a table's lock/);
      expect(refused.applied).toEqual([]);
      // Three tries of 100 ms and the pauses between them, not an unbounded wait.
      expect(Date.now() - started).toBeLessThan(10_000);
      // Nothing was applied meanwhile, and the holder's reads went on.
      expect((await holder.query("SELECT count(*)::int AS n FROM schema_migrations WHERE name = 'probe'")).rows[0]?.n).toBe(0);
      await holder.query("ROLLBACK");
      const applied = await migratePostgres(db, dir, new Date(), { timeoutMs: 100, tries: 3 });
      expect(applied.error).toBeUndefined();
      expect(applied.applied).toEqual([{ version: shipped.length + 1, name: "probe" }]);
    } finally {
      await holder.query("ROLLBACK").catch(() => undefined);
      await holder.end();
      await db.close();
    }
  });
});
