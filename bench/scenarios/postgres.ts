// `npm run bench -- --db postgres`: gaffer on PostgreSQL, each measurement on a fresh database
// of its own (made and dropped on the bench's server), with one master and with two on the
// same database; and graphile-worker on the same server in the same run, as the anchor.
// 1. Submission: single POSTs (32 connections) and batches of 1000 (4 connections), those
//    connections spread over the masters.
// 2. Drain: queued no-op jobs through 2 worker processes (with two masters, each worker given
//    both URLs, in opposite orders); graphile-worker's 2 processes drain as many, in its default
//    mode and its fastest.
// 3. Latency: from a submit's answer to the handler's start on an idle, long-polling worker: one
//    master; two (the worker's claim on master B, the submit on A: the wake-up crosses masters
//    through NOTIFY); two with the submits spread over both. And the cross-master wake-up at
//    the API: a claim long-polling master B, a submit on A, time to the claim's answer.
import { join } from "node:path";
import autocannon from "autocannon";
import { cpuSeconds } from "../cpu.js";
import {
  call,
  freshPgDatabase,
  makeClients,
  nowMs,
  percentile,
  pgRow,
  sayOddAnswers,
  sleep,
  startNodeScript,
  startPgMaster,
  tempDir,
  token,
  type BenchDatabase,
  type Credentials,
  type Running,
  type Settings,
} from "../lib.js";

type Metrics = Record<string, number>;

interface PgCluster {
  db: BenchDatabase;
  dir: string;
  credentials: Credentials;
  masters: Running[];
  stop(): Promise<void>;
}

/** A fresh database, migrated, with the bench's clients, and `count` masters on it. */
async function pgCluster(count: 1 | 2): Promise<PgCluster> {
  const db = await freshPgDatabase();
  const masters: Running[] = [];
  const stop = async () => {
    await Promise.all(masters.map((master) => master.stop()));
    await db.drop();
  };
  try {
    const credentials = await makeClients({ databaseUrl: db.url });
    for (let i = 0; i < count; i++) masters.push(await startPgMaster(db.url));
    return { db, dir: tempDir(), credentials, masters, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

const mastersLabel = (count: number) => (count === 1 ? "1 master" : `${count} masters`);

/** Bench worker processes; worker i is given every master's URL, starting from master i. */
async function startWorkers(cluster: PgCluster, count: number, capacity: number, options: { ipc?: boolean; urls?: string[] } = {}): Promise<Running[]> {
  const env = { GAFFER_CLIENT_ID: cluster.credentials.worker.id, GAFFER_CLIENT_SECRET: cluster.credentials.worker.secret };
  const urls = options.urls ?? cluster.masters.map((master) => master.url);
  return Promise.all(
    Array.from({ length: count }, (_, i) => {
      const rotated = [...urls.slice(i % urls.length), ...urls.slice(0, i % urls.length)].join(",");
      const args = [rotated, `w${i}`, join(cluster.dir, `w${i}`), String(capacity), ...(options.ipc ? ["--ipc"] : [])];
      return startNodeScript("worker.js", args, env, /listening on worker/);
    }),
  );
}

/** Queue `count` no-op jobs in batches of 1000, the batches dealt over the masters in turn. */
async function fillSpread(cluster: PgCluster, accessToken: string, count: number): Promise<void> {
  const batches = Math.ceil(count / 1000);
  await Promise.all(
    cluster.masters.map(async (master, m) => {
      for (let b = m; b < batches; b += cluster.masters.length) {
        const jobs = Array.from({ length: Math.min(1000, count - b * 1000) }, () => ({ type: "noop" }));
        await call(master.url, accessToken, "POST", "/api/v1/jobs/batch", { jobs });
      }
    }),
  );
}

async function loadAll(targets: string[], options: Omit<autocannon.Options, "url">, connections: number): Promise<{ ok: number; non2xx: number; p99: number }> {
  const results = await Promise.all(
    targets.map((url) => autocannon({ ...options, url, connections: Math.max(1, Math.round(connections / targets.length)), setupClient: undefined })),
  );
  results.forEach((result, i) => sayOddAnswers(`${options.method ?? "GET"} ${targets[i] ?? ""}`, result));
  return {
    ok: results.reduce((sum, r) => sum + r["2xx"], 0),
    non2xx: results.reduce((sum, r) => sum + r.non2xx, 0),
    p99: Math.max(...results.map((r) => r.latency.p99)),
  };
}

/** CPU seconds so far of each backend connected to the bench's database, by pid. */
async function backendCpu(db: BenchDatabase): Promise<Map<string, number>> {
  const { rows } = await db.pool.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()");
  const cpu = new Map<string, number>();
  for (const { pid } of rows) {
    try {
      cpu.set(String(pid), cpuSeconds(pid));
    } catch {
      // Ended since the query.
    }
  }
  return cpu;
}

export async function pgSubmission(settings: Settings): Promise<Metrics> {
  const durationS = settings.size === "full" ? 5 : 1;
  const metrics: Metrics = {};
  for (const count of [1, 2] as const) {
    const cluster = await pgCluster(count);
    try {
      const auth = `Bearer ${await token(cluster.masters[0]?.url ?? "", cluster.credentials.client)}`;
      const headers = { authorization: auth, "content-type": "application/json" };
      const jobs = cluster.masters.map((master) => `${master.url}/api/v1/jobs`);
      const body = JSON.stringify({ type: "noop", payload: { order: 42, customer: "acme" } });
      // CPU a submit: the masters', and that of the database's backends serving them (the
      // server is on this machine; a backend that starts during the load counts from its start).
      const backendsBefore = await backendCpu(cluster.db);
      const mastersBefore = cluster.masters.map((master) => cpuSeconds(master.proc.pid ?? 0));
      const single = await loadAll(jobs, { method: "POST", headers, body, duration: durationS }, 32);
      const mastersUsed = cluster.masters.reduce((sum, master, i) => sum + cpuSeconds(master.proc.pid ?? 0) - (mastersBefore[i] ?? 0), 0);
      const backendsAfter = await backendCpu(cluster.db);
      const backendsUsed = [...backendsAfter].reduce((sum, [pid, seconds]) => sum + seconds - (backendsBefore.get(pid) ?? 0), 0);
      const batchBody = JSON.stringify({ jobs: Array.from({ length: 1000 }, (_, i) => ({ type: "noop", payload: { i } })) });
      const batch = await loadAll(
        jobs.map((url) => `${url}/batch`),
        { method: "POST", headers, body: batchBody, duration: durationS },
        4,
      );
      const label = mastersLabel(count);
      metrics[`pg: submit single, ${label} (jobs/s, 32 connections)`] = single.ok / durationS;
      metrics[`pg: submit single, ${label}: p99 (ms)`] = single.p99;
      metrics[`pg: submit single, ${label}: masters' CPU a job (µs)`] = single.ok > 0 ? (mastersUsed * 1e6) / single.ok : 0;
      metrics[`pg: submit single, ${label}: backends' CPU a job (µs)`] = single.ok > 0 ? (backendsUsed * 1e6) / single.ok : 0;
      metrics[`pg: submit batch of 1000, ${label} (jobs/s)`] = (batch.ok * 1000) / durationS;
      metrics[`pg: submit, ${label}: non-2xx answers`] = single.non2xx + batch.non2xx;
    } finally {
      await cluster.stop();
    }
  }
  return metrics;
}

/** A drain's rate, and the CPU a job of the masters, the workers (together) and the database's backends, µs. */
export interface DrainFigures {
  rate: number;
  recorded: number;
  masterCpu: number;
  workerCpu: number;
  backendCpu: number;
  /** Transactions committed a job (the whole database: the masters' and the bench's own reads). */
  commits: number;
  /** Rows the database read a job (pg_stat_database's tup_returned: a scan of a table shows here). */
  rowsRead: number;
}

/** The database's transactions committed and rows read so far (pg_stat_database). */
async function databaseStats(db: BenchDatabase): Promise<{ commits: number; rowsRead: number }> {
  const row = await pgRow<{ commits: number; rows_read: number }>(
    db.pool,
    "SELECT xact_commit::float8 AS commits, tup_returned::float8 AS rows_read FROM pg_stat_database WHERE datname = current_database()",
  );
  return { commits: row.commits, rowsRead: row.rows_read };
}

/** Wait until no job of the cluster is left to run (a read that stops at the first such job). */
async function untilDrained(cluster: PgCluster): Promise<void> {
  const deadline = Date.now() + 300_000;
  while ((await pgRow<{ left: boolean }>(cluster.db.pool, "SELECT EXISTS (SELECT 1 FROM jobs WHERE status IN ('pending', 'running')) AS left")).left) {
    if (Date.now() > deadline) throw new Error("drain did not finish in 5 minutes");
    await sleep(100);
  }
}

/**
 * gaffer's drain of `jobs` queued no-op jobs through 2 worker processes, after a round of
 * `warmup` jobs not counted (masters, workers and the database's connections that have run a
 * while, as an operator's have; SQLite's drain does the same): jobs/s from the round's first
 * claim to its last result, completions recorded per job, and the CPU a job.
 */
export async function gafferDrain(count: 1 | 2, jobs: number, warmup = 0): Promise<DrainFigures> {
  const cluster = await pgCluster(count);
  try {
    const url = cluster.masters[0]?.url ?? "";
    const client = await token(url, cluster.credentials.client);
    const admin = await token(url, cluster.credentials.admin);
    const mode = (value: "paused" | "normal") => call(url, admin, "PUT", "/api/v1/state/mode", { mode: value });
    // The workers start on a paused cluster, so that their start (loading, registering) is
    // not in their CPU a job; each round starts when the cluster is resumed.
    await mode("paused");
    const workers = await startWorkers(cluster, 2, 500);
    if (warmup > 0) {
      await fillSpread(cluster, client, warmup);
      await mode("normal");
      await untilDrained(cluster);
      await mode("paused");
    }
    const warmed = await pgRow<{ at: string | null }>(cluster.db.pool, "SELECT max(finished_at)::text AS at FROM jobs");
    await fillSpread(cluster, client, jobs);
    await sleep(200);
    // CPU a job from the queue full to the last completion: the masters', the workers' and
    // the database backends' (a backend that starts during the drain counts from its start).
    // On two shared cores their sum is the drain's ceiling.
    const backendsBefore = await backendCpu(cluster.db);
    const mastersBefore = cluster.masters.map((master) => cpuSeconds(master.proc.pid ?? 0));
    const workersBefore = workers.map((worker) => cpuSeconds(worker.proc.pid ?? 0));
    const statsBefore = await databaseStats(cluster.db);
    await mode("normal");
    await untilDrained(cluster);
    const perJob = (seconds: number) => (seconds * 1e6) / jobs;
    const masterCpu = perJob(cluster.masters.reduce((sum, master, i) => sum + cpuSeconds(master.proc.pid ?? 0) - (mastersBefore[i] ?? 0), 0));
    const workerCpu = perJob(workers.reduce((sum, worker, i) => sum + cpuSeconds(worker.proc.pid ?? 0) - (workersBefore[i] ?? 0), 0));
    const backendsAfter = await backendCpu(cluster.db);
    const backendCpuUsed = perJob([...backendsAfter].reduce((sum, [pid, seconds]) => sum + seconds - (backendsBefore.get(pid) ?? 0), 0));
    // A backend reports its counts when idle, at most once a second.
    await sleep(1_500);
    const statsAfter = await databaseStats(cluster.db);
    const span = await pgRow<{ ms: number }>(
      cluster.db.pool,
      `SELECT extract(epoch FROM (SELECT max(finished_at) FROM jobs)
                            - (SELECT min(started_at) FROM job_attempts WHERE $1::timestamptz IS NULL OR started_at > $1::timestamptz))::float8 * 1000 AS ms`,
      [warmed.at],
    );
    const recorded = await pgRow<{ n: number }>(cluster.db.pool, "SELECT count(*)::int AS n FROM job_attempts WHERE outcome = 'completed'");
    await Promise.all(workers.map((worker) => worker.stop()));
    return {
      rate: jobs / (span.ms / 1000),
      recorded: (recorded.n - warmup) / jobs,
      masterCpu,
      workerCpu,
      backendCpu: backendCpuUsed,
      commits: (statsAfter.commits - statsBefore.commits) / jobs,
      rowsRead: (statsAfter.rowsRead - statsBefore.rowsRead) / jobs,
    };
  } finally {
    await cluster.stop();
  }
}

export type GraphileMode = "default" | "fastest";

/**
 * graphile-worker's drain of `jobs` queued no-op jobs through 2 runner processes (concurrency
 * 24, pools of 10 connections, graphile-worker's default), after a round of `warmup` jobs not
 * counted (as gaffer's), from the first task's start to the moment its jobs table is empty
 * (every completion committed). The counted jobs are queued to run an hour later and all made
 * due at once, so that the drain does not race their insertion.
 */
export async function graphileDrain(mode: GraphileMode, jobs: number, warmup = 0): Promise<number> {
  const db = await freshPgDatabase();
  const workers: Running[] = [];
  try {
    // Loaded only here: the SQLite bench never needs it.
    const graphile = await import("graphile-worker");
    const logger = new graphile.Logger(() => () => undefined);
    await graphile.runMigrations({ connectionString: db.url, logger });
    const utils = await graphile.makeWorkerUtils({ connectionString: db.url, logger });
    const add = async (count: number, runAt?: Date) => {
      for (let done = 0; done < count; done += 1000) {
        await utils.addJobs(Array.from({ length: Math.min(1000, count - done) }, () => ({ identifier: "noop", payload: {}, ...(runAt ? { runAt } : {}) })));
      }
    };
    let first = Number.POSITIVE_INFINITY;
    const ran = new Map<number, number>();
    const deadline = Date.now() + 300_000;
    const total = () => [...ran.values()].reduce((sum, n) => sum + n, 0);
    const untilEmpty = async (count: number) => {
      // Coarse until the tasks have all run, then closely until the last completion is committed.
      while (total() < count) {
        if (Date.now() > deadline) throw new Error(`graphile-worker (${mode}) did not finish in 5 minutes`);
        await sleep(20);
      }
      while ((await pgRow<{ left: boolean }>(db.pool, "SELECT EXISTS (SELECT 1 FROM graphile_worker._private_jobs) AS left")).left) {
        if (Date.now() > deadline) throw new Error(`graphile-worker (${mode}) did not finish in 5 minutes`);
        await sleep(2);
      }
    };
    try {
      if (warmup > 0) await add(warmup);
      for (let i = 0; i < 2; i++) {
        const worker = await startNodeScript("graphile-worker.js", [db.url, mode, "24", "10"], {}, /listening on graphile-worker/);
        worker.proc.on("message", (message: { first?: number; ran?: number }) => {
          if (message.first !== undefined) first = Math.min(first, message.first);
          if (message.ran !== undefined) ran.set(i, message.ran);
        });
        workers.push(worker);
      }
      if (warmup > 0) await untilEmpty(warmup);
      await add(jobs, new Date(Date.now() + 3_600_000));
    } finally {
      await utils.release();
    }
    first = Number.POSITIVE_INFINITY;
    const from = nowMs();
    for (const worker of workers) worker.proc.send({ from });
    await sleep(100);
    await db.pool.query("UPDATE graphile_worker._private_jobs SET run_at = now()");
    await untilEmpty(warmup + jobs);
    const ended = nowMs();
    return jobs / ((ended - first) / 1000);
  } finally {
    await Promise.all(workers.map((worker) => worker.stop()));
    await db.drop();
  }
}

export async function pgDrain(settings: Settings): Promise<Metrics> {
  const jobs = settings.size === "full" ? 20_000 : 300;
  // gaffer with one master and graphile-worker's fastest side by side, so that their ratio
  // meets the machine in one state; then two masters and graphile-worker's default mode.
  // Each after a round of 5,000 not counted, as SQLite's drain and plainjob's.
  const warmup = settings.size === "full" ? 5_000 : 100;
  const one = await gafferDrain(1, jobs, warmup);
  const fastest = await graphileDrain("fastest", jobs, warmup);
  const two = await gafferDrain(2, jobs, warmup);
  const standard = await graphileDrain("default", jobs, warmup);
  return {
    "pg: drain, 1 master (jobs/s, 2 workers)": one.rate,
    "pg: drain, 2 masters (jobs/s, 2 workers)": two.rate,
    "graphile-worker, fastest mode (jobs/s, 2 processes)": fastest,
    "graphile-worker, default mode (jobs/s, 2 processes)": standard,
    "pg: drain, 1 master / graphile-worker fastest": one.rate / fastest,
    "pg: drain, 2 masters / graphile-worker fastest": two.rate / fastest,
    "pg: drain: completions recorded": Math.min(one.recorded, two.recorded),
    "pg: drain, 1 master: master CPU a job (µs)": one.masterCpu,
    "pg: drain, 1 master: workers' CPU a job (µs, both)": one.workerCpu,
    "pg: drain, 1 master: backends' CPU a job (µs)": one.backendCpu,
    "pg: drain, 1 master: transactions a job": one.commits,
    "pg: drain, 1 master: rows read a job": one.rowsRead,
    "pg: drain, 2 masters: masters' CPU a job (µs, both)": two.masterCpu,
    "pg: drain, 2 masters: backends' CPU a job (µs)": two.backendCpu,
  };
}

/** Submits one job at a time (on `submitTo(i)`) to an idle worker long-polling its master; submit's answer → handler start, ms. */
async function handlerLatencies(worker: Running, accessToken: string, count: number, submitTo: (i: number) => string): Promise<number[]> {
  const started = new Map<string, number>();
  const waiters = new Map<string, (at: number) => void>();
  const onMessage = (message: { id: string; startedAt: number }) => {
    started.set(message.id, message.startedAt);
    waiters.get(message.id)?.(message.startedAt);
  };
  worker.proc.on("message", onMessage);
  try {
    const samples: number[] = [];
    await sleep(300); // the worker's claim is waiting
    for (let i = 0; i < count; i++) {
      const job = await call<{ id: string }>(submitTo(i), accessToken, "POST", "/api/v1/jobs", { type: "noop", payload: { i } });
      const answered = nowMs();
      const handlerAt = started.get(job.id) ?? (await new Promise<number>((resolve) => waiters.set(job.id, resolve)));
      // Started before its submitter read the answer: no wait at all, counted as 0.
      samples.push(Math.max(0, handlerAt - answered));
      await sleep(20); // the worker reports and long-polls again
    }
    return samples;
  } finally {
    worker.proc.off("message", onMessage);
  }
}

/** A node of the bench's worker client on `claimOn`, claiming with a long poll there while each job is submitted on `submitOn`: submit's answer → claim's answer, ms. */
async function claimWakeups(cluster: PgCluster, claimOn: string, submitOn: string, count: number): Promise<number[]> {
  const workerToken = await token(claimOn, cluster.credentials.worker);
  const clientToken = await token(submitOn, cluster.credentials.client);
  // Its own job type, which the bench worker processes do not run.
  const node = await call<{ id: string }>(claimOn, workerToken, "POST", "/api/v1/nodes", { name: "wake-up-probe", capacity: 1, types: ["wake"] });
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    let answeredAt = 0;
    const claim = call<{ items: { id: string; attempt: number }[] }>(claimOn, workerToken, "POST", `/api/v1/nodes/${node.id}/claim`, { max: 1, wait_s: 10 }).then(
      (answer) => {
        answeredAt = nowMs();
        return answer;
      },
    );
    await sleep(20); // the claim is waiting on its master
    const job = await call<{ id: string }>(submitOn, clientToken, "POST", "/api/v1/jobs", { type: "wake", payload: { i } });
    const submitted = nowMs();
    const { items } = await claim;
    const item = items[0];
    if (item?.id !== job.id) throw new Error(`the claim on the other master was answered with ${item?.id ?? "nothing"}, not ${job.id}`);
    samples.push(Math.max(0, answeredAt - submitted));
    await call(claimOn, workerToken, "POST", `/api/v1/jobs/${item.id}/complete`, { node_id: node.id, attempt: item.attempt, result: null });
  }
  return samples;
}

export async function pgLatency(settings: Settings): Promise<Metrics> {
  const count = settings.size === "full" ? 300 : 20;
  const metrics: Metrics = {};
  const put = (name: string, samples: number[]) => {
    metrics[`${name} p50 (ms)`] = percentile(samples, 50);
    metrics[`${name} p99 (ms)`] = percentile(samples, 99);
  };
  const single = await pgCluster(1);
  try {
    const [a] = single.masters;
    if (!a) throw new Error("no master");
    const [worker] = await startWorkers(single, 1, 1, { ipc: true });
    if (!worker) throw new Error("no worker");
    put("pg: dispatch latency, 1 master:", await handlerLatencies(worker, await token(a.url, single.credentials.client), count, () => a.url));
    await worker.stop();
  } finally {
    await single.stop();
  }
  const pair = await pgCluster(2);
  try {
    const [a, b] = pair.masters;
    if (!a || !b) throw new Error("no masters");
    // The worker knows both and uses B, its first.
    const [worker] = await startWorkers(pair, 1, 1, { ipc: true, urls: [b.url, a.url] });
    if (!worker) throw new Error("no worker");
    const auth = await token(a.url, pair.credentials.client);
    put("pg: cross-master wake-up, submit on A → handler start on B's worker:", await handlerLatencies(worker, auth, count, () => a.url));
    put("pg: dispatch latency, 2 masters, submits spread over both:", await handlerLatencies(worker, auth, count, (i) => (i % 2 === 0 ? a.url : b.url)));
    await worker.stop();
    put("pg: cross-master wake-up, submit on A → claim answered on B:", await claimWakeups(pair, b.url, a.url, count));
  } finally {
    await pair.stop();
  }
  return metrics;
}
