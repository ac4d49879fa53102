// kill -9 of the master, again and again, while two workers drain the queue:
// every acknowledged job ends completed exactly once and the database stays intact.
import { afterEach, describe, expect, it } from "vitest";
import { removeTempDirs } from "../helpers/temp.js";
import { Cluster, FULL } from "./cluster.js";

const JOBS = FULL ? 5000 : 400;
const CRASHES = FULL ? 5 : 2;

let cluster: Cluster | undefined;
afterEach(async () => {
  await cluster?.stopAll();
  removeTempDirs();
});

describe("master crash", () => {
  // The store in process (the default) and on a thread of its own (GAFFER_STORE_THREAD=on).
  it.each(["off", "on"])(`completes all ${JOBS} acknowledged jobs exactly once across ${CRASHES} kill -9 of the master (store thread %s)`, async (storeThread) => {
    cluster = await Cluster.create({ GAFFER_STORE_THREAD: storeThread });
    await cluster.startMaster();
    await cluster.startWorker("w1", { capacity: 8, minMs: 1, maxMs: 10 });
    await cluster.startWorker("w2", { capacity: 8, minMs: 1, maxMs: 10 });
    // Submissions go on while the master crashes: a batch is retried (same keys) until acknowledged.
    const submitting = cluster.submit(JOBS, { batch: 100 });
    for (let crash = 0; crash < CRASHES; crash++) {
      await new Promise((resolve) => setTimeout(resolve, 400 + Math.random() * 1200));
      await cluster.killMaster();
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 500));
      await cluster.startMaster();
    }
    const ids = await submitting;
    expect(new Set(ids).size).toBe(JOBS);
    try {
      await cluster.waitAllCompleted(ids, FULL ? 240_000 : 90_000);
    } catch (error) {
      // What the master looked like when work stopped flowing.
      console.log("jobs:", JSON.stringify(cluster.read("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")));
      console.log("state:", JSON.stringify((await cluster.call<{ counts: unknown }>("GET", "/api/v1/state"))?.body.counts));
      throw error;
    }
    const verdict = await cluster.verify(ids);
    expect(verdict.integrity).toBe("ok");
    expect(verdict.notCompleted).toEqual([]);
    expect(verdict.completedTwice).toEqual([]);
    expect(verdict.completions).toBe(JOBS);
    const runs = cluster.executions();
    const repeated = [...runs.values()].filter((executions) => executions.length > 1);
    const repeats = repeated.reduce((sum, executions) => sum + executions.length - 1, 0);
    // At least once: a handler may run again when its lease was lost; report how often.
    // A claim whose answer died with the master leaves its jobs leased to a node that never got them:
    // they run once, under a later attempt, after the lease ends.
    const lateFirstRuns = [...runs.values()].filter((executions) => executions.length === 1 && (executions[0]?.attempt ?? 1) > 1).length;
    console.log(
      `[faults] master crash (store thread ${storeThread}): ${JOBS} jobs, ${CRASHES} kill -9, ${repeats} repeated executions (${repeated.length} jobs), ` +
        `${lateFirstRuns} jobs first run under a later attempt (lost claim answers)`,
    );
    expect(ids.every((id) => runs.has(id))).toBe(true);
  }, 600_000);
});
