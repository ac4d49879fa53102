// 6a. 1,000 nodes heartbeating every second with 10,000 running jobs, sweepers running.
// 7. Master memory with 1,000,000 jobs in the database and 1,000 nodes.
import { copyFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { join } from "node:path";
import { call, makeClients, percentile, rssMb, sleep, startMaster, tempDir, token, type Settings } from "../lib.js";
import { bigDatabase } from "./store.js";

type Metrics = Record<string, number>;

/** A heartbeat's request, made once: the load generator allocates little per request, so its own garbage collections stay out of the latencies. */
interface Beat {
  path: string;
  headers: Record<string, string | number>;
  body: string;
}

function post(agent: Agent, url: URL, beat: Beat): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { agent, host: url.hostname, port: url.port, path: beat.path, method: "POST", headers: beat.headers },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", reject);
    req.end(beat.body);
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
    const url = new URL(master.url);
    // Idle connections closed after 4 s, before the master's own 5 s, as the worker's client
    // does: a stall opens extra connections, and one reused as the master closes it would
    // fail a heartbeat ("socket hang up") that the master never saw.
    const agent = new Agent({ keepAlive: true, maxSockets: 64, timeout: 4000 });
    const latencies: number[] = [];
    const failures: number[] = [];
    const started = performance.now();
    const pending: Promise<void>[] = [];
    // Each node beats once a second, spread evenly over the second.
    for (let tick = 0; performance.now() - started < durationS * 1000; tick++) {
      const node = held[tick % nodes];
      if (!node) break;
      const due = started + (tick * 1000) / nodes;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      const sent = performance.now();
      pending.push(
        post(agent, url, node).then(
          (status) => {
            latencies.push(performance.now() - sent);
            if (status !== 200) failures.push(status);
          },
          // No answer at all (the connection failed): a failed heartbeat, counted, not a crash of the run.
          (error: unknown) => {
            failures.push(0);
            process.stderr.write(`bench: heartbeat without an answer: ${(error as Error).message}\n`);
          },
        ),
      );
    }
    await Promise.all(pending);
    agent.destroy();
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
