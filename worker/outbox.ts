// Results kept on disk until the master acknowledged them (API.md §10): written
// before they are sent, removed only on the master's answer, sent again after a
// restart of the worker or the master.
import { closeSync, mkdirSync, openSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import type { JobError } from "../master/store/types.js";

export interface OutboxEntry {
  nodeId: string;
  jobId: string;
  attempt: number;
  status: "completed" | "failed";
  result?: unknown;
  error?: JobError | undefined;
  logTail?: string | undefined;
}

interface Row {
  node_id: string;
  job_id: string;
  attempt: number;
  status: "completed" | "failed";
  result: string | null;
  error: string | null;
  log_tail: string | null;
}

export class Outbox {
  private readonly db: Database.Database;
  private readonly insert: Database.Statement;
  private readonly remove: Database.Statement;
  private readonly oldest: Database.Statement;
  private readonly counter: Database.Statement;
  private readonly held: Database.Statement;

  constructor(stateDir: string) {
    // Results may carry what a job's payload held: the folder 0700 and the file 0600,
    // given at creation (SQLite creates the -wal and -shm with the file's own mode).
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    const path = join(stateDir, "outbox.db");
    closeSync(openSync(path, "a", 0o600));
    this.db = new Database(path);
    this.db.pragma("journal_mode = WAL");
    // NORMAL in WAL mode survives a crash of the worker (not a power cut, where the
    // job simply runs again after its lease ends): at-least-once either way.
    this.db.pragma("synchronous = NORMAL");
    this.db.exec(`CREATE TABLE IF NOT EXISTS results (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      node_id TEXT NOT NULL,
      job_id TEXT NOT NULL,
      attempt INTEGER NOT NULL,
      status TEXT NOT NULL,
      result TEXT,
      error TEXT,
      created_at TEXT NOT NULL,
      UNIQUE (job_id, attempt)
    )`);
    // An outbox from before log tails: the column is added, its results have none.
    const columns = this.db.prepare("SELECT name FROM pragma_table_info('results')").pluck().all() as string[];
    if (!columns.includes("log_tail")) this.db.exec("ALTER TABLE results ADD COLUMN log_tail TEXT");
    this.insert = this.db.prepare(
      `INSERT OR REPLACE INTO results (node_id, job_id, attempt, status, result, error, log_tail, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.remove = this.db.prepare("DELETE FROM results WHERE job_id = ? AND attempt = ?");
    this.oldest = this.db.prepare(
      "SELECT node_id, job_id, attempt, status, result, error, log_tail FROM results ORDER BY seq LIMIT ?",
    );
    this.counter = this.db.prepare("SELECT COUNT(*) AS n FROM results");
    this.held = this.db.prepare("SELECT job_id, attempt FROM results");
  }

  /** Keep these results on disk (one transaction). */
  add(entries: OutboxEntry[]): void {
    const at = new Date().toISOString();
    this.db.transaction(() => {
      for (const entry of entries) {
        this.insert.run(
          entry.nodeId,
          entry.jobId,
          entry.attempt,
          entry.status,
          entry.status === "completed" ? JSON.stringify(entry.result ?? null) : null,
          entry.error === undefined ? null : JSON.stringify(entry.error),
          entry.logTail ?? null,
          at,
        );
      }
    })();
  }

  /** The oldest results not yet acknowledged. */
  pending(limit: number): OutboxEntry[] {
    return (this.oldest.all(limit) as Row[]).map((row) => ({
      nodeId: row.node_id,
      jobId: row.job_id,
      attempt: row.attempt,
      status: row.status,
      ...(row.result !== null ? { result: JSON.parse(row.result) as unknown } : {}),
      ...(row.error !== null ? { error: JSON.parse(row.error) as JobError } : {}),
      ...(row.log_tail !== null ? { logTail: row.log_tail } : {}),
    }));
  }

  /** The master answered for these: acknowledged, or refused for good. */
  settle(keys: { jobId: string; attempt: number }[]): void {
    this.db.transaction(() => {
      for (const key of keys) this.remove.run(key.jobId, key.attempt);
    })();
  }

  /** Jobs whose results wait here: the worker still holds their leases. */
  heldJobs(): { jobId: string; attempt: number }[] {
    return (this.held.all() as { job_id: string; attempt: number }[]).map((row) => ({ jobId: row.job_id, attempt: row.attempt }));
  }

  get size(): number {
    return (this.counter.get() as { n: number }).n;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
