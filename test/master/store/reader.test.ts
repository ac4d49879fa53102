// Queue stats, on the master's connection and in the reader thread. They scan every
// job: the master reads them in a thread of their own, so a dashboard's poll or a
// metrics scrape never stops the event loop for the scan.
import { afterEach, describe, expect, it } from "vitest";
import { dialects, jobParams, register, submit, type TestStore } from "../../helpers/store.js";
import { removeTempDirs } from "../../helpers/temp.js";

const sqlite = dialects[0];
if (!sqlite) throw new Error("no dialect");

describe("queue stats", () => {
  let t: TestStore;
  afterEach(async () => {
    await t.store.close();
    removeTempDirs();
  });

  it.each([true, false])("counts jobs by status, pending by priority, nodes by status (reader thread: %s)", async (readerThread) => {
    t = sqlite.open({ readerThread });
    await submit(t.store, { priority: "live" });
    await submit(t.store, { priority: "batch" });
    await submit(t.store, { runAt: new Date(t.clock.now().getTime() + 60_000) });
    await register(t.store);
    t.clock.advanceSeconds(10);
    const stats = await t.store.jobs.stats();
    expect(stats.jobs).toMatchObject({ pending: 2, scheduled: 1, running: 0 });
    expect(stats.pending_by_priority).toEqual({ live: 1, high: 0, medium: 0, low: 0, batch: 1 });
    expect(stats.oldest_pending_age_s).toBe(10);
    expect(stats.nodes).toEqual({ online: 1, draining: 0, dead: 0, offline: 0 });
    // A commit just made is in the next read.
    await submit(t.store, { priority: "live" });
    expect((await t.store.jobs.stats()).pending_by_priority.live).toBe(2);
  });

  it.each([true, false])("counts finished jobs a minute (reader thread: %s)", async (readerThread) => {
    t = sqlite.open({ readerThread });
    const jobs = [await submit(t.store), await submit(t.store)];
    const node = await register(t.store);
    await t.store.jobs.claim({ nodeId: node.id, max: 2 });
    await t.store.jobs.report({
      nodeId: node.id,
      reports: [
        { jobId: jobs[0]?.id ?? "", attempt: 1, status: "completed" },
        { jobId: jobs[1]?.id ?? "", attempt: 1, status: "failed", error: { message: "no", retryable: false } },
      ],
    });
    const minute = `${t.clock.now().toISOString().slice(0, 16)}:00.000Z`;
    expect(await t.store.jobs.throughput({ since: new Date(t.clock.now().getTime() - 3_600_000) })).toEqual([{ minute, completed: 1, failed: 1 }]);
  });

  it.each([
    ["keeps the event loop turning while it reads", true, true],
    ["(on the master's connection the loop stops for the scan)", false, false],
  ])("%s", async (_, readerThread, turns) => {
    t = sqlite.open({ readerThread });
    for (let done = 0; done < 20_000; done += 1000) {
      const outcome = await t.store.jobs.submit(Array.from({ length: 1000 }, () => jobParams()));
      if (!outcome.ok) throw new Error("submit failed");
    }
    let turned = 0;
    let reading = true;
    const spin = () => {
      if (!reading) return;
      turned += 1;
      setImmediate(spin);
    };
    setImmediate(spin);
    const stats = await t.store.jobs.stats();
    reading = false;
    expect(stats.jobs.pending).toBe(20_000);
    expect(turned > 0).toBe(turns);
  });
});
