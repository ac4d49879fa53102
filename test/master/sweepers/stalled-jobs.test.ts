// The stalled-job sweep: jobs running past 2 × timeout_s + grace go back to the queue.
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { STALLED_JOB_BATCH, StalledJobSweeper } from "../../../master/sweepers/stalled-jobs.js";
import { claim, claimableWakes, dialects, jobParams, register, submit, type TestStore, storePerTest } from "../../helpers/store.js";

const silent = pino({ level: "silent" });

describe.each(dialects)("stalled-job sweep ($name)", (dialect) => {
  let t: TestStore;
  let wakes: { count: number };
  storePerTest(
    dialect,
    (opened) => {
      t = opened;
      wakes = claimableWakes(t.store);
    },
    { nodeTimeoutS: 60, stallGraceS: 30 },
  );

  it("re-queues a job running past 2 × timeout_s + grace and tells its node why", async () => {
    const job = await submit(t.store, { timeoutS: 10 });
    const node = await register(t.store);
    await claim(t.store, node.id);
    const sweeper = new StalledJobSweeper({ store: t.store, log: silent, intervalMs: 1000 });
    t.clock.advanceSeconds(49);
    await t.store.nodes.heartbeat({ nodeId: node.id, running: [{ jobId: job.id, attempt: 1 }] });
    wakes.count = 0;
    expect(await sweeper.runOnce()).toEqual([]);
    expect(wakes.count).toBe(0);
    t.clock.advanceSeconds(1);
    expect(await sweeper.runOnce()).toEqual([{ jobId: job.id, nodeId: node.id, outcome: "requeued" }]);
    expect(wakes.count).toBe(1);
    expect(await t.store.jobs.get(job.id)).toMatchObject({ status: "pending", retry_count: 1 });
    const beat = await t.store.nodes.heartbeat({ nodeId: node.id, running: [{ jobId: job.id, attempt: 1 }] });
    expect(beat.ok && beat.cancel).toEqual([{ job_id: job.id, attempt: 1, reason: "stalled" }]);
    const events = await t.store.jobs.events({ jobId: job.id, limit: 10 });
    expect(events.items.map((e) => e.event_type)).toContain("job.stalled");
    const late = await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: job.id, attempt: 1, status: "completed" }] });
    expect(late.items[0]?.verdict).toBe("stale_attempt");
  });
  it("re-queues more stalled jobs than one batch holds", async () => {
    const count = STALLED_JOB_BATCH + 5;
    await t.store.jobs.submit(Array.from({ length: count }, () => jobParams({ timeoutS: 10 })));
    const node = await register(t.store, "slow", [], count);
    await claim(t.store, node.id, count);
    t.clock.advanceSeconds(51);
    const sweeper = new StalledJobSweeper({ store: t.store, log: silent, intervalMs: 1000 });
    expect(await sweeper.runOnce()).toHaveLength(count);
    expect(await sweeper.runOnce()).toEqual([]);
  });
});
