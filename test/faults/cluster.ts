// A cluster for the fault suite: master processes on fixed ports (so each can come back
// at the same address), worker processes whose handler records every execution, and
// checks read straight from the database: the SQLite file of the one master, or the
// PostgreSQL database that several masters share (API.md §12).
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import pg from "pg";
import { createClient } from "../../master/auth/clients.js";
import { withStore } from "../../master/offline.js";
import { freePort, spawnMaster, stopAll as stopStarted, waitForOutput, type GafferProcess, type MasterProcess } from "../helpers/processes.js";
import { tempDir } from "../helpers/temp.js";

/** `npm run test:faults` runs the full sizes; `npm test` a small, fast variant. */
export const FULL = process.env.GAFFER_FAULTS === "full";

/** Short timeouts so that nothing waits for real minutes. */
export const FAST_MASTER = {
  GAFFER_NODE_TIMEOUT_S: "2",
  GAFFER_SWEEP_INTERVAL_S: "0.2",
  GAFFER_HEARTBEAT_INTERVAL_S: "0.4",
  GAFFER_RETRY_DELAY_S: "0.05",
  GAFFER_RETRY_MAX_DELAY_S: "0.2",
  GAFFER_STALL_GRACE_S: "5",
  GAFFER_MAX_RETRIES: "20",
  GAFFER_WORKER_RATE_LIMIT_PER_MINUTE: "1000000",
  GAFFER_RATE_LIMIT_PER_MINUTE: "1000000",
};

const WORKER_SCRIPT = join(fileURLToPath(new URL(".", import.meta.url)), "worker.mjs");

export interface Credentials {
  id: string;
  secret: string;
}

export interface ClusterOptions {
  /** A PostgreSQL database for the masters (else a SQLite file in the cluster's directory). */
  databaseUrl?: string;
  /** How many masters (each on a port of its own); more than one needs databaseUrl. */
  masters?: number;
}

export class Cluster {
  readonly dir = tempDir("gaffer-faults-");
  readonly db = join(this.dir, "master.db");
  readonly runsFile = join(this.dir, "runs.log");
  readonly masters: (MasterProcess | undefined)[];
  private readonly workers = new Map<string, GafferProcess>();
  private accessToken: string | undefined;
  /** Set by stopAll(): submit() stops retrying. */
  private stopped = false;

  private constructor(
    readonly ports: number[],
    readonly admin: Credentials,
    readonly worker: Credentials,
    private readonly env: Record<string, string>,
    readonly databaseUrl: string | undefined,
  ) {
    this.masters = ports.map(() => undefined);
  }

  static async create(env: Record<string, string> = {}, options: ClusterOptions = {}): Promise<Cluster> {
    const ports: number[] = [];
    for (let i = 0; i < (options.masters ?? 1); i++) ports.push(await freePort());
    const cluster = new Cluster(ports, { id: "", secret: "" }, { id: "", secret: "" }, { ...FAST_MASTER, ...env }, options.databaseUrl);
    // The first admin and the workers' client, made offline as an operator would.
    const made = await withStore({ db: cluster.db, databaseUrl: options.databaseUrl }, async (store) => ({
      admin: await createClient(store, { name: "fault-admin", role: "admin", actor: null }),
      worker: await createClient(store, { name: "fault-worker", role: "worker", actor: null }),
    }));
    Object.assign(cluster.admin, { id: made.admin.id, secret: made.admin.client_secret });
    Object.assign(cluster.worker, { id: made.worker.id, secret: made.worker.client_secret });
    return cluster;
  }

  /** The first master's port and address. */
  get port(): number {
    return this.ports[0] ?? 0;
  }

  get url(): string {
    return this.urlOf(0);
  }

  urlOf(index: number): string {
    return `http://127.0.0.1:${this.ports[index] ?? 0}`;
  }

  /** Every master's address, as workers are given them (`--master URL1,URL2`). */
  get urls(): string {
    return this.ports.map((_, index) => this.urlOf(index)).join(",");
  }

  get master(): MasterProcess | undefined {
    return this.masters[0];
  }

  async startMaster(index = 0): Promise<void> {
    const port = String(this.ports[index] ?? 0);
    const database = this.databaseUrl ? ["--database-url", this.databaseUrl] : [];
    this.masters[index] = await spawnMaster(this.db, { ...this.env, GAFFER_AUTH: "on", GAFFER_PORT: port }, ["--port", port, ...database]);
  }

  async killMaster(index = 0): Promise<void> {
    const master = this.masters[index];
    if (!master) return;
    master.proc.kill("SIGKILL");
    await master.exited;
    this.masters[index] = undefined;
  }

  /** A worker process (the Worker class) whose handler sleeps between `minMs` and `maxMs`. */
  async startWorker(name: string, options: { capacity?: number; minMs?: number; maxMs?: number; masterUrl?: string } = {}): Promise<GafferProcess> {
    const proc: ChildProcess = spawn(
      process.execPath,
      [
        WORKER_SCRIPT,
        options.masterUrl ?? this.urls,
        name,
        join(this.dir, `state-${name}`),
        this.runsFile,
        String(options.capacity ?? 4),
        String(options.minMs ?? 5),
        String(options.maxMs ?? 30),
      ],
      {
        env: {
          PATH: process.env.PATH ?? "",
          GAFFER_CLIENT_ID: this.worker.id,
          GAFFER_CLIENT_SECRET: this.worker.secret,
          GAFFER_LOG_LEVEL: "info",
        },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let output = "";
    proc.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
    proc.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | string>((resolve) => proc.on("exit", (code, signal) => resolve(code ?? signal ?? -1)));
    const worker: GafferProcess = { proc, output: () => output, exited };
    this.workers.set(name, worker);
    await waitForOutput(worker, /"event":"worker.registered"/, 30_000);
    return worker;
  }

  async killWorker(name: string): Promise<void> {
    const worker = this.workers.get(name);
    if (!worker) return;
    worker.proc.kill("SIGKILL");
    await worker.exited;
    this.workers.delete(name);
  }

  workerOutput(name: string): string {
    return this.workers.get(name)?.output() ?? "";
  }

  async stopAll(): Promise<void> {
    this.stopped = true;
    for (const name of [...this.workers.keys()]) await this.killWorker(name);
    for (let index = 0; index < this.masters.length; index++) await this.killMaster(index);
    // And the folder the helper made for the CLI processes' tokens (GAFFER_CACHE_DIR) at the first one.
    await stopStarted();
  }

  /**
   * A call as the admin to the first master that answers (they may be down); undefined when
   * none does. An answer of 502-504 from one is passed over for the next.
   */
  async call<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T } | undefined> {
    let answer: { status: number; body: T } | undefined;
    for (let index = 0; index < this.ports.length; index++) {
      answer = (await this.callOne<T>(this.urlOf(index), method, path, body)) ?? answer;
      if (answer && answer.status < 502) return answer;
    }
    return answer;
  }

  /**
   * The admin's access token, issued by the master at `url` (any master of the cluster: they
   * share the signing secret); undefined when it does not answer. Kept for later calls.
   */
  async adminToken(url = this.url): Promise<string | undefined> {
    if (this.accessToken) return this.accessToken;
    try {
      const issued = await fetch(`${url}/api/v1/auth/token`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ client_id: this.admin.id, client_secret: this.admin.secret }),
        signal: AbortSignal.timeout(10_000),
      });
      if (!issued.ok) return undefined;
      this.accessToken = ((await issued.json()) as { access_token: string }).access_token;
      return this.accessToken;
    } catch {
      return undefined;
    }
  }

  private async callOne<T>(url: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: T } | undefined> {
    try {
      if (!(await this.adminToken(url))) return undefined;
      const response = await fetch(`${url}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.accessToken}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });
      const text = await response.text();
      return { status: response.status, body: (text ? JSON.parse(text) : undefined) as T };
    } catch {
      return undefined;
    }
  }

  /**
   * Submit `count` jobs in batches, each with an idempotency key, retrying every batch
   * until the master acknowledges it: a retry after a lost answer creates nothing new.
   * Once stopAll() was called (a test that failed meanwhile, its cleanup under way) it stops
   * retrying and answers the ids acknowledged so far (not throwing: nobody may await it then).
   */
  async submit(count: number, options: { prefix?: string; batch?: number; requires?: string[] } = {}): Promise<string[]> {
    const prefix = options.prefix ?? "job";
    const batch = options.batch ?? 250;
    const ids: string[] = [];
    for (let start = 0; start < count; start += batch) {
      const jobs = Array.from({ length: Math.min(batch, count - start) }, (_, i) => ({
        type: "work",
        idempotency_key: `${prefix}-${start + i}`,
        payload: { n: start + i },
        ...(options.requires ? { requires: options.requires } : {}),
      }));
      for (;;) {
        if (this.stopped) return ids;
        const answer = await this.call<{ items: { id: string }[] }>("POST", "/api/v1/jobs/batch", { jobs });
        if (answer?.status === 201) {
          ids.push(...answer.body.items.map((job) => job.id));
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    return ids;
  }

  /** Read the SQLite file directly (the master may be down). */
  read<T>(sql: string, ...params: unknown[]): T[] {
    if (this.databaseUrl) throw new Error("read() reads the SQLite file: use query() on PostgreSQL");
    const db = new Database(this.db, { readonly: true, timeout: 5000 });
    try {
      return db.prepare(sql).all(...params) as T[];
    } finally {
      db.close();
    }
  }

  /**
   * Read the database, whichever it is (SQL both dialects take; `?` placeholders). PostgreSQL's
   * counts come back as numbers, as SQLite's do. A database that does not answer throws.
   */
  async query<T>(sql: string, ...params: unknown[]): Promise<T[]> {
    if (!this.databaseUrl) return this.read<T>(sql, ...params);
    let n = 0;
    const text = sql.replace(/\?/g, () => `$${++n}`);
    const client = new pg.Client({ connectionString: this.databaseUrl, connectionTimeoutMillis: 5000 });
    await client.connect();
    try {
      const result = await client.query<Record<string, unknown>>(text, params);
      return result.rows.map((row) => Object.fromEntries(Object.entries(row).map(([key, value]) => [key, typeof value === "string" && /^(n|count)$/.test(key) ? Number(value) : value])) as T);
    } finally {
      await client.end();
    }
  }

  async completed(ids: string[]): Promise<number> {
    const done = new Set((await this.query<{ id: string }>("SELECT id FROM jobs WHERE status = 'completed'")).map((row) => row.id));
    return ids.filter((id) => done.has(id)).length;
  }

  async waitAllCompleted(ids: string[], timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (let done = 0; ; ) {
      try {
        done = await this.completed(ids);
      } catch {
        // The database itself may be down for a moment (a PostgreSQL restart): ask again.
      }
      if (done >= ids.length) return;
      if (Date.now() > deadline) throw new Error(`only ${done} of ${ids.length} jobs completed in time`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  /** What the database says: every job completed once, one accepted completion each, file intact (SQLite's check; PostgreSQL keeps its own). */
  async verify(ids: string[]): Promise<{ integrity: string; completedTwice: string[]; notCompleted: string[]; completions: number }> {
    const integrity = this.databaseUrl
      ? "ok"
      : this.read<{ integrity_check: string }>("PRAGMA integrity_check").map((row) => row.integrity_check).join("; ");
    const status = new Map((await this.query<{ id: string; status: string }>("SELECT id, status FROM jobs")).map((row) => [row.id, row.status]));
    const completions = new Map<string, number>();
    for (const row of await this.query<{ job_id: string; n: number }>(
      "SELECT job_id, COUNT(*) AS n FROM job_attempts WHERE outcome = 'completed' GROUP BY job_id",
    )) {
      completions.set(row.job_id, row.n);
    }
    return {
      integrity,
      completedTwice: ids.filter((id) => (completions.get(id) ?? 0) > 1),
      notCompleted: ids.filter((id) => status.get(id) !== "completed"),
      completions: ids.reduce((sum, id) => sum + (completions.get(id) ?? 0), 0),
    };
  }

  /** Handler executions per job, from the workers' shared record. */
  executions(): Map<string, { attempt: number; worker: string }[]> {
    const runs = new Map<string, { attempt: number; worker: string }[]>();
    if (!existsSync(this.runsFile)) return runs;
    for (const line of readFileSync(this.runsFile, "utf8").split("\n")) {
      const [id, attempt, worker] = line.split(" ");
      if (!id || !attempt || !worker) continue;
      runs.set(id, [...(runs.get(id) ?? []), { attempt: Number(attempt), worker }]);
    }
    return runs;
  }
}
