// 5. Scaling: the claim's cost at 1,000 and at 1,000,000 pending jobs, and with 100,000
//    jobs the node cannot run (labels it lacks, a type it does not run) at the head of the
//    queue. Measured on the store itself.
// 6b. A dead-node sweep that re-queues 1,000 jobs.
import { join } from "node:path";
import { pino } from "pino";
import { defaultQueuePolicy } from "../../master/queue/policy.js";
import { openSqliteStore } from "../../master/store/sqlite/index.js";
import { submittedPayload, type Clock, type Store, type SubmitJobParams } from "../../master/store/types.js";
import { DeadNodeSweeper } from "../../master/sweepers/dead-nodes.js";
import { median, tempDir, type Settings } from "../lib.js";

type Metrics = Record<string, number>;

class ManualClock implements Clock {
  at = Date.now();
  now(): Date {
    return new Date(this.at);
  }
}

const policy = defaultQueuePolicy();

/** A no-op job as the bench submits it straight to a store. */
export function benchJob(overrides: Partial<SubmitJobParams> = {}): SubmitJobParams {
  return {
    clientId: "bench",
    type: "noop",
    ...submittedPayload("payload" in overrides ? overrides.payload : { n: 1 }),
    priority: "medium",
    maxRetries: 3,
    timeoutS: 60,
    runAt: null,
    requires: [],
    dependsOn: [],
    idempotencyKey: null,
    tags: {},
    ...overrides,
  };
}

export function openStore(path: string, clock: Clock = new ManualClock()): Store {
  return openSqliteStore({ path, clock, policy, synchronous: "full", backgroundCheckpoints: true, syncOffThread: true });
}

export async function fillStore(store: Store, count: number, overrides: Partial<SubmitJobParams> = {}): Promise<void> {
  for (let done = 0; done < count; done += 1000) {
    const outcome = await store.jobs.submit(Array.from({ length: Math.min(1000, count - done) }, () => benchJob(overrides)));
    if (!outcome.ok) throw new Error("fill failed");
  }
}

/** Median µs of `rounds` claims of 10, keeping the queue's size steady (each claimed job is completed and replaced). */
export async function claimCost(store: Store, nodeId: string, rounds: number): Promise<number> {
  const costs: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const started = performance.now();
    const outcome = await store.jobs.claim({ nodeId, max: 10 });
    costs.push((performance.now() - started) * 1000);
    if (!outcome.ok) throw new Error("claim failed");
    await store.jobs.report({ nodeId, reports: outcome.items.map((item) => ({ jobId: item.id, attempt: item.attempt, status: "completed" as const })) });
    await store.jobs.submit(outcome.items.map(() => benchJob()));
  }
  return median(costs);
}

let big: { path: string; pending: number } | undefined;

/** The 1,000,000-job database, built once per bench run (and reused by the memory benchmark). */
export async function bigDatabase(settings: Settings): Promise<{ path: string; pending: number }> {
  if (big) return big;
  const pending = settings.size === "full" ? 1_000_000 : 10_000;
  const path = join(tempDir(), "big.db");
  // Submitted "an hour ago": every job is due for aging when the memory benchmark's master
  // starts, as in any backlog older than the aging interval. (Whether the sweep ran used to
  // depend on how long the run took; its per-job Kysely queries cost the master 35 MB.)
  const clock = new ManualClock();
  clock.at -= 3_600_000;
  const store = openStore(path, clock);
  await fillStore(store, pending);
  await store.close();
  big = { path, pending };
  return big;
}

export async function scaling(settings: Settings): Promise<Metrics> {
  const rounds = settings.size === "full" ? 2000 : 100;
  const small = openStore(join(tempDir(), "small.db"));
  await fillStore(small, 1000);
  const smallNode = (await small.nodes.register({ clientId: "w", name: "n", labels: [], capacity: 1_000_000, types: null, version: null, hardware: {} })).node;
  const { path, pending } = await bigDatabase(settings);
  const large = openStore(path);
  const largeNode = (await large.nodes.register({ clientId: "w", name: "n", labels: [], capacity: 1_000_000, types: null, version: null, hardware: {} })).node;
  await claimCost(small, smallNode.id, 50); // warm up both
  await claimCost(large, largeNode.id, 50);
  const atSmall = await claimCost(small, smallNode.id, rounds);
  const atLarge = await claimCost(large, largeNode.id, rounds);
  await large.close();

  // 100,000 live jobs that need a label no node has, at the head of the queue.
  const blockedHead = settings.size === "full" ? 100_000 : 5_000;
  const before = await claimCost(small, smallNode.id, rounds);
  await fillStore(small, blockedHead, { priority: "live", requires: ["gpu"] });
  const after = await claimCost(small, smallNode.id, rounds);
  // The same for jobs of a type the node has no handler for.
  const typedNode = (await small.nodes.register({ clientId: "w", name: "typed", labels: [], capacity: 1_000_000, types: ["noop"], version: null, hardware: {} })).node;
  const typedBefore = await claimCost(small, typedNode.id, rounds);
  await fillStore(small, blockedHead, { priority: "live", type: "resize" });
  const typedAfter = await claimCost(small, typedNode.id, rounds);
  await small.close();
  return {
    [`claim rate with ${blockedHead.toLocaleString("en")} jobs of a type it does not run at the head (share of normal)`]: typedBefore / typedAfter,
    "claim of 10 at 1,000 pending (µs)": atSmall,
    [`claim of 10 at ${pending.toLocaleString("en")} pending (µs)`]: atLarge,
    "claim cost ratio, large / 1,000": atLarge / atSmall,
    [`claim rate with ${blockedHead.toLocaleString("en")} unrunnable jobs at the head (share of normal)`]: before / after,
  };
}

export async function deadNodeSweep(settings: Settings): Promise<Metrics> {
  const nodes = settings.size === "full" ? 100 : 10;
  const clock = new ManualClock();
  const store = openStore(join(tempDir(), "sweep.db"), clock);
  await fillStore(store, nodes * 10);
  for (let i = 0; i < nodes; i++) {
    const { node } = await store.nodes.register({ clientId: "w", name: `n${i}`, labels: [], capacity: 10, types: null, version: null, hardware: {} });
    await store.jobs.claim({ nodeId: node.id, max: 10 });
  }
  clock.at += 120_000;
  const sweeper = new DeadNodeSweeper({
    store,
    clock,
    log: pino({ level: "silent" }),
    nodeTimeoutMs: 60_000,
    intervalMs: 10_000,
    reportingSince: () => new Date(0),
  });
  const started = performance.now();
  const sweep = await sweeper.runOnce();
  const ms = performance.now() - started;
  await store.close();
  const requeued = sweep.dead.reduce((sum, node) => sum + node.jobs.length, 0);
  return { [`dead-node sweep re-queuing ${requeued} jobs (ms)`]: ms };
}
