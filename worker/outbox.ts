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

/**
 * Up to this many results, and this many bytes of them, are also kept in memory, in the order
 * they were written, so that sending them reads nothing back from disk and removing them is
 * one statement. A larger outbox (the master away for long, big results or log tails) is
 * served from disk alone until it is empty again.
 */
const MIRRORED_AT_MOST = 10_000;
const MIRRORED_BYTES_AT_MOST = 32 * 1024 * 1024;

interface Kept {
  seq: number;
  entry: OutboxEntry;
  /** About what it holds in memory: its JSON and log tail. */
  bytes: number;
}

const keyOf = (jobId: string, attempt: number) => `${attempt} ${jobId}`;

export class Outbox {
  private readonly db: Database.Database;
  private readonly insert: Database.Statement;
  private readonly remove: Database.Statement;
  private readonly removeSeqs: Database.Statement;
  private readonly oldest: Database.Statement;
  private readonly counter: Database.Statement;
  private readonly held: Database.Statement;
  /** Every result on disk, by job and attempt, in the order written; undefined while the outbox is too large to mirror. */
  private mirror: Map<string, Kept> | undefined;
  private mirroredBytes = 0;

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
    this.removeSeqs = this.db.prepare("DELETE FROM results WHERE seq IN (SELECT value FROM json_each(?))");
    this.oldest = this.db.prepare(
      "SELECT seq, node_id, job_id, attempt, status, result, error, log_tail FROM results ORDER BY seq LIMIT ?",
    );
    this.counter = this.db.prepare("SELECT COUNT(*) AS n FROM results");
    this.held = this.db.prepare("SELECT job_id, attempt FROM results");
    // What an earlier run left: mirrored if it is small enough.
    if (this.countOnDisk() <= MIRRORED_AT_MOST) {
      this.mirror = new Map();
      for (const row of this.oldest.all(MIRRORED_AT_MOST) as (Row & { seq: number })[]) {
        this.keep({ seq: row.seq, entry: entryOf(row), bytes: (row.result?.length ?? 0) + (row.error?.length ?? 0) + (row.log_tail?.length ?? 0) });
      }
      if (this.mirroredBytes > MIRRORED_BYTES_AT_MOST) this.unmirror();
    }
  }

  /** Keep these results on disk (one transaction). */
  add(entries: OutboxEntry[]): void {
    const at = new Date().toISOString();
    const written: Kept[] = [];
    this.db.transaction(() => {
      for (const entry of entries) {
        const result = entry.status === "completed" ? JSON.stringify(entry.result ?? null) : null;
        const error = entry.error === undefined ? null : JSON.stringify(entry.error);
        const { lastInsertRowid } = this.insert.run(entry.nodeId, entry.jobId, entry.attempt, entry.status, result, error, entry.logTail ?? null, at);
        written.push({ seq: Number(lastInsertRowid), entry, bytes: (result?.length ?? 0) + (error?.length ?? 0) + (entry.logTail?.length ?? 0) });
      }
    })();
    if (!this.mirror) return;
    // INSERT OR REPLACE wrote a new row in place of an old one: it goes to the end.
    for (const kept of written) this.keep(kept);
    if ((this.mirror?.size ?? 0) > MIRRORED_AT_MOST || this.mirroredBytes > MIRRORED_BYTES_AT_MOST) this.unmirror();
  }

  private keep(kept: Kept): void {
    const key = keyOf(kept.entry.jobId, kept.entry.attempt);
    this.forget(key);
    this.mirror?.set(key, kept);
    this.mirroredBytes += kept.bytes;
  }

  private forget(key: string): void {
    const old = this.mirror?.get(key);
    if (!old) return;
    this.mirror?.delete(key);
    this.mirroredBytes -= old.bytes;
  }

  private unmirror(): void {
    this.mirror = undefined;
    this.mirroredBytes = 0;
  }

  /** The oldest results not yet acknowledged. */
  pending(limit: number): OutboxEntry[] {
    if (this.mirror) {
      const entries: OutboxEntry[] = [];
      for (const kept of this.mirror.values()) {
        if (entries.length >= limit) break;
        entries.push(kept.entry);
      }
      return entries;
    }
    return (this.oldest.all(limit) as Row[]).map((row) => entryOf(row));
  }

  /** The master answered for these: acknowledged, or refused for good. */
  settle(keys: { jobId: string; attempt: number }[]): void {
    const mirror = this.mirror;
    this.db.transaction(() => {
      if (!mirror) {
        for (const key of keys) this.remove.run(key.jobId, key.attempt);
        return;
      }
      const seqs: number[] = [];
      for (const key of keys) {
        const kept = mirror.get(keyOf(key.jobId, key.attempt));
        if (kept) seqs.push(kept.seq);
      }
      this.removeSeqs.run(JSON.stringify(seqs));
    })();
    if (mirror) for (const key of keys) this.forget(keyOf(key.jobId, key.attempt));
    // A large outbox that has been sent: mirror again from here.
    else if (this.countOnDisk() === 0) this.mirror = new Map();
  }

  /** Jobs whose results wait here: the worker still holds their leases. */
  heldJobs(): { jobId: string; attempt: number }[] {
    if (this.mirror) return [...this.mirror.values()].map(({ entry }) => ({ jobId: entry.jobId, attempt: entry.attempt }));
    return (this.held.all() as { job_id: string; attempt: number }[]).map((row) => ({ jobId: row.job_id, attempt: row.attempt }));
  }

  get size(): number {
    return this.mirror ? this.mirror.size : this.countOnDisk();
  }

  private countOnDisk(): number {
    return (this.counter.get() as { n: number }).n;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

function entryOf(row: Row): OutboxEntry {
  return {
    nodeId: row.node_id,
    jobId: row.job_id,
    attempt: row.attempt,
    status: row.status,
    ...(row.result !== null ? { result: JSON.parse(row.result) as unknown } : {}),
    ...(row.error !== null ? { error: JSON.parse(row.error) as JobError } : {}),
    ...(row.log_tail !== null ? { logTail: row.log_tail } : {}),
  };
}
