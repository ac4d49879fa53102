// What the store keeps in memory follows what it committed: a write that is rolled back
// (one item of a group commit failed, so the group was undone and replayed item by item)
// leaves no trace in a cache that the replay would then trust.
import { afterEach, describe, expect, it } from "vitest";
import { openSqliteStore } from "../../../master/store/sqlite/index.js";
import type { Store } from "../../../master/store/types.js";
import { claim, jobParams, openSqliteTestStore, register, type SqliteTestStore } from "../../helpers/store.js";
import { removeTempDirs } from "../../helpers/temp.js";

describe("caches follow commits (sqlite)", () => {
  let t: SqliteTestStore;
  let reopened: Store | undefined;
  afterEach(async () => {
    await reopened?.close();
    reopened = undefined;
    removeTempDirs();
  });

  it("keeps a job claimable when a group it was submitted in was rolled back and replayed", async () => {
    t = openSqliteTestStore();
    const { store, database } = t;
    // One tick: the submission of a job needing a label set never seen before, and another
    // grouped write that throws. The group is undone; each item runs again on its own.
    const submitting = store.jobs.submit([jobParams({ requires: ["gpu"], type: "render" })]);
    const failing = database.grouped(() => {
      database.sqlite.prepare("INSERT INTO settings (key, value, updated_at) VALUES ('x', 'y', 'z')").run();
      throw new Error("an unexpected failure in the same group");
    });
    await expect(failing).rejects.toThrow("unexpected failure");
    const outcome = await submitting;
    if (!outcome.ok) throw new Error("submit refused");
    const job = outcome.items[0]!.job;
    await store.close();

    // After a restart, only what was committed is known.
    reopened = openSqliteStore({ path: t.path, clock: t.clock, policy: t.policy });
    expect((await reopened.jobs.get(job.id))?.status).toBe("pending");
    const gpu = await register(reopened, "gpu-node", ["gpu"]);
    expect((await claim(reopened, gpu.id)).map((j) => j.id)).toEqual([job.id]);
  });
});
