// Waiting for results (API.md §5 `?wait_s=`, issue 22): how soon a caller waiting on a job
// hears that it finished once the node's result was acknowledged, and what idle waiters cost
// the master's CPU (they hold a timer each; nothing polls the database).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { call, makeClients, nowMs, percentile, sleep, startMaster, tempDir, token, type Settings } from "../lib.js";

/** CPU time (user + system) a process used so far, in ms; Linux clock ticks are 100 a second. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** The master's CPU over `ms`, as a share of one core (%). */
async function cpuShare(pid: number, ms: number): Promise<number> {
  const before = cpuMs(pid);
  const started = nowMs();
  await sleep(ms);
  return ((cpuMs(pid) - before) / (nowMs() - started)) * 100;
}

export async function waits(settings: Settings): Promise<Record<string, number>> {
  const full = settings.size === "full";
  const rounds = full ? 300 : 20;
  const idle = full ? 1000 : 50;
  const dir = tempDir();
  const db = join(dir, "bench.db");
  const credentials = await makeClients(db);
  const master = await startMaster(db);
  const pid = master.proc.pid ?? 0;
  const stop = new AbortController();
  try {
    const client = await token(master.url, credentials.client);
    const worker = await token(master.url, credentials.worker);
    const node = await call<{ id: string }>(master.url, worker, "POST", "/api/v1/nodes", { name: "bench-waits", capacity: 1 });
    const samples: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const job = await call<{ id: string }>(master.url, client, "POST", "/api/v1/jobs", { type: "noop" });
      const claimed = await call<{ items: { id: string; attempt: number }[] }>(master.url, worker, "POST", `/api/v1/nodes/${node.id}/claim`, { max: 1 });
      const taken = claimed.items[0];
      if (taken?.id !== job.id) throw new Error("the waits bench's node took another job");
      let answeredAt = 0;
      const waiting = fetch(`${master.url}/api/v1/jobs/${job.id}?wait_s=30`, { headers: { authorization: `Bearer ${client}` } }).then(async (response) => {
        await response.text();
        answeredAt = nowMs();
      });
      await sleep(5); // the wait is under way
      await call(master.url, worker, "POST", `/api/v1/jobs/${job.id}/complete`, { node_id: node.id, attempt: taken.attempt, result: {} });
      const acknowledged = nowMs();
      await waiting;
      samples.push(Math.max(0, answeredAt - acknowledged));
    }
    // Idle waiters: the same master with none, then with `idle` callers waiting on jobs that stay pending.
    const quiet = await cpuShare(pid, full ? 5_000 : 1_000);
    const pending = await call<{ items: { id: string }[] }>(master.url, client, "POST", "/api/v1/jobs/batch", {
      jobs: Array.from({ length: idle }, () => ({ type: "nobody-runs-this" })),
    });
    for (const job of pending.items) {
      void fetch(`${master.url}/api/v1/jobs/${job.id}?wait_s=60`, { headers: { authorization: `Bearer ${client}` }, signal: stop.signal }).catch(() => undefined);
    }
    await sleep(1_000); // every wait under way
    const waitingShare = await cpuShare(pid, full ? 5_000 : 1_000);
    return {
      "wait answer after the result p50 (ms)": percentile(samples, 50),
      "wait answer after the result p99 (ms)": percentile(samples, 99),
      "master CPU with no waiter (% of a core)": quiet,
      [`master CPU with ${idle} idle waiters (% of a core)`]: waitingShare,
    };
  } finally {
    stop.abort();
    await master.stop();
  }
}
