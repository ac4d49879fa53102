// 5b. Flow control (API.md §5a): the claim rate of a node with 100,000 jobs of a paused
//     type, then of a type at its limit, at the head of the queue, against a node of a
//     store without them. Measured on the store itself, as the unrunnable-head figures
//     are, the two stores in turns (blocks of claims one after the other), so that the
//     machine's drift from second to second (its disk above all) falls on both alike.
//     And how long a bulk cancel and a bulk retry of 10,000 jobs hold the event loop.
//     And the claim's cost with fair share between clients on (API.md §5a), 1,000 clients
//     and 1,000,000 pending jobs, against the same database with it off (issue 21: ≤ 1.5×).
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import type { Store } from "../../master/store/types.js";
import { median, tempDir, type Settings } from "../lib.js";
import { claimCost, fillStore, openStore } from "./store.js";
import { submittedPayload, type SubmitJobParams } from "../../master/store/types.js";

type Metrics = Record<string, number>;

const BLOCKS = 20;

/**
 * A store with 1,000 jobs a node runs (and `fill` before it opens for the claims: closed
 * and opened again, so that the checkpoint of a large fill is over before anything is
 * measured, as in the 1,000,000-job database of the scaling figures).
 */
async function storeWithNode(name: string, fill?: (store: Store) => Promise<void>): Promise<{ store: Store; nodeId: string }> {
  const path = join(tempDir(), name);
  let store = openStore(path);
  await fillStore(store, 1000);
  if (fill) {
    await fill(store);
    await store.close();
    store = openStore(path);
  }
  const { node } = await store.nodes.register({ clientId: "w", name: "n", labels: [], capacity: 1_000_000, types: null, version: null, hardware: {} });
  return { store, nodeId: node.id };
}

/** ms of one bulk cancel, then one bulk retry, of 10,000 jobs among `others`: one transaction each, on the event loop. */
async function bulkActions(store: Store): Promise<{ cancelMs: number; retryMs: number }> {
  await fillStore(store, 10_000, { type: "bulk" });
  const params = { filter: { type: "bulk" }, max: 10_000, actor: null, shownFilter: { type: "bulk" } };
  let started = performance.now();
  const canceled = await store.jobs.cancelMatching(params);
  const cancelMs = performance.now() - started;
  started = performance.now();
  const retried = await store.jobs.retryMatching(params);
  const retryMs = performance.now() - started;
  if (canceled.changed !== 10_000 || retried.changed !== 10_000) throw new Error(`bulk actions changed ${canceled.changed} and ${retried.changed} jobs`);
  return { cancelMs, retryMs };
}

/**
 * The normal store's claim cost over the held one's: a block of claims on each, one after
 * the other, gives one ratio; the figure is the median of the blocks' ratios.
 */
async function inTurns(normal: { store: Store; nodeId: string }, held: { store: Store; nodeId: string }, rounds: number): Promise<number> {
  const ratios: number[] = [];
  for (let block = 0; block < BLOCKS; block++) {
    const normalCost = await claimCost(normal.store, normal.nodeId, rounds / BLOCKS);
    ratios.push(normalCost / (await claimCost(held.store, held.nodeId, rounds / BLOCKS)));
  }
  return median(ratios);
}

function clientJob(clientId: string): SubmitJobParams {
  return { clientId, type: "noop", ...submittedPayload({ n: 1 }), priority: "medium", maxRetries: 3, timeoutS: 60, runAt: null, requires: [], dependsOn: [], idempotencyKey: null, tags: {} };
}

/** Median µs of `rounds` claims of 10, each claimed job completed and replaced by a job of the same client. */
async function clientClaimCost(store: Store, nodeId: string, rounds: number): Promise<number> {
  const costs: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const started = performance.now();
    const outcome = await store.jobs.claim({ nodeId, max: 10 });
    costs.push((performance.now() - started) * 1000);
    if (!outcome.ok || outcome.items.length !== 10) throw new Error("claim failed");
    await store.jobs.report({ nodeId, reports: outcome.items.map((item) => ({ jobId: item.id, attempt: item.attempt, status: "completed" as const })) });
    const clients = await Promise.all(outcome.items.map(async (item) => (await store.jobs.get(item.id))?.client_id ?? "c0"));
    await store.jobs.submit(clients.map((clientId) => clientJob(clientId)));
  }
  return median(costs);
}

/**
 * The claim cost with fair share on over the cost with it off: one database of `count`
 * pending jobs from `clients` clients (submitted in turns, batches of 1,000 per client),
 * copied, fair share turned on in the copy; claims in turns, as above. Answers the ratio
 * and the two median costs (µs).
 */
async function fairShareCost(count: number, clients: number, rounds: number): Promise<{ ratio: number; offUs: number; onUs: number }> {
  const dir = tempDir();
  const offPath = join(dir, "fair-off.db");
  let store = openStore(offPath);
  const perBatch = 1000;
  for (let done = 0, batch = 0; done < count; done += perBatch, batch++) {
    const outcome = await store.jobs.submit(Array.from({ length: Math.min(perBatch, count - done) }, (_, i) => clientJob(`c${(batch * perBatch + i) % clients}`)));
    if (!outcome.ok) throw new Error("fill failed");
  }
  await store.close();
  const onPath = join(dir, "fair-on.db");
  copyFileSync(offPath, onPath);
  store = openStore(onPath);
  await store.jobs.setFairShare("clients");
  await store.close();
  const open = async (path: string) => {
    const opened = openStore(path);
    const { node } = await opened.nodes.register({ clientId: "w", name: "n", labels: [], capacity: 1_000_000, types: null, version: null, hardware: {} });
    return { store: opened, nodeId: node.id };
  };
  const off = await open(offPath);
  const on = await open(onPath);
  await clientClaimCost(off.store, off.nodeId, rounds / 4);
  await clientClaimCost(on.store, on.nodeId, rounds / 4);
  const ratios: number[] = [];
  const offCosts: number[] = [];
  const onCosts: number[] = [];
  for (let block = 0; block < BLOCKS; block++) {
    const onCost = await clientClaimCost(on.store, on.nodeId, rounds / BLOCKS);
    const offCost = await clientClaimCost(off.store, off.nodeId, rounds / BLOCKS);
    onCosts.push(onCost);
    offCosts.push(offCost);
    ratios.push(onCost / offCost);
  }
  await on.store.close();
  await off.store.close();
  return { ratio: median(ratios), offUs: median(offCosts), onUs: median(onCosts) };
}

export async function flowControl(settings: Settings): Promise<Metrics> {
  const rounds = settings.size === "full" ? 2000 : 100;
  const count = settings.size === "full" ? 100_000 : 5_000;
  // Live, so that without the pause every one of them would go first.
  const held = await storeWithNode("flow-held.db", (store) => fillStore(store, count, { priority: "live", type: "paused-type" }));
  await held.store.types.set({ type: "paused-type", paused: true, actor: null, since: new Date(0) });
  const normal = await storeWithNode("flow-normal.db");
  // Warm up both (and let the held store's checkpoint of its fill go by).
  await claimCost(held.store, held.nodeId, rounds / 4);
  await claimCost(normal.store, normal.nodeId, rounds / 4);
  const paused = await inTurns(normal, held, rounds);
  // The same jobs, resumed but limited to none running at once.
  await held.store.types.set({ type: "paused-type", paused: false, maxRunning: 0, actor: null, since: new Date(0) });
  const limited = await inTurns(normal, held, rounds);
  const info = (await held.store.types.list({ since: new Date(0) })).find((type) => type.type === "paused-type");
  const bulk = await bulkActions(held.store);
  await held.store.close();
  await normal.store.close();
  if (info?.pending !== count || info.running !== 0) throw new Error(`the held type's jobs moved: ${JSON.stringify(info)}`);
  const shown = count.toLocaleString("en");
  const fairJobs = settings.size === "full" ? 1_000_000 : 20_000;
  const fairClients = settings.size === "full" ? 1000 : 100;
  const fair = await fairShareCost(fairJobs, fairClients, rounds);
  const fairShown = `${fairClients.toLocaleString("en")} clients, ${fairJobs.toLocaleString("en")} pending`;
  return {
    [`claim cost with fair share on, ${fairShown} (ratio to off)`]: fair.ratio,
    [`claim of 10 with fair share off, ${fairShown} (µs)`]: fair.offUs,
    [`claim of 10 with fair share on, ${fairShown} (µs)`]: fair.onUs,
    [`claim rate with ${shown} jobs of a paused type at the head (share of normal)`]: paused,
    [`claim rate with ${shown} jobs of a type at its limit at the head (share of normal)`]: limited,
    [`bulk cancel of 10,000 jobs, ${(count + 11_000).toLocaleString("en")} in the table (ms, one transaction)`]: bulk.cancelMs,
    [`bulk retry of 10,000 jobs, ${(count + 11_000).toLocaleString("en")} in the table (ms, one transaction)`]: bulk.retryMs,
  };
}
