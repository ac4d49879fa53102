// 6a. 1,000 nodes heartbeating every second with 10,000 running jobs, sweepers running.
// 7. Master memory with 1,000,000 jobs in the database and 1,000 nodes.
import { copyFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Beat } from "../heartbeat-generator.js";
import { call, makeClients, percentile, rssMb, startMaster, startNodeScript, tempDir, token, type Running, type Settings } from "../lib.js";
import { bigDatabase } from "./store.js";

type Metrics = Record<string, number>;

const NODES_PER_GENERATOR = 250;

/** Start a generator's beats and wait for its latencies. */
function resultOf(generator: Running): Promise<{ latencies: number[]; failures: number[] }> {
  return new Promise((resolve) => {
    generator.proc.once("message", (message) => resolve(message as { latencies: number[]; failures: number[] }));
    generator.proc.send("go");
  });
}

export async function heartbeats(settings: Settings): Promise<Metrics> {
  const nodes = settings.size === "full" ? 1000 : 50;
  const durationS = settings.size === "full" ? 10 : 2;
  const dir = tempDir();
  const db = join(dir, "nodes.db");
  const credentials = await makeClients(db);
  const master = await startMaster(db, { GAFFER_SWEEP_INTERVAL_S: "1" });
  try {
    const client = await token(master.url, credentials.client);
    const worker = await token(master.url, credentials.worker);
    for (let done = 0; done < nodes * 10; done += 1000) {
      await call(master.url, client, "POST", "/api/v1/jobs/batch", { jobs: Array.from({ length: Math.min(1000, nodes * 10 - done) }, () => ({ type: "noop" })) });
    }
    const held: Beat[] = [];
    for (let i = 0; i < nodes; i++) {
      const node = await call<{ id: string }>(master.url, worker, "POST", "/api/v1/nodes", { name: `sim-${i}`, capacity: 10 });
      const claimed = await call<{ items: { id: string; attempt: number }[] }>(master.url, worker, "POST", `/api/v1/nodes/${node.id}/claim`, { max: 10 });
      const body = JSON.stringify({ running: claimed.items.map((job) => ({ job_id: job.id, attempt: job.attempt })) });
      held.push({
        path: `/api/v1/nodes/${node.id}/heartbeat`,
        headers: { authorization: `Bearer ${worker}`, "content-type": "application/json", "content-length": Buffer.byteLength(body) },
        body,
      });
    }
    // One generator process per 250 nodes (issue 24): one process beating all 1,000 saw its
    // own event loop's and collections' pauses as the master's latency.
    const generators = Math.max(1, Math.ceil(nodes / NODES_PER_GENERATOR));
    const started = await Promise.all(
      Array.from({ length: generators }, (_, g) => {
        const file = join(dir, `beats-${g}.json`);
        writeFileSync(file, JSON.stringify(held.filter((_, i) => i % generators === g)));
        return startNodeScript("heartbeat-generator.js", [master.url, file, String(durationS), String(g / generators)], {}, /heartbeat generator ready/);
      }),
    );
    const results = await Promise.all(started.map((generator) => resultOf(generator)));
    await Promise.all(started.map((generator) => generator.stop()));
    const latencies = results.flatMap((result) => result.latencies);
    const failures = results.flatMap((result) => result.failures);
    return {
      [`heartbeat p50 (ms, ${nodes} nodes, ${nodes * 10} running jobs)`]: percentile(latencies, 50),
      "heartbeat p99 (ms)": percentile(latencies, 99),
      "heartbeats failed": failures.length,
    };
  } finally {
    await master.stop();
  }
}

export async function memory(settings: Settings): Promise<Metrics> {
  const { path, pending } = await bigDatabase(settings);
  const dir = tempDir();
  const db = join(dir, "memory.db");
  copyFileSync(path, db);
  const credentials = await makeClients(db);
  const master = await startMaster(db);
  try {
    const worker = await token(master.url, credentials.worker);
    const admin = await token(master.url, credentials.admin);
    const nodes = settings.size === "full" ? 1000 : 50;
    for (let i = 0; i < nodes; i++) {
      const node = await call<{ id: string }>(master.url, worker, "POST", "/api/v1/nodes", { name: `m-${i}`, capacity: 2 });
      await call(master.url, worker, "POST", `/api/v1/nodes/${node.id}/claim`, { max: 2 });
    }
    for (let i = 0; i < 20; i++) {
      await call(master.url, admin, "GET", "/api/v1/queue/stats");
      await call(master.url, admin, "GET", "/api/v1/jobs?limit=500");
      await call(master.url, admin, "GET", "/api/v1/nodes?limit=500");
      await (await fetch(`${master.url}/metrics`)).text();
    }
    const pid = master.proc.pid;
    if (pid === undefined) throw new Error("no pid");
    // What the RSS is made of: V8's heap (from the master's own metrics) and all anonymous memory (V8 + malloc, SQLite's cache).
    const metrics = await (await fetch(`${master.url}/metrics`)).text();
    const heapBytes = Number(/^gaffer_nodejs_heap_size_total_bytes (\d+)/m.exec(metrics)?.[1] ?? NaN);
    return {
      [`master RSS with ${pending.toLocaleString("en")} jobs and ${nodes} nodes (MB)`]: rssMb(pid),
      "master V8 heap (MB)": heapBytes / 2 ** 20,
      "master anonymous memory (MB)": rssMb(pid, "RssAnon"),
    };
  } finally {
    await master.stop();
  }
}
