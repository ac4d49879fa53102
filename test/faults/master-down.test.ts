// The master goes away while workers work: results wait in the workers' outboxes,
// and a master back after a long stop gives live nodes time to report before judging them.
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { removeTempDirs } from "../helpers/temp.js";
import { Cluster, FULL } from "./cluster.js";

let cluster: Cluster | undefined;
afterEach(async () => {
  await cluster?.stopAll();
  removeTempDirs();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function allRunning(c: Cluster, ids: string[]): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (c.executions().size < ids.length) {
    if (Date.now() > deadline) throw new Error(`only ${c.executions().size} of ${ids.length} jobs started`);
    await sleep(100);
  }
}

describe("master down", () => {
  const JOBS = FULL ? 200 : 40;

  it("delivers every result produced while the master was down, with no job run twice", async () => {
    cluster = await Cluster.create();
    await cluster.startMaster();
    await cluster.startWorker("w1", { capacity: JOBS, minMs: 1000, maxMs: 2000 });
    await cluster.startWorker("w2", { capacity: JOBS, minMs: 1000, maxMs: 2000 });
    const ids = await cluster.submit(JOBS);
    await allRunning(cluster, ids);
    await cluster.killMaster();
    // Every handler finishes while the master is down (and for longer than the node timeout).
    await sleep(3500);
    // Every result is on disk in a worker's outbox, waiting.
    const waiting = ["w1", "w2"].reduce((sum, name) => {
      const outbox = new Database(join(cluster?.dir ?? "", `state-${name}`, "outbox.db"), { readonly: true });
      try {
        // A row a result, or a row a batch of them (a JSON array).
        const rows = outbox.prepare("SELECT (SELECT COUNT(*) FROM results) + (SELECT COALESCE(SUM(json_array_length(results)), 0) FROM batches) AS n");
        return sum + (rows.get() as { n: number }).n;
      } finally {
        outbox.close();
      }
    }, 0);
    expect(waiting).toBe(JOBS);
    await cluster.startMaster();
    await cluster.waitAllCompleted(ids, 60_000);
    const verdict = await cluster.verify(ids);
    expect(verdict.notCompleted).toEqual([]);
    expect(verdict.completedTwice).toEqual([]);
    const attempts = cluster.read<{ attempt: number; n: number }>("SELECT attempt, COUNT(*) AS n FROM jobs GROUP BY attempt");
    expect(attempts).toEqual([{ attempt: 1, n: JOBS }]);
    expect([...cluster.executions().values()].every((runs) => runs.length === 1)).toBe(true);
    console.log(`[faults] master down: ${JOBS} results waited in outboxes for 3.5 s and all arrived, none re-run`);
  }, 180_000);
});

describe("clock", () => {
  it("does not re-queue jobs of live nodes after a stop of four node timeouts", async () => {
    cluster = await Cluster.create();
    await cluster.startMaster();
    await cluster.startWorker("steady", { capacity: 4, minMs: 10_000, maxMs: 10_000 });
    const ids = await cluster.submit(4);
    await allRunning(cluster, ids);
    await cluster.killMaster();
    // 8 s down: every heartbeat in the database is four node timeouts (2 s) old at restart.
    await sleep(8000);
    await cluster.startMaster();
    await cluster.waitAllCompleted(ids, 30_000);
    const reassigned = cluster.read<{ n: number }>("SELECT COUNT(*) AS n FROM audit_log WHERE event_type IN ('job.reassigned', 'node.dead')")[0]?.n;
    expect(reassigned).toBe(0);
    expect(cluster.read<{ attempt: number }>("SELECT DISTINCT attempt FROM jobs")).toEqual([{ attempt: 1 }]);
  }, 120_000);
});
