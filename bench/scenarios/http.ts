// 1. Submission: single POSTs with 32 connections, Express's own ceiling beside it (in turns,
//    a slice each), batches of 1000.
// 2. Drain: 20,000 queued no-op jobs through 2 worker processes.
// 3. Mixed: submitting ~5,000 jobs/s while draining.
// 4. Dispatch latency: from a submit's answer to the handler starting on an idle, long-polling worker.
// Batches and the drain are also given as a share of their SQL floor (floor.ts) measured right after them.
import { join } from "node:path";
import autocannon from "autocannon";
import Database from "better-sqlite3";
import { benchPayload, call, sayOddAnswers, fill, makeClients, nowMs, percentile, sleep, startMaster, startNodeScript, tempDir, token, type Running, type Settings } from "../lib.js";
import { cpuOf, cpuSeconds } from "../cpu.js";
import { floorJobs, sqlFloor } from "./floor.js";
import { plainjobDrain } from "./plainjob.js";

type Metrics = Record<string, number>;

async function load(options: autocannon.Options): Promise<autocannon.Result> {
  const result = await autocannon({ ...options, setupClient: undefined });
  sayOddAnswers(`${options.method ?? "GET"} ${new URL(options.url).pathname}`, result);
  return result;
}

async function cluster(settings: Settings, env: Record<string, string> = {}) {
  void settings;
  const dir = tempDir();
  const db = join(dir, "bench.db");
  const credentials = await makeClients(db);
  const master = await startMaster(db, env);
  return { dir, db, credentials, master };
}

/** Bench worker processes; `resultBytes`: each job's result, about that many bytes of JSON (0: null). */
async function startWorkers(
  master: Running,
  dir: string,
  credentials: Awaited<ReturnType<typeof makeClients>>,
  count: number,
  capacity: number,
  { ipc = false, resultBytes = 0 }: { ipc?: boolean; resultBytes?: number } = {},
) {
  const env = { GAFFER_CLIENT_ID: credentials.worker.id, GAFFER_CLIENT_SECRET: credentials.worker.secret, BENCH_RESULT_BYTES: String(resultBytes) };
  return Promise.all(
    Array.from({ length: count }, (_, i) =>
      startNodeScript("worker.js", [master.url, `w${i}`, join(dir, `w${i}`), String(capacity), ...(ipc ? ["--ipc"] : [])], env, /listening on worker/),
    ),
  );
}

/** Attempts handed to the bench worker named `name`. */
function ranBy(db: string, name: string): number {
  return readDb<{ n: number }>(db, `SELECT COUNT(*) AS n FROM job_attempts a JOIN nodes n ON n.id = a.node_id WHERE n.name = '${name}'`).n;
}

function readDb<T>(db: string, sql: string, ...params: string[]): T {
  const connection = new Database(db, { readonly: true });
  try {
    return connection.prepare(sql).get(...params) as T;
  } finally {
    connection.close();
  }
}

export async function submission(settings: Settings): Promise<Metrics> {
  const durationS = settings.size === "full" ? 10 : 1;
  const { master, credentials } = await cluster(settings);
  const echo = await startNodeScript("echo-server.js", [], {}, /listening on (http:\/\/[0-9.:]+)/);
  try {
    const auth = `Bearer ${await token(master.url, credentials.client)}`;
    // With --payload-bytes, every job submitted (and the echo's body, and the floor's jobs) carries that payload.
    const given = givenPayload(settings);
    const body = JSON.stringify({ type: "noop", payload: given ?? { order: 42, customer: "acme" } });
    const headers = { authorization: auth, "content-type": "application/json" };
    // gaffer and the echo in turns, a slice each, so that both meet the machine in the same
    // state: run one after the other, 10 s each, their ratio moved with the VM's speed
    // (0.53-0.87 in one full run).
    const rounds = settings.size === "full" ? 5 : 1;
    const sliceS = durationS / rounds;
    const single = { ok: 0, non2xx: 0, p99: 0, cpuS: 0 };
    let echoed = 0;
    const masterPid = master.proc.pid ?? 0;
    for (let round = 0; round < rounds; round++) {
      // The master's CPU a submit: robust where the rate moves with the VM's speed and the load.
      const cpuBefore = cpuSeconds(masterPid);
      const slice = await load({ url: `${master.url}/api/v1/jobs`, method: "POST", headers, body, connections: 32, duration: sliceS });
      single.cpuS += cpuSeconds(masterPid) - cpuBefore;
      single.ok += slice["2xx"];
      single.non2xx += slice.non2xx;
      single.p99 = Math.max(single.p99, slice.latency.p99);
      const express = await load({ url: `${echo.url}/echo`, method: "POST", headers: { "content-type": "application/json" }, body, connections: 32, duration: sliceS });
      echoed += express["2xx"];
    }
    const batchBody = JSON.stringify({ jobs: Array.from({ length: 1000 }, (_, i) => ({ type: "noop", payload: given ?? { i } })) });
    const batchCpuBefore = cpuSeconds(masterPid);
    const batch = await load({ url: `${master.url}/api/v1/jobs/batch`, method: "POST", headers, body: batchBody, connections: 4, duration: durationS });
    const batchCpuS = cpuSeconds(masterPid) - batchCpuBefore;
    const singleRate = single.ok / durationS;
    const expressRate = echoed / durationS;
    const batchRate = (batch["2xx"] * 1000) / durationS;
    const floor = floorWith(floorJobs(settings), given);
    return {
      "submit single (jobs/s, 32 connections)": singleRate,
      "express echo (req/s, 32 connections)": expressRate,
      "submit / express ratio": singleRate / expressRate,
      "submit single p99 (ms, the highest of its slices)": single.p99,
      "submit single: master CPU a job (µs)": single.ok > 0 ? (single.cpuS * 1e6) / single.ok : 0,
      "submit batch of 1000 (jobs/s)": batchRate,
      "submit batch: master CPU a job (µs)": batch["2xx"] > 0 ? (batchCpuS * 1e6) / (batch["2xx"] * 1000) : 0,
      "submit batch / its SQL floor in the same run": batchRate / floor.batch,
      "non-2xx answers": single.non2xx + batch.non2xx,
    };
  } finally {
    await echo.stop();
    await master.stop();
  }
}

/** How many claim and results requests the master has answered (its /metrics, public). */
async function nodeRequests(url: string): Promise<{ claim: number; results: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const count = (path: string) => {
    let sum = 0;
    for (const line of text.split("\n")) {
      if (line.startsWith("gaffer_http_request_duration_seconds_count{") && line.includes(`route="${path}"`)) sum += Number(line.split(" ").pop());
    }
    return sum;
  };
  return { claim: count("/api/v1/nodes/:id/claim"), results: count("/api/v1/nodes/:id/results") };
}

interface DrainMeasure {
  rate: number;
  recorded: number;
  masterUs: number;
  workerUs: number;
  perClaim: number;
  perResults: number;
}

/** The --payload-bytes payload; undefined when none is given (each scenario keeps its own). */
function givenPayload(settings: Settings): unknown {
  return settings.payloadBytes ? benchPayload(settings.payloadBytes) : undefined;
}

/**
 * The SQL floor on gaffer's schema, its jobs carrying `payload` (when given) and completed
 * with `result` (when given) as the jobs measured are.
 */
function floorWith(jobs: number, payload: unknown, result?: unknown): ReturnType<typeof sqlFloor> {
  return sqlFloor("gaffer", jobs, undefined, {
    payloadJson: payload === undefined ? undefined : JSON.stringify(payload),
    resultJson: result === undefined ? undefined : JSON.stringify(result),
  });
}

/** The drain's job: the no-op, with about --payload-bytes of payload when given. */
function drainedJob(settings: Settings): { type: string; payload?: unknown } {
  const payload = givenPayload(settings);
  return payload === undefined ? { type: "noop" } : { type: "noop", payload };
}

/** One drain of `jobs` after a round of `warmup`, on a master started with `env`. */
async function drainOnce(settings: Settings, jobs: number, warmup: number, env: Record<string, string> = {}): Promise<DrainMeasure> {
  const { master, credentials, dir, db } = await cluster(settings, env);
  const job = drainedJob(settings);
  const completed = () => readDb<{ n: number }>(db, "SELECT COUNT(*) AS n FROM jobs WHERE status = 'completed'").n;
  const until = async (count: number) => {
    const deadline = Date.now() + 300_000;
    while (completed() < count) {
      if (Date.now() > deadline) throw new Error("drain did not finish in 5 minutes");
      await sleep(100);
    }
  };
  try {
    const client = await token(master.url, credentials.client);
    await fill(master.url, client, warmup, job);
    // The workers start on a paused master, so that their start (loading, registering) is
    // not counted in their CPU time a job: each round starts when the master is resumed.
    const admin = await token(master.url, credentials.admin);
    await call(master.url, admin, "PUT", "/api/v1/state/mode", { mode: "paused" });
    const workers = await startWorkers(master, dir, credentials, 2, 500, { resultBytes: settings.resultBytes ?? 0 });
    await call(master.url, admin, "PUT", "/api/v1/state/mode", { mode: "normal" });
    await until(warmup);
    await call(master.url, admin, "PUT", "/api/v1/state/mode", { mode: "paused" });
    const warmed = readDb<{ at: string }>(db, "SELECT MAX(finished_at) AS at FROM jobs").at;
    const ranBefore = workers.map((_, i) => ranBy(db, `w${i}`));
    await fill(master.url, client, jobs, job);
    await sleep(200);
    const pids = [master.proc.pid ?? 0, ...workers.map((worker) => worker.proc.pid ?? 0)];
    const requestsBefore = await nodeRequests(master.url);
    const before = cpuOf(pids);
    await call(master.url, admin, "PUT", "/api/v1/state/mode", { mode: "normal" });
    await until(warmup + jobs);
    const used = cpuOf(pids).map((seconds, i) => seconds - (before[i] ?? 0));
    const requestsAfter = await nodeRequests(master.url);
    const span = readDb<{ first: string; last: string }>(
      db,
      `SELECT (SELECT MIN(started_at) FROM job_attempts WHERE started_at > '${warmed}') AS first, (SELECT MAX(finished_at) FROM jobs) AS last`,
    );
    const recorded = readDb<{ n: number }>(db, "SELECT COUNT(*) AS n FROM job_attempts WHERE outcome = 'completed'").n - warmup;
    const ran = workers.map((_, i) => ranBy(db, `w${i}`) - (ranBefore[i] ?? 0));
    // The results written are the handlers' (--result-bytes), so that the figure is of writing them.
    const expected = JSON.stringify(settings.resultBytes ? benchPayload(settings.resultBytes) : null);
    const wrong = readDb<{ n: number }>(db, "SELECT COUNT(*) AS n FROM jobs WHERE status = 'completed' AND result IS NOT ?", expected).n;
    if (wrong > 0) throw new Error(`drain: ${wrong} completed jobs without the handler's result`);
    await Promise.all(workers.map((worker) => worker.stop()));
    const seconds = (new Date(span.last).getTime() - new Date(span.first).getTime()) / 1000;
    return {
      rate: jobs / seconds,
      recorded,
      masterUs: ((used[0] ?? 0) * 1e6) / jobs,
      // Each worker's CPU a job it ran; the dearer of the two.
      workerUs: Math.max(...ran.map((n, i) => ((used[i + 1] ?? 0) * 1e6) / Math.max(1, n))),
      perClaim: jobs / Math.max(1, requestsAfter.claim - requestsBefore.claim),
      perResults: jobs / Math.max(1, requestsAfter.results - requestsBefore.results),
    };
  } finally {
    await master.stop();
  }
}

export async function drain(settings: Settings): Promise<Metrics> {
  const jobs = settings.size === "full" ? 20_000 : 500;
  // A round of jobs first, not counted: a master and workers that have run for a while
  // (their code compiled by V8's optimizing tiers) are what an operator runs, and what
  // the CPU a job on a bigger machine carries over from. plainjob gets the same round.
  // As many as are counted: after a round of 5,000 the CPU a job still fell by a sixth
  // (bench/README.md, "7 December 2026, 12:55–13:40").
  const warmup = settings.size === "full" ? 20_000 : 100;
  const measured = await drainOnce(settings, jobs, warmup);
  // The store on a thread of its own (GAFFER_STORE_THREAD=on), right after, the same way.
  const threaded = await drainOnce(settings, jobs, warmup, { GAFFER_STORE_THREAD: "on" });
  // The floor and the peer right after, on the same machine in the same minute.
  // With --payload-bytes and --result-bytes, the floor's jobs carry the same payload and
  // result (plainjob keeps no results: its workers' handler returns none, whatever the flag).
  const { payload } = drainedJob(settings);
  const floor = floorWith(jobs, payload, settings.resultBytes ? benchPayload(settings.resultBytes) : undefined);
  const peer = await plainjobDrain(jobs, 2, warmup, payload ?? {});
  return {
    "drain (jobs/s, 2 workers)": measured.rate,
    "drain / its SQL floor in the same run": measured.rate / floor.drain,
    "drain: completions recorded": measured.recorded / jobs,
    "drain: master CPU a job (µs)": measured.masterUs,
    "drain: worker CPU a job it ran (µs, the dearer of 2)": measured.workerUs,
    "drain: jobs a claim request": measured.perClaim,
    "drain: jobs a results request": measured.perResults,
    "drain, store on its own thread (jobs/s)": threaded.rate,
    "drain, store on its own thread / the default's in the same run": threaded.rate / measured.rate,
    "drain, store on its own thread: master CPU a job (µs)": threaded.masterUs,
    "drain, store on its own thread: completions recorded": threaded.recorded / jobs,
    "plainjob drain (jobs/s, 2 worker processes)": peer.rate,
    "plainjob: worker CPU a job (µs)": peer.cpuUsPerJob,
    "drain / plainjob's in the same run": measured.rate / peer.rate,
  };
}

export async function mixed(settings: Settings): Promise<Metrics> {
  const durationS = settings.size === "full" ? 30 : 3;
  const { master, credentials, dir, db } = await cluster(settings);
  try {
    const workers = await startWorkers(master, dir, credentials, 2, 500);
    const auth = `Bearer ${await token(master.url, credentials.client)}`;
    // 5,000 jobs/s: 50 batches of 100 each second.
    const body = JSON.stringify({ jobs: Array.from({ length: 100 }, () => ({ type: "noop" })) });
    const pendingSamples: number[] = [];
    const sampler = setInterval(() => {
      pendingSamples.push(readDb<{ n: number }>(db, "SELECT COUNT(*) AS n FROM jobs WHERE status = 'pending'").n);
    }, 1000);
    const started = new Date().toISOString();
    const result = await load({
      url: `${master.url}/api/v1/jobs/batch`,
      method: "POST",
      headers: { authorization: auth, "content-type": "application/json" },
      body,
      connections: 8,
      overallRate: 50,
      duration: durationS,
    });
    const ended = new Date().toISOString();
    clearInterval(sampler);
    const completed = readDb<{ n: number }>(db, `SELECT COUNT(*) AS n FROM jobs WHERE finished_at >= '${started}' AND finished_at <= '${ended}'`).n;
    await Promise.all(workers.map((worker) => worker.stop()));
    const half = Math.floor(pendingSamples.length / 2);
    return {
      "mixed: submitted (jobs/s)": (result["2xx"] * 100) / durationS,
      "mixed: completed (jobs/s)": completed / durationS,
      "mixed: pending, first half max": Math.max(0, ...pendingSamples.slice(0, half)),
      "mixed: pending, second half max": Math.max(0, ...pendingSamples.slice(half)),
    };
  } finally {
    await master.stop();
  }
}

export async function latency(settings: Settings): Promise<Metrics> {
  const count = settings.size === "full" ? 500 : 30;
  const { master, credentials, dir } = await cluster(settings);
  try {
    const [worker] = await startWorkers(master, dir, credentials, 1, 1, { ipc: true });
    if (!worker) throw new Error("no worker");
    const started = new Map<string, number>();
    const waiters = new Map<string, (at: number) => void>();
    worker.proc.on("message", (message: { id: string; startedAt: number }) => {
      started.set(message.id, message.startedAt);
      waiters.get(message.id)?.(message.startedAt);
    });
    const auth = await token(master.url, credentials.client);
    const samples: number[] = [];
    await sleep(300); // the worker's claim is waiting
    for (let i = 0; i < count; i++) {
      const job = await call<{ id: string }>(master.url, auth, "POST", "/api/v1/jobs", { type: "noop", payload: { i } });
      const answered = nowMs();
      const handlerAt = started.get(job.id) ?? (await new Promise<number>((resolve) => waiters.set(job.id, resolve)));
      // The woken claim and the submit are answered after the same flush, so the handler may
      // start before the caller reads its answer: no wait at all, counted as 0.
      samples.push(Math.max(0, handlerAt - answered));
      // Let the worker report and long-poll again before the next one.
      await sleep(20);
    }
    await worker.stop();
    return {
      "dispatch latency p50 (ms)": percentile(samples, 50),
      "dispatch latency p99 (ms)": percentile(samples, 99),
    };
  } finally {
    await master.stop();
  }
}
