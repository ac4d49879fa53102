// The jobs that fail because a job they wait on ended failed or canceled, on every dialect:
// each job.failed row names the dependency that made it fail first, in the order the verb
// (a batch of reports, a cancel, a bulk cancel, a dead node's sweep) ended its jobs.
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DeadNodeSweeper } from "../../../master/sweepers/dead-nodes.js";
import { claim, dialects, register, submit, type TestStore } from "../../helpers/store.js";
import { removeTempDirs } from "../../helpers/temp.js";

describe.each(dialects)("dependents failed ($name)", (dialect) => {
  let t: TestStore;
  beforeEach(async () => {
    t = await dialect.open({ nodeTimeoutS: 60 });
  });
  afterEach(async () => {
    await t.store.close();
    removeTempDirs();
  });

  /** The dependency a job's job.failed row names (undefined: it did not fail so). */
  async function named(id: string): Promise<unknown> {
    const events = (await t.store.jobs.events({ jobId: id, limit: 20 })).items.filter((event) => event.event_type === "job.failed");
    expect(events).toHaveLength(1);
    expect(events[0]?.details).toMatchObject({ failure_reason: "dependency_failed" });
    return (events[0]?.details as { dependency?: unknown }).dependency;
  }

  /** Jobs `a` and `b` running on one node, their retries spent. */
  async function twoRunning() {
    const a = await submit(t.store, { type: "root", maxRetries: 0 });
    const b = await submit(t.store, { type: "root", maxRetries: 0 });
    const node = await register(t.store, "n", [], 2);
    expect(await claim(t.store, node.id, 2)).toHaveLength(2);
    return { a, b, node };
  }

  it("names, in a diamond whose two dependencies fail in one batch of reports, the one reported first", async () => {
    const { a, b, node } = await twoRunning();
    const c = await submit(t.store, { dependsOn: [a.id, b.id] });
    const failed = (id: string) => ({ jobId: id, attempt: 1, status: "failed" as const, error: { message: "x", retryable: false } });
    await t.store.jobs.report({ nodeId: node.id, reports: [failed(b.id), failed(a.id)] });
    expect(await named(c.id)).toBe(b.id);
  });

  it("fails one ended job's whole cascade before the next one's: in a bulk cancel, oldest first", async () => {
    const a = await submit(t.store, { type: "root" });
    const b = await submit(t.store, { type: "root" });
    const c = await submit(t.store, { dependsOn: [a.id] });
    // e waits on c (waiting on a) and on b: a's cancel reaches it through c before b is canceled.
    const e = await submit(t.store, { dependsOn: [b.id, c.id] });
    expect(await t.store.jobs.cancelMatching({ filter: { type: "root" }, max: 10, actor: "admin", shownFilter: { type: "root" } })).toMatchObject({ changed: 2 });
    expect(await named(c.id)).toBe(a.id);
    expect(await named(e.id)).toBe(c.id);
  });

  it("fails a cascade level by level, each job's dependents oldest first: one waiting on two of them names the older", async () => {
    const a = await submit(t.store);
    const c = await submit(t.store, { dependsOn: [a.id] });
    const d = await submit(t.store, { dependsOn: [a.id] });
    const f = await submit(t.store, { dependsOn: [d.id, c.id] });
    const g = await submit(t.store, { dependsOn: [a.id] });
    // h waits on f (two levels below a) and on g (one level): g failed first.
    const h = await submit(t.store, { dependsOn: [f.id, g.id] });
    await t.store.jobs.cancel({ id: a.id, actor: "admin" });
    expect([await named(c.id), await named(d.id), await named(g.id), await named(f.id), await named(h.id)]).toEqual([a.id, a.id, a.id, c.id, g.id]);
  });

  it("fails the dependents of jobs that stalled at the same moment oldest first", async () => {
    const { a, b } = await twoRunning();
    const diamond = await submit(t.store, { dependsOn: [b.id, a.id] });
    if (dialect.name === "postgres") {
      // a's row moved (as rows do once vacuumed space is reused): its stall_at's index entry now comes after b's.
      await t.query("UPDATE jobs SET stall_at = stall_at + interval '1 second' WHERE id = ?", [a.id]);
      await t.query("UPDATE jobs SET stall_at = stall_at - interval '1 second' WHERE id = ?", [a.id]);
    }
    t.clock.advanceSeconds(3600);
    expect((await t.store.jobs.rescueStalled({ limit: 10 })).map((job) => [job.jobId, job.outcome])).toEqual([[a.id, "failed"], [b.id, "failed"]]);
    expect(await named(diamond.id)).toBe(a.id);
  });

  it("fails the dependents of a dead node's jobs oldest lease first, each lease's cascade before the next one's", async () => {
    const { a, b } = await twoRunning();
    const c = await submit(t.store, { dependsOn: [a.id] });
    // e waits on b and on c (waiting on a): a's cascade reaches it through c before b's turn.
    const e = await submit(t.store, { dependsOn: [b.id, c.id] });
    const diamond = await submit(t.store, { dependsOn: [b.id, a.id] });
    t.clock.advance(60_000 + t.policy.heartbeatWriteMs + 1000);
    const sweeper = new DeadNodeSweeper({ store: t.store, clock: t.clock, log: pino({ level: "silent" }), nodeTimeoutMs: 60_000, intervalMs: 10_000, reportingSince: () => new Date(0) });
    expect((await sweeper.runOnce()).dead[0]?.jobs.map((job) => job.outcome)).toEqual(["failed", "failed"]);
    expect([await named(c.id), await named(e.id), await named(diamond.id)]).toEqual([a.id, c.id, a.id]);
  });
});
