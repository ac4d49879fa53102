// Faults of a cluster on PostgreSQL (API.md §12, issue 25): two masters on one database and
// workers that know both, while a master is killed with -9 again and again, and while the
// database itself goes away and comes back (a failover of the database, as the masters see
// it): every acknowledged job completed exactly once, one completed attempt each.
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { createTestDatabase, dropTestDatabase } from "../helpers/postgres.js";
import { havePostgresServer, PostgresServer } from "../helpers/postgres-server.js";
import { dialects } from "../helpers/store.js";
import { removeTempDirs } from "../helpers/temp.js";
import { Cluster, FULL } from "./cluster.js";

const havePostgres = dialects.some((dialect) => dialect.name === "postgres");
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let cluster: Cluster | undefined;
let server: PostgresServer | undefined;
const databases: string[] = [];

afterEach(async () => {
  // Each step whatever the one before did: a cluster that failed to stop still leaves no server nor directory behind.
  try {
    await cluster?.stopAll();
  } finally {
    cluster = undefined;
    try {
      await server?.destroy();
    } finally {
      server = undefined;
      removeTempDirs();
    }
  }
});

afterAll(async () => {
  for (const url of databases.splice(0)) await dropTestDatabase(url);
});

/** Every acknowledged job completed, once, with one completed attempt; how often handlers ran again. */
async function expectExactlyOnce(c: Cluster, ids: string[], jobs: number): Promise<number> {
  expect(new Set(ids).size).toBe(jobs);
  const verdict = await c.verify(ids);
  expect(verdict.notCompleted).toEqual([]);
  expect(verdict.completedTwice).toEqual([]);
  expect(verdict.completions).toBe(jobs);
  const runs = c.executions();
  expect(ids.every((id) => runs.has(id))).toBe(true);
  return [...runs.values()].reduce((sum, executions) => sum + executions.length - 1, 0);
}

describe.runIf(havePostgres)("two masters on PostgreSQL", () => {
  const JOBS = FULL ? 5000 : 400;
  const CRASHES = 3;

  it(`completes all ${JOBS} acknowledged jobs exactly once across ${CRASHES} kill -9 of a master, workers knowing both`, async () => {
    const url = await createTestDatabase();
    databases.push(url);
    cluster = await Cluster.create({}, { databaseUrl: url, masters: 2 });
    await cluster.startMaster(0);
    await cluster.startMaster(1);
    await cluster.startWorker("w1", { capacity: 8, minMs: 1, maxMs: 10 });
    await cluster.startWorker("w2", { capacity: 8, minMs: 1, maxMs: 10 });
    // Submissions go on through whichever master answers, retried (same keys) until acknowledged.
    const submitting = cluster.submit(JOBS, { batch: 100 });
    for (let crash = 0; crash < CRASHES; crash++) {
      await sleep(400 + Math.random() * 1200);
      // Each master in turn, the one holding the sweepers' lock among them.
      await cluster.killMaster(crash % 2);
      await sleep(Math.random() * 500);
      await cluster.startMaster(crash % 2);
    }
    const ids = await submitting;
    await cluster.waitAllCompleted(ids, FULL ? 240_000 : 90_000);
    const repeats = await expectExactlyOnce(cluster, ids, JOBS);
    console.log(`[faults] postgres, master crash: ${JOBS} jobs, ${CRASHES} kill -9 of one of two masters, ${repeats} repeated executions`);
  }, 600_000);
});

describe.runIf(havePostgres && havePostgresServer("the PostgreSQL restart fault test"))("PostgreSQL restarted under two masters", () => {
  const JOBS = FULL ? 2000 : 300;

  it(`answers 503 while the database is gone, reconnects by itself, and completes all ${JOBS} jobs exactly once`, async () => {
    server = await PostgresServer.create();
    cluster = await Cluster.create({}, { databaseUrl: server.url, masters: 2 });
    await cluster.startMaster(0);
    await cluster.startMaster(1);
    await cluster.startWorker("w1", { capacity: 8, minMs: 5, maxMs: 30 });
    await cluster.startWorker("w2", { capacity: 8, minMs: 5, maxMs: 30 });
    const submitting = cluster.submit(JOBS, { batch: 50 });
    await sleep(800);

    // A real token (the masters share the signing secret), so that a request goes past its JWT to the database.
    const token = await cluster.adminToken();
    expect(token).toBeDefined();
    await server.stop();
    // Both masters are up and say the database is unavailable: 503, never a 500 nor silence.
    for (let index = 0; index < 2; index++) {
      const response = await fetch(`${cluster.urlOf(index)}/api/v1/jobs?limit=1`, { headers: { authorization: `Bearer ${token}` } });
      expect(response.status, `master ${index}`).toBe(503);
      const ready = await fetch(`${cluster.urlOf(index)}/ready`);
      expect(ready.status, `master ${index} /ready`).toBe(503);
    }
    const refused = await cluster.call<{ status: number; type: string }>("POST", "/api/v1/jobs", { type: "work" });
    expect(refused?.status).toBe(503);
    await sleep(1500);
    await server.start();

    const ids = await submitting;
    await cluster.waitAllCompleted(ids, FULL ? 240_000 : 90_000);
    const repeats = await expectExactlyOnce(cluster, ids, JOBS);
    // Neither master died of it.
    for (const master of cluster.masters) expect(master?.proc.exitCode).toBeNull();
    console.log(`[faults] postgres restart: ${JOBS} jobs, the database down 1.5 s mid-drain, ${repeats} repeated executions`);
  }, 300_000);
});
