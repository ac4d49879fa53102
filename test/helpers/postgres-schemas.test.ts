// The PostgreSQL test stores reuse schemas (postgres-schemas.ts): each test still starts on an
// empty database, and never on a schema a store of another test still uses.
import { describe, expect, it } from "vitest";
import { dialects, submit, type TestStore } from "./store.js";

const postgres = dialects.find((dialect) => dialect.name === "postgres");

describe.skipIf(postgres === undefined)("PostgreSQL test stores", () => {
  const open = async () => {
    if (!postgres) throw new Error("no PostgreSQL");
    return postgres.open();
  };
  const schemaOf = async (t: TestStore) => String((await t.query("SELECT current_schema() AS schema"))[0]?.schema);

  it("start empty, identities at 1, on a schema a closed test store used", async () => {
    const first = await open();
    const schema = await schemaOf(first);
    await submit(first.store);
    await submit(first.store);
    await first.store.types.set({ type: "echo", paused: true, actor: null, since: new Date(0) });
    await first.store.close();
    const second = await open();
    try {
      expect(await schemaOf(second)).toBe(schema);
      expect(await second.query("SELECT count(*) AS n FROM jobs")).toEqual([{ n: 0 }]);
      expect(await second.query("SELECT count(*) AS n FROM job_types")).toEqual([{ n: 0 }]);
      expect(await second.query("SELECT count(*) AS n FROM audit_log")).toEqual([{ n: 0 }]);
      const job = await submit(second.store);
      expect(await second.query("SELECT seq FROM jobs WHERE id = ?", [job.id])).toEqual([{ seq: 1 }]);
      expect(await second.query("SELECT count(*) AS n FROM schema_migrations")).not.toEqual([{ n: 0 }]);
    } finally {
      await second.store.close();
    }
  });

  it("never get a schema a reopened store still uses, and refuse a reopen once theirs went to another", async () => {
    const first = await open();
    const schema = await schemaOf(first);
    const job = await submit(first.store);
    const reopened = await first.reopen();
    await first.store.close();
    const second = await open();
    try {
      expect(await schemaOf(second)).not.toBe(schema);
      expect((await reopened.jobs.get(job.id))?.status).toBe("pending");
      await reopened.close();
      const third = await open();
      try {
        expect(await schemaOf(third)).toBe(schema);
        await expect(first.reopen()).rejects.toThrow(/given to another test store/);
      } finally {
        await third.store.close();
      }
    } finally {
      await second.store.close();
    }
  });
});
