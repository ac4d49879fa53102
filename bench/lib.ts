// What the benchmarks share: real master and worker processes, an admin's tokens, and medians.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type autocannon from "autocannon";
import pg from "pg";
import { createClient } from "../master/auth/clients.js";
import { withStore } from "../master/offline.js";

const here = dirname(fileURLToPath(import.meta.url));
export const CLI = join(here, "..", "bin", "gaffer.js");

export type Size = "tiny" | "full";

export interface Settings {
  size: Size;
  runs: number;
  /** `--payload-bytes`: the payload of the submission's and the drain's jobs, about this long as JSON (0: none given, each scenario's own). */
  payloadBytes?: number;
  /** `--result-bytes`: the result each drained job's handler returns, about this long as JSON (0: null). */
  resultBytes?: number;
}

/** A job payload of about `bytes` of JSON, shaped as a real one (a list of records); the same for every job. */
export function benchPayload(bytes: number): unknown {
  const record = (i: number) => ({ name: `file-${i}.csv`, bytes: i * 1000, ok: true });
  const one = JSON.stringify(record(0)).length + 1;
  return { items: Array.from({ length: Math.max(1, Math.round(bytes / one)) }, (_, i) => record(i)) };
}

/** Master settings for every benchmark: production durability, limits out of the way. */
export const MASTER_ENV: Record<string, string> = {
  GAFFER_AUTH: "on",
  GAFFER_DB_SYNCHRONOUS: "full",
  GAFFER_LOG_LEVEL: "warn",
  GAFFER_RATE_LIMIT_PER_MINUTE: "100000000",
  GAFFER_WORKER_RATE_LIMIT_PER_MINUTE: "100000000",
  GAFFER_MAX_BATCH_BYTES: "268435456",
  // The bench submits as a `client`: its own limits too. A full run submits about a million
  // jobs to one master, the default quota of jobs not yet finished (a quick hour passed it).
  GAFFER_CLIENT_MAX_BATCH_BYTES: "268435456",
  GAFFER_CLIENT_MAX_QUEUED: "100000000",
};

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? 0;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A high-resolution wall clock (ms since the epoch) comparable across processes on this machine. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

const dirs: string[] = [];
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "gaffer-bench-"));
  dirs.push(dir);
  return dir;
}
export function cleanTempDirs(): void {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

export interface Credentials {
  admin: { id: string; secret: string };
  client: { id: string; secret: string };
  worker: { id: string; secret: string };
}

/** An admin, a client and a worker, made in the database (a SQLite file, or PostgreSQL's) before the master starts. */
export async function makeClients(db: string | { databaseUrl: string }): Promise<Credentials> {
  return withStore(typeof db === "string" ? { db } : { db: "", databaseUrl: db.databaseUrl }, async (store) => {
    const [admin, client, worker] = await Promise.all(
      (["admin", "client", "worker"] as const).map((role) => createClient(store, { name: `bench-${role}`, role, actor: null })),
    );
    if (!admin || !client || !worker) throw new Error("clients not made");
    return {
      admin: { id: admin.id, secret: admin.client_secret },
      client: { id: client.id, secret: client.client_secret },
      worker: { id: worker.id, secret: worker.client_secret },
    };
  });
}

export interface Running {
  proc: ChildProcess;
  url: string;
  stop(): Promise<void>;
}

/** The process's output, kept (the last 64 kB) so that a crash can be told. */
function capture(proc: ChildProcess, what: string): { output: () => string } {
  let output = "";
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-65_536);
  };
  proc.stdout?.on("data", keep);
  proc.stderr?.on("data", keep);
  proc.once("exit", (code, signal) => {
    if (signal === "SIGKILL" || code === 0) return; // stopped by us, or a clean exit
    process.stderr.write(`bench: ${what} exited (${code ?? signal}); its last output:\n${output.slice(-4000)}\n`);
  });
  return { output: () => output };
}

async function waitFor(proc: ChildProcess, pattern: RegExp, what: string): Promise<RegExpMatchArray> {
  const { output } = capture(proc, what);
  return new Promise((resolve, reject) => {
    const onData = () => {
      const match = output().match(pattern);
      if (match) {
        proc.stdout?.off("data", onData);
        proc.stderr?.off("data", onData);
        resolve(match);
      }
    };
    proc.stdout?.on("data", onData);
    proc.stderr?.on("data", onData);
    proc.once("exit", (code) => reject(new Error(`${what} exited (${code}) before it was ready`)));
  });
}

function stopper(proc: ChildProcess): () => Promise<void> {
  return () =>
    new Promise((resolve) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
      proc.once("exit", () => resolve());
      // A profile (BENCH_PROFILE, or --cpu-prof among the flags) is written only on a clean exit.
      if (!proc.spawnargs.some((arg) => arg.startsWith("--cpu-prof") || arg === "--prof")) return void proc.kill("SIGKILL");
      proc.kill("SIGTERM");
      setTimeout(() => proc.kill("SIGKILL"), 10_000).unref();
    });
}

/**
 * Node's flags for a process the bench starts. BENCH_PROFILE=DIR: every master and worker
 * process writes a CPU profile there when it exits. BENCH_NODE_FLAGS (every process) and
 * BENCH_WORKER_NODE_FLAGS (the `Worker` processes, bench/worker.js, alone): more flags,
 * separated by spaces, e.g. `--cpu-prof-interval=100` or `--max-semi-space-size=32`.
 */
function nodeArgs(script?: string): string[] {
  const profile = process.env.BENCH_PROFILE;
  const words = (flags: string | undefined) => (flags ?? "").split(" ").filter((word) => word !== "");
  return [
    ...(profile ? ["--cpu-prof", `--cpu-prof-dir=${profile}`] : []),
    ...words(process.env.BENCH_NODE_FLAGS),
    ...(script === "worker.js" ? words(process.env.BENCH_WORKER_NODE_FLAGS) : []),
  ];
}

/** Every process the bench started and that has not exited yet. */
const children = new Set<ChildProcess>();
// A run that dies (an uncaught error in a scenario) must not leave masters and workers behind.
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

function spawnChild(args: string[], env: Record<string, string>, ipc = false, script?: string): ChildProcess {
  const proc = spawn(process.execPath, [...nodeArgs(script), ...args], {
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ipc ? ["ignore", "pipe", "pipe", "ipc"] : ["ignore", "pipe", "pipe"],
  });
  children.add(proc);
  proc.once("exit", () => children.delete(proc));
  return proc;
}

/** A started process, once its output matched `ready` (whose first group is its URL, if any). */
async function running(proc: ChildProcess, ready: RegExp, what: string): Promise<Running> {
  const [, url] = await waitFor(proc, ready, what);
  return { proc, url: url ?? "", stop: stopper(proc) };
}

export async function startMaster(db: string, env: Record<string, string> = {}): Promise<Running> {
  const proc = spawnChild([CLI, "master", "start", "--db", db, "--port", "0"], { ...MASTER_ENV, ...env });
  return running(proc, /listening on (http:\/\/[0-9.:]+)/, "the master");
}

/** A master on a PostgreSQL database, given in the environment as an operator would (not on argv). */
export async function startPgMaster(databaseUrl: string, env: Record<string, string> = {}): Promise<Running> {
  const proc = spawnChild([CLI, "master", "start", "--port", "0"], { ...MASTER_ENV, GAFFER_DATABASE_URL: databaseUrl, ...env });
  return running(proc, /listening on (http:\/\/[0-9.:]+)/, "the master");
}

export async function startNodeScript(script: string, args: string[], env: Record<string, string>, ready: RegExp): Promise<Running> {
  return running(spawnChild([join(here, script), ...args], env, true, script), ready, script);
}

export async function token(url: string, who: { id: string; secret: string }): Promise<string> {
  const response = await fetch(`${url}/api/v1/auth/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ client_id: who.id, client_secret: who.secret }),
  });
  if (!response.ok) throw new Error(`no token: ${response.status}`);
  return ((await response.json()) as { access_token: string }).access_token;
}

export async function call<T>(url: string, accessToken: string, method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${accessToken}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text.slice(0, 300)}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

/** Submit `count` no-op jobs in batches of 1000. */
export async function fill(url: string, accessToken: string, count: number, job: Record<string, unknown> = { type: "noop" }): Promise<void> {
  for (let done = 0; done < count; done += 1000) {
    const jobs = Array.from({ length: Math.min(1000, count - done) }, () => job);
    await call(url, accessToken, "POST", "/api/v1/jobs/batch", { jobs });
  }
}

/** A process's resident memory in MB (VmRSS), or one part of it (RssAnon, RssFile, RssShmem), from /proc (Linux). */
export function rssMb(pid: number, field: "VmRSS" | "RssAnon" | "RssFile" | "RssShmem" = "VmRSS"): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return kb / 1024;
}

/**
 * The PostgreSQL server `--db postgres` makes its databases on: GAFFER_BENCH_DATABASE_URL, else
 * the tests' GAFFER_TEST_DATABASE_URL, else the local server as user postgres.
 */
export function pgServerUrl(): string {
  return process.env.GAFFER_BENCH_DATABASE_URL ?? process.env.GAFFER_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
}

export interface BenchDatabase {
  /** The new database's URL. */
  url: string;
  /** A connection pool on it for the bench's own reads (2 connections). */
  pool: pg.Pool;
  /** Close the pool and drop the database (its sessions ended first). */
  drop(): Promise<void>;
}

const databases = new Set<string>();

/** A fresh, empty database on the bench's server, named gaffer_bench_<pid>_<random>; drop() removes it. */
export async function freshPgDatabase(): Promise<BenchDatabase> {
  const server = pgServerUrl();
  const name = `gaffer_bench_${process.pid}_${Math.random().toString(16).slice(2, 10)}`;
  const admin = new pg.Client({ connectionString: server });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  databases.add(name);
  const url = new URL(server);
  url.pathname = `/${name}`;
  const pool = new pg.Pool({ connectionString: url.toString(), max: 2 });
  pool.on("error", () => undefined);
  return {
    url: url.toString(),
    pool,
    drop: async () => {
      await pool.end();
      await dropPgDatabase(name);
    },
  };
}

async function dropPgDatabase(name: string): Promise<void> {
  const admin = new pg.Client({ connectionString: pgServerUrl() });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    databases.delete(name);
  } finally {
    await admin.end();
  }
}

/** Drop every database this run made and has not dropped yet (a scenario that failed midway). */
export async function dropPgDatabases(): Promise<void> {
  for (const name of [...databases]) await dropPgDatabase(name).catch(() => undefined);
}

/** One row of a query on a bench database. */
export async function pgRow<T>(pool: pg.Pool, text: string, params: unknown[] = []): Promise<T> {
  const result = await pool.query(text, params);
  return result.rows[0] as T;
}

/** The statuses of a load's answers that were not 2xx, and its errors, on stderr: the figures only count them. */
export function sayOddAnswers(what: string, result: autocannon.Result): void {
  const odd = Object.entries(result.statusCodeStats ?? {})
    .filter(([code]) => !code.startsWith("2"))
    .map(([code, stats]) => `${code}: ${stats.count}`);
  if (result.errors > 0) odd.push(`errors: ${result.errors}`, `timeouts: ${result.timeouts}`);
  if (odd.length > 0) process.stderr.write(`bench: ${what}: answers not 2xx (${odd.join(", ")})\n`);
}
