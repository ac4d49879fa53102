// The facts GET /jobs/:id/why reasons from, as each store reads them: what a job waits on,
// which nodes could run it, how many jobs are ahead of it, and its type's flow control.
import { describe, expect, it } from "vitest";
import { JOBS_AHEAD_CAP as POSTGRES_JOBS_AHEAD_CAP } from "../../../master/store/postgres/jobs/why.js";
import { JOBS_AHEAD_CAP as SQLITE_JOBS_AHEAD_CAP } from "../../../master/store/sqlite/jobs/why.js";
import { claim, dialects, jobParams, register, submit, type TestStore, storePerTest } from "../../helpers/store.js";

describe.each(dialects)("why facts ($name)", (dialect) => {
  let t: TestStore;
  storePerTest(dialect, (opened) => (t = opened));
  const why = (id: string) => t.store.jobs.whyFacts(id);

  it("counts the pending jobs ahead in every lane the eligible nodes cover", async () => {
    const first = await submit(t.store, { type: "a" });
    await submit(t.store, { type: "b", priority: "high" }); // ahead, in a lane the node also covers
    await submit(t.store, { type: "c", priority: "live" }); // the node does not run c
    await submit(t.store, { type: "a", requires: ["gpu"] }); // the node has no gpu
    const job = await submit(t.store, { type: "a" });
    await submit(t.store, { type: "a" }); // behind it
    await register(t.store, "n", [], 1, "w", ["a", "b"]);
    const facts = await why(job.id);
    expect(facts).toMatchObject({ status: "pending", type: "a", requires: [], readyAt: null, waitingOn: [], jobsAhead: 2 });
    expect(facts?.typeControl).toEqual({ paused: false, maxRunning: null, running: 0 });
    expect(facts?.nodes).toEqual([expect.objectContaining({ name: "n", status: "online", types: ["a", "b"], running: 0, capacity: 1 })]);
    expect((await why(first.id))?.jobsAhead).toBe(1);
    expect(await why("nope")).toBeUndefined();
  });

  it("counts its own lane when no node can run it, and stops counting at the cap", async () => {
    const job = await submit(t.store, { type: "a", priority: "low" });
    expect((await why(job.id))?.jobsAhead).toBe(0);
    const cap = dialect.name === "sqlite" ? SQLITE_JOBS_AHEAD_CAP : POSTGRES_JOBS_AHEAD_CAP;
    for (let submitted = 0; submitted < cap; submitted += 2_500) {
      const outcome = await t.store.jobs.submit(Array.from({ length: 2_500 }, () => jobParams({ type: "a", priority: "high" })));
      if (!outcome.ok) throw new Error("refused");
      if (submitted === 0) expect((await why(job.id))?.jobsAhead).toBe(2_500);
    }
    expect((await why(job.id))?.jobsAhead).toBeNull();
  });

  it("names what a blocked job waits for, when a scheduled one is due, and its type's limit", async () => {
    const dependency = await submit(t.store);
    const blocked = await submit(t.store, { dependsOn: [dependency.id] });
    expect(await why(blocked.id)).toMatchObject({ status: "blocked", waitingOn: [{ id: dependency.id, status: "pending" }], jobsAhead: null });
    const later = await submit(t.store, { runAt: new Date("2026-01-02T00:00:00.000Z") });
    expect(await why(later.id)).toMatchObject({ status: "scheduled", readyAt: "2026-01-02T00:00:00.000Z" });
    await t.store.types.set({ type: "echo", maxRunning: 1, actor: null, since: new Date(0) });
    const node = await register(t.store, "n", [], 5);
    await claim(t.store, node.id, 1);
    expect((await why(later.id))?.typeControl).toEqual({ paused: false, maxRunning: 1, running: 1 });
  });
});
