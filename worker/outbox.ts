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
 * they were written, so that sending them reads nothing back from disk. Results are written a
 * batch to a row (a `batches` row: the results of one tick as a JSON array), and a batch row
 * is deleted once the master answered for all of its results: one row written and one deleted
 * for each tick's results instead of a row (and its index entry) for each result, the larger
 * part of a busy worker's writes. A larger outbox (the master away for long, big
 * results or log tails) moves to the `results` table, a row a result, and is served from disk
 * alone until it is empty again.
 */
export const MIRRORED_AT_MOST = 10_000;
/**
 * Counted in JSON characters. It also bounds every string the outbox builds (a batch row's
 * JSON, the rows of an older outbox moved into a batch): far below V8's longest string, even
 * when escapes make the JSON several times longer than the text it holds.
 */
export const MIRRORED_BYTES_AT_MOST = 32 * 1024 * 1024;

export interface OutboxLimits {
  /** Results mirrored in memory at most (default MIRRORED_AT_MOST). */
  mirroredAtMost?: number | undefined;
  /** Their JSON's characters at most (default MIRRORED_BYTES_AT_MOST). */
  mirroredBytesAtMost?: number | undefined;
}

/** One `batches` row as it is in memory. */
interface Batch {
  seq: number;
  /** Its results still waiting (not settled, not written again since). */
  live: number;
  entries: OutboxEntry[];
}

interface Kept {
  batch: Batch;
  entry: OutboxEntry;
  /** About what it holds in memory: its share of its batch's JSON. */
  bytes: number;
  /** Its key in the mirror (see `keep`). */
  key: string;
}

/** What a result's JSON adds to the text of its row: its keys, attempt and status. */
const ENTRY_OVERHEAD = 80;

const keyOf = (jobId: string, attempt: number) => `${attempt} ${jobId}`;

export class Outbox {
  private readonly db: Database.Database;
  private readonly insert: Database.Statement;
  private readonly remove: Database.Statement;
  private readonly oldest: Database.Statement;
  private readonly counter: Database.Statement;
  private readonly held: Database.Statement;
  private readonly rowsSize: Database.Statement;
  private readonly insertBatch: Database.Statement;
  private readonly removeBatches: Database.Statement;
  private readonly rewriteBatch: Database.Statement;
  /** A tick's batch row written and mirrored (made once: better-sqlite3 builds a transaction's wrappers at each `transaction()`). */
  private readonly addBatch: (json: string, list: OutboxEntry[]) => void;
  private readonly settleInTransaction: (touched: Iterable<Batch>) => void;
  /**
   * Every result kept, by job and attempt, in the order written, while they are in `batches`;
   * undefined while the outbox is too large to mirror and they are in `results`.
   */
  private mirror: Map<string, Kept> | undefined;
  private mirroredBytes = 0;
  /** Results in the mirror under a job id and attempt (another attempt of their job held the job id). */
  private twoKeyed = 0;
  private readonly mirroredAtMost: number;
  private readonly mirroredBytesAtMost: number;

  constructor(stateDir: string, limits: OutboxLimits = {}) {
    this.mirroredAtMost = limits.mirroredAtMost ?? MIRRORED_AT_MOST;
    this.mirroredBytesAtMost = limits.mirroredBytesAtMost ?? MIRRORED_BYTES_AT_MOST;
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
    // `results`: a JSON array of results, each {nodeId, jobId, attempt, status, result | error, logTail?}.
    this.db.exec(`CREATE TABLE IF NOT EXISTS batches (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      created_at TEXT NOT NULL,
      results TEXT NOT NULL
    )`);
    this.insert = this.db.prepare(
      `INSERT OR REPLACE INTO results (node_id, job_id, attempt, status, result, error, log_tail, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.remove = this.db.prepare("DELETE FROM results WHERE job_id = ? AND attempt = ?");
    this.oldest = this.db.prepare(
      "SELECT seq, node_id, job_id, attempt, status, result, error, log_tail FROM results ORDER BY seq LIMIT ?",
    );
    this.counter = this.db.prepare("SELECT COUNT(*) AS n FROM results");
    this.rowsSize = this.db.prepare(
      `SELECT COUNT(*) AS n, COALESCE(SUM(length(job_id) + length(node_id) + COALESCE(length(result), 0)
         + COALESCE(length(error), 0) + COALESCE(length(log_tail), 0)), 0) AS chars FROM results`,
    );
    this.held = this.db.prepare("SELECT job_id, attempt FROM results");
    this.insertBatch = this.db.prepare("INSERT INTO batches (created_at, results) VALUES (?, ?)");
    this.removeBatches = this.db.prepare("DELETE FROM batches WHERE seq IN (SELECT value FROM json_each(?))");
    this.rewriteBatch = this.db.prepare("UPDATE batches SET results = ? WHERE seq = ?");
    this.addBatch = this.db.transaction((json: string, list: OutboxEntry[]) => {
      const { lastInsertRowid } = this.insertBatch.run(new Date().toISOString(), json);
      // A result written again (the same job and attempt) replaces the one kept before: its
      // batch is written again without it, or deleted if that left it nothing.
      const emptied = this.mirrorBatch(Number(lastInsertRowid), list, json.length);
      if (emptied.length > 0) this.settleBatches(emptied);
    });
    this.settleInTransaction = this.db.transaction((touched: Iterable<Batch>) => this.settleBatches(touched));
    this.load();
  }

  /**
   * What an earlier run left: batches are mirrored; rows of `results` (an outbox too large to
   * mirror, or one written by an older worker) are moved into one batch if they are few and
   * small enough; else they stay rows, never read into one string.
   */
  private load(): void {
    const { n: rows, chars } = this.rowsSize.get() as { n: number; chars: number };
    if (rows > this.mirroredAtMost || chars + rows * ENTRY_OVERHEAD > this.mirroredBytesAtMost) {
      this.moveBatchesToRows();
      return;
    }
    const batches = this.db.prepare("SELECT seq, results FROM batches ORDER BY seq").raw().all() as [number, string][];
    this.mirror = new Map();
    this.twoKeyed = 0;
    if (rows > 0) {
      this.db.transaction(() => {
        // Older than any batch (a move between the tables empties one of them in its transaction).
        const entries = (this.oldest.all(this.mirroredAtMost) as Row[]).map((row) => entryOf(row));
        const json = JSON.stringify(entries);
        const { lastInsertRowid } = this.insertBatch.run(new Date().toISOString(), json);
        this.db.exec("DELETE FROM results");
        batches.unshift([Number(lastInsertRowid), json]);
      })();
    }
    // A batch some of whose results were written again since (a crash before it was written
    // again) loses them now, or goes if that left it nothing.
    const touched = new Set<Batch>();
    for (const [seq, json] of batches) for (const batch of this.mirrorBatch(seq, JSON.parse(json) as OutboxEntry[], json.length)) touched.add(batch);
    if (touched.size > 0) this.settleInTransaction(touched);
    if (this.tooLarge()) this.moveBatchesToRows();
  }

  private tooLarge(): boolean {
    return (this.mirror?.size ?? 0) > this.mirroredAtMost || this.mirroredBytes > this.mirroredBytesAtMost;
  }

  /** Keep these results on disk (one transaction). */
  add(entries: OutboxEntry[]): void {
    if (entries.length === 0) return;
    if (!this.mirror) {
      this.insertRows(entries);
      return;
    }
    // A completed result always has one in its row (null for none), set on the entry itself:
    // the caller hands its entries over.
    for (const entry of entries) if (entry.status === "completed" && entry.result === undefined) entry.result = null;
    const list = entries;
    // Each result's JSON alone, then joined (as JSON.stringify of the list would write it) only
    // if the mirror stays within its limits: a tick of big results goes to rows instead.
    const room = this.mirroredBytesAtMost - this.mirroredBytes;
    const parts: string[] = [];
    let chars = 2;
    for (const entry of list) {
      const part = this.mirror.size + list.length > this.mirroredAtMost ? undefined : JSON.stringify(entry);
      chars += (part?.length ?? Infinity) + 1;
      if (part === undefined || chars > room) {
        this.moveBatchesToRows(list);
        return;
      }
      parts.push(part);
    }
    this.addBatch(`[${parts.join(",")}]`, list);
  }

  /**
   * The mirror's entry of a result. Keyed by its job id alone (a string the mirror hashes
   * once, not one made for each look-up), or, while another attempt of the same job holds
   * that key, by job id and attempt.
   */
  private kept(jobId: string, attempt: number): Kept | undefined {
    const kept = this.mirror?.get(jobId);
    if (kept?.entry.attempt === attempt) return kept;
    return this.twoKeyed === 0 ? undefined : this.mirror?.get(keyOf(jobId, attempt));
  }

  /** The key a new result goes under (its old one, if it replaces a result kept before). */
  private keyFor(jobId: string, attempt: number, old: Kept | undefined): string {
    if (old) return old.key;
    return this.mirror?.has(jobId) ? keyOf(jobId, attempt) : jobId;
  }

  /** Mirror a batch row's results (later ones replace earlier ones); returns the older batches that lost a result to it (and it, if left empty). */
  private mirrorBatch(seq: number, entries: OutboxEntry[], jsonLength: number): Batch[] {
    const mirror = this.mirror;
    if (!mirror) return [];
    const batch: Batch = { seq, live: 0, entries };
    const bytes = jsonLength / Math.max(1, entries.length);
    const emptied: Batch[] = [];
    for (const entry of entries) {
      if (entry.status === "completed" && entry.result === undefined) entry.result = null;
      const old = this.kept(entry.jobId, entry.attempt);
      const key = this.keyFor(entry.jobId, entry.attempt, old);
      if (old) {
        mirror.delete(key);
        this.mirroredBytes -= old.bytes;
        old.batch.live -= 1;
        // Its row still holds the older copy: written again without it (or deleted if that left
        // it nothing), or a restart would read that copy back once this one is settled.
        if (old.batch !== batch && !emptied.includes(old.batch)) emptied.push(old.batch);
      }
      if (!old && key !== entry.jobId) this.twoKeyed += 1;
      mirror.set(key, { batch, entry, bytes, key });
      batch.live += 1;
      this.mirroredBytes += bytes;
    }
    if (batch.live === 0) emptied.push(batch);
    return emptied;
  }

  /** Delete the rows of batches with nothing left, write again those that lost only some results. */
  private settleBatches(touched: Iterable<Batch>): void {
    const empty: number[] = [];
    for (const batch of touched) {
      if (batch.live === 0) {
        empty.push(batch.seq);
        continue;
      }
      batch.entries = batch.entries.filter((entry) => this.kept(entry.jobId, entry.attempt)?.batch === batch);
      this.rewriteBatch.run(JSON.stringify(batch.entries), batch.seq);
    }
    if (empty.length > 0) this.removeBatches.run(JSON.stringify(empty));
  }

  /**
   * Too many or too large to mirror: every result to `results`, a row each, served from disk;
   * `more` (newer than all of them) with them, in the same transaction.
   */
  private moveBatchesToRows(more: OutboxEntry[] = []): void {
    const kept = this.mirror ? [...this.mirror.values()].map(({ entry }) => entry) : this.batchEntriesOnDisk();
    this.db.transaction(() => {
      this.insertRows(kept);
      this.insertRows(more);
      this.db.exec("DELETE FROM batches");
    })();
    this.mirror = undefined;
    this.mirroredBytes = 0;
    this.twoKeyed = 0;
  }

  /** Every result in `batches`, oldest first (later copies of a result replace earlier ones). */
  private batchEntriesOnDisk(): OutboxEntry[] {
    const byKey = new Map<string, OutboxEntry>();
    for (const [json] of this.db.prepare("SELECT results FROM batches ORDER BY seq").raw().iterate() as IterableIterator<[string]>) {
      for (const entry of JSON.parse(json) as OutboxEntry[]) {
        const key = keyOf(entry.jobId, entry.attempt);
        byKey.delete(key);
        byKey.set(key, entry);
      }
    }
    return [...byKey.values()];
  }

  /** Results as rows of `results` (one transaction; a repeat replaces the row and goes to the end). */
  private insertRows(entries: OutboxEntry[]): void {
    const at = new Date().toISOString();
    this.db.transaction(() => {
      for (const entry of entries) {
        const result = entry.status === "completed" ? JSON.stringify(entry.result ?? null) : null;
        const error = entry.error === undefined ? null : JSON.stringify(entry.error);
        this.insert.run(entry.nodeId, entry.jobId, entry.attempt, entry.status, result, error, entry.logTail ?? null, at);
      }
    })();
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
    if (!mirror) {
      this.db.transaction(() => {
        for (const key of keys) this.remove.run(key.jobId, key.attempt);
      })();
      // A large outbox that has been sent: mirror again from here.
      if (this.countOnDisk() === 0) {
        this.mirror = new Map();
        this.twoKeyed = 0;
      }
      return;
    }
    const touched = new Set<Batch>();
    for (const key of keys) {
      const kept = this.kept(key.jobId, key.attempt);
      if (!kept) continue;
      mirror.delete(kept.key);
      if (kept.key !== kept.entry.jobId) this.twoKeyed -= 1;
      this.mirroredBytes -= kept.bytes;
      kept.batch.live -= 1;
      touched.add(kept.batch);
    }
    if (touched.size > 0) this.settleInTransaction(touched);
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
