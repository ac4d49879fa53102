// A cluster for the fault suite: a master process on a fixed port (so it can come back
// at the same address), worker processes whose handler records every execution, and
// checks read straight from the database file.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { createClient } from "../../master/auth/clients.js";
import { withStore } from "../../master/offline.js";
import { freePort, spawnMaster, waitForOutput, type GafferProcess, type MasterProcess } from "../helpers/processes.js";
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

export class Cluster {
  readonly dir = tempDir("gaffer-faults-");
  readonly db = join(this.dir, "master.db");
  readonly runsFile = join(this.dir, "runs.log");
  master: MasterProcess | undefined;
  private readonly workers = new Map<string, GafferProcess>();
  private accessToken: string | undefined;

  private constructor(
    readonly port: number,
    readonly admin: Credentials,
    readonly worker: Credentials,
    private readonly env: Record<string, string>,
  ) {}

  static async create(env: Record<string, string> = {}): Promise<Cluster> {
    const port = await freePort();
    const cluster = new Cluster(port, { id: "", secret: "" }, { id: "", secret: "" }, { ...FAST_MASTER, ...env });
    // The first admin and the workers' client, made offline as an operator would.
    const made = await withStore({ db: cluster.db }, async (store) => ({
      admin: await createClient(store, { name: "fault-admin", role: "admin", actor: null }),
      worker: await createClient(store, { name: "fault-worker", role: "worker", actor: null }),
    }));
    Object.assign(cluster.admin, { id: made.admin.id, secret: made.admin.client_secret });
    Object.assign(cluster.worker, { id: made.worker.id, secret: made.worker.client_secret });
    return cluster;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async startMaster(): Promise<void> {
    this.master = await spawnMaster(this.db, { ...this.env, GAFFER_AUTH: "on", GAFFER_PORT: String(this.port) }, ["--port", String(this.port)]);
  }

  async killMaster(): Promise<void> {
    const master = this.master;
    if (!master) return;
    master.proc.kill("SIGKILL");
    await master.exited;
    this.master = undefined;
  }

  /** A worker process (the Worker class) whose handler sleeps between `minMs` and `maxMs`. */
  async startWorker(name: string, options: { capacity?: number; minMs?: number; maxMs?: number; masterUrl?: string } = {}): Promise<GafferProcess> {
    const proc: ChildProcess = spawn(
      process.execPath,
      [
        WORKER_SCRIPT,
        options.masterUrl ?? this.url,
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
    for (const name of [...this.workers.keys()]) await this.killWorker(name);
    await this.killMaster();
  }

  /** A call to the master as the admin; undefined when the master does not answer (it may be down). */
  async call<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T } | undefined> {
    try {
      if (!this.accessToken) {
        const issued = await fetch(`${this.url}/api/v1/auth/token`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ client_id: this.admin.id, client_secret: this.admin.secret }),
        });
        if (!issued.ok) return undefined;
        this.accessToken = ((await issued.json()) as { access_token: string }).access_token;
      }
      const response = await fetch(`${this.url}${path}`, {
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

  /** Read the database file directly (the master may be down). */
  read<T>(sql: string, ...params: unknown[]): T[] {
    const db = new Database(this.db, { readonly: true, timeout: 5000 });
    try {
      return db.prepare(sql).all(...params) as T[];
    } finally {
      db.close();
    }
  }

  completed(ids: string[]): number {
    const done = new Set(this.read<{ id: string }>("SELECT id FROM jobs WHERE status = 'completed'").map((row) => row.id));
    return ids.filter((id) => done.has(id)).length;
  }

  async waitAllCompleted(ids: string[], timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.completed(ids) < ids.length) {
      if (Date.now() > deadline) throw new Error(`only ${this.completed(ids)} of ${ids.length} jobs completed in time`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  /** What the database says: every job completed once, one accepted completion each, file intact. */
  verify(ids: string[]): { integrity: string; completedTwice: string[]; notCompleted: string[]; completions: number } {
    const integrity = this.read<{ integrity_check: string }>("PRAGMA integrity_check").map((row) => row.integrity_check).join("; ");
    const status = new Map(this.read<{ id: string; status: string }>("SELECT id, status FROM jobs").map((row) => [row.id, row.status]));
    const completions = new Map<string, number>();
    for (const row of this.read<{ job_id: string; n: number }>(
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
