// Who runs the sweepers and schedules (Store.leads): the one master of a SQLite file; on
// PostgreSQL one master of the cluster at a time, another as soon as it is gone (API.md §12).
import { afterEach, describe, expect, it } from "vitest";
import { dialects, type TestStore } from "../../helpers/store.js";
import { removeTempDirs } from "../../helpers/temp.js";

describe.each(dialects)("leadership ($name)", (dialect) => {
  let t: TestStore;
  afterEach(async () => {
    await t.store.close();
    removeTempDirs();
  });

  it("lets one master at a time lead, and another take over once it is gone", async () => {
    t = await dialect.open();
    expect(await t.store.leads()).toBe(true);
    if (dialect.name === "sqlite") return; // one master per file
    const second = await t.reopen();
    const third = await t.reopen();
    try {
      expect(await second.leads()).toBe(false);
      expect(await third.leads()).toBe(false);
      expect(await t.store.leads()).toBe(true); // held, not taken again
      await t.store.close();
      const after = [await second.leads(), await third.leads()];
      expect(after.filter(Boolean)).toHaveLength(1);
      t = { ...t, store: after[0] ? third : second };
      // The one left over leads once the new leader is gone too.
      await (after[0] ? second : third).close();
      expect(await t.store.leads()).toBe(true);
    } finally {
      await Promise.allSettled([second.close(), third.close()]);
    }
  });
});
