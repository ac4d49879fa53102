// 0. The floor under gaffer: the writes the contract asks for each job, as bare SQL through
//    better-sqlite3 in this process, with no gaffer code, no HTTP and no JSON: a batch of
//    1,000 submissions (a job row each and one jobs.submitted audit row), and the drain's claims
//    and completions of 500 (the row's update and its job_attempts row started, then ended),
//    every transaction with synchronous=FULL as the master commits. Twice: on gaffer's own
//    schema (its migrations: the indexes its lists, sweepers and events read) and on a bare one
//    that keeps only what the contract cannot do without (API.md §11's columns, the issue's
//    dispatch index, job_attempts, audit rows with no index). gaffer's own figures are read
//    against these.
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import Database from "better-sqlite3";
import { defaultMigrationsDir, readMigrations } from "../../master/store/sqlite/migrate.js";
import { tempDir, type Settings } from "../lib.js";

type Metrics = Record<string, number>;
export type Schema = "gaffer" | "bare";

const BARE_SCHEMA = `
  CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, client_id TEXT NOT NULL, type TEXT NOT NULL,
    payload TEXT NOT NULL, priority INTEGER NOT NULL, status TEXT NOT NULL, node_id TEXT,
    attempt INTEGER NOT NULL DEFAULT 0, retry_count INTEGER NOT NULL DEFAULT 0, max_retries INTEGER NOT NULL,
    run_at TEXT, created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT, result TEXT, error TEXT);
  CREATE INDEX jobs_dispatch ON jobs (priority DESC, seq) WHERE status = 'pending';
  CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT, event_type TEXT NOT NULL, entity_type TEXT NOT NULL,
    entity_id TEXT NOT NULL, client_id TEXT, details TEXT NOT NULL DEFAULT '{}', created_at TEXT NOT NULL);
  CREATE TABLE job_attempts (
    job_id TEXT NOT NULL, attempt INTEGER NOT NULL, node_id TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT,
    outcome TEXT NOT NULL DEFAULT 'running', reported TEXT, error TEXT, log_tail TEXT,
    PRIMARY KEY (job_id, attempt)) WITHOUT ROWID;`;

/** The statements of one schema: what a submission, a claim and a completion must write. */
const SQL: Record<Schema, { insert: string; claim: string; complete: string }> = {
  gaffer: {
    insert: `INSERT INTO jobs (id, client_id, type, payload, priority, effective_priority, status, max_retries, timeout_s,
               ready_at, aging_at, requires_key, created_at, updated_at)
             VALUES (@id, 'bench', 'noop', @payload, 2, 2, 'pending', 3, 60, @at, @at, '', @at, @at)`,
    claim: `UPDATE jobs SET status = 'running', node_id = @node, attempt = attempt + 1, started_at = @at, updated_at = @at,
              stall_at = @at, lease_expires_at = @at, aging_at = NULL
            WHERE seq IN (SELECT seq FROM jobs WHERE status = 'pending' AND lane = 0
                          ORDER BY effective_priority DESC, seq LIMIT @limit)
            RETURNING id, type, payload, attempt`,
    complete: `UPDATE jobs SET status = 'completed', result = @result, finished_at = @at, updated_at = @at, stall_at = NULL,
                 lease_expires_at = NULL
               WHERE id IN (SELECT value FROM json_each(@ids))`,
  },
  bare: {
    insert: `INSERT INTO jobs (id, client_id, type, payload, priority, status, max_retries, created_at)
             VALUES (@id, 'bench', 'noop', @payload, 2, 'pending', 3, @at)`,
    claim: `UPDATE jobs SET status = 'running', node_id = @node, attempt = attempt + 1, started_at = @at
            WHERE seq IN (SELECT seq FROM jobs WHERE status = 'pending' ORDER BY priority DESC, seq LIMIT @limit)
            RETURNING id, type, payload, attempt`,
    complete: `UPDATE jobs SET status = 'completed', result = @result, finished_at = @at WHERE id IN (SELECT value FROM json_each(@ids))`,
  },
};

const ROWS_PER_INSERT = 100;
const END_ATTEMPTS = `UPDATE job_attempts SET outcome = 'completed', reported = 'completed', finished_at = @at
  WHERE job_id IN (SELECT value FROM json_each(@ids)) AND attempt = 1 AND outcome = 'running'`;

function open(schema: Schema): Database.Database {
  const db = new Database(join(tempDir(), `floor-${schema}.db`));
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.pragma("cache_size = -16384");
  if (schema === "bare") db.exec(BARE_SCHEMA);
  else {
    for (const migration of readMigrations(defaultMigrationsDir())) db.exec(migration.sql);
    db.exec(`INSERT INTO nodes (id, name, client_id, status, capacity, registered_at, last_heartbeat, updated_at)
             VALUES ('node', 'node', 'bench', 'online', 1000, '', '', '')`);
  }
  return db;
}

/**
 * The attempts a claim starts, a multi-row INSERT per hundred: the way the master's
 * `rowInserter` writes them, written out again here so that the floor runs none of gaffer's code.
 */
function attemptStarter(db: Database.Database): (ids: string[], at: string) => void {
  const tuple = "(?, 1, 'node', ?)";
  const statements = new Map<number, Database.Statement>();
  const statement = (rows: number) => {
    let stmt = statements.get(rows);
    if (!stmt) {
      stmt = db.prepare(`INSERT INTO job_attempts (job_id, attempt, node_id, started_at) VALUES ${Array(rows).fill(tuple).join(", ")}`);
      statements.set(rows, stmt);
    }
    return stmt;
  };
  return (ids, at) => {
    for (let start = 0; start < ids.length; start += ROWS_PER_INSERT) {
      const chunk = ids.slice(start, start + ROWS_PER_INSERT);
      statement(chunk.length).run(chunk.flatMap((id) => [id, at]));
    }
  };
}

/**
 * Jobs a second for `jobs` submissions in batches of 1,000, then for claims and completions
 * of 500 until none is left. The HTTP scenarios run it right after their own figure and give
 * their share of it, which moves less with the machine's hour than the figure (it still moves:
 * this is one process's CPU and fsync, theirs three processes and loopback HTTP).
 */
export function sqlFloor(
  schema: Schema,
  jobs: number,
  shape: { claim: number; complete: number } = { claim: 500, complete: 500 },
  jobText: {
    /** Every job's payload as JSON text (--payload-bytes); by default a small one a job. */
    payloadJson?: string;
    /** Every job's result as JSON text (--result-bytes); by default null. */
    resultJson?: string;
  } = {},
): { batch: number; drain: number } {
  const { payloadJson, resultJson = "null" } = jobText;
  const db = open(schema);
  try {
    const sql = SQL[schema];
    const insert = db.prepare(sql.insert);
    const claim = db.prepare(sql.claim);
    const complete = db.prepare(sql.complete);
    const audit = db.prepare("INSERT INTO audit_log (event_type, entity_type, entity_id, client_id, details, created_at) VALUES ('jobs.submitted', 'jobs', ?, 'bench', ?, ?)");
    const startAttempts = attemptStarter(db);
    const endAttempts = db.prepare(END_ATTEMPTS);
    const prefix = randomUUID().slice(0, 8);
    let made = 0;

    const submit = db.transaction((count: number) => {
      const at = new Date().toISOString();
      const ids: string[] = [];
      for (let i = 0; i < count; i++) {
        const id = `${prefix}-${(made++).toString(36).padStart(10, "0")}`;
        insert.run({ id, payload: payloadJson ?? `{"i":${i}}`, at });
        ids.push(id);
      }
      audit.run(ids[0], JSON.stringify({ count: ids.length, ids }), at);
    });
    const take = db.transaction((limit: number) => {
      const at = new Date().toISOString();
      const rows = claim.all({ node: "node", at, limit }) as { id: string }[];
      startAttempts(rows.map((row) => row.id), at);
      return rows.map((row) => row.id);
    });
    const finish = db.transaction((ids: string[]) => {
      const at = new Date().toISOString();
      const list = JSON.stringify(ids);
      complete.run({ at, ids: list, result: resultJson });
      endAttempts.run({ at, ids: list });
    });

    let started = performance.now();
    for (let done = 0; done < jobs; done += 1000) submit(Math.min(1000, jobs - done));
    const batch = jobs / ((performance.now() - started) / 1000);
    started = performance.now();
    let taken: string[] = [];
    for (let ids = take(shape.claim); ids.length > 0; ids = take(shape.claim)) {
      taken = taken.concat(ids);
      if (taken.length >= shape.complete) {
        finish(taken);
        taken = [];
      }
    }
    if (taken.length > 0) finish(taken);
    const drain = jobs / ((performance.now() - started) / 1000);

    const completed = (db.prepare("SELECT COUNT(*) AS n FROM jobs WHERE status = 'completed'").get() as { n: number }).n;
    const recorded = (db.prepare("SELECT COUNT(*) AS n FROM job_attempts WHERE outcome = 'completed'").get() as { n: number }).n;
    const audited = (db.prepare("SELECT COUNT(*) AS n FROM audit_log").get() as { n: number }).n;
    if (completed !== jobs || recorded !== jobs || audited !== Math.ceil(jobs / 1000)) {
      throw new Error(`floor ${schema}: ${completed} completed, ${recorded} attempts completed, ${audited} audit rows of ${jobs} jobs`);
    }
    return { batch, drain };
  } finally {
    db.close();
  }
}

/** How many jobs the floor writes at a size. */
export function floorJobs(settings: Settings): number {
  return settings.size === "full" ? 20_000 : 2_000;
}

export function floor(settings: Settings): Promise<Metrics> {
  const jobs = floorJobs(settings);
  const gaffer = sqlFloor("gaffer", jobs);
  const bare = sqlFloor("bare", jobs);
  // The drain's own shape (claims of at most 100, results sent 200 at a time by each worker):
  // more, smaller transactions than the floor's 500, so more pages written again a job.
  const small = sqlFloor("gaffer", jobs, { claim: 100, complete: 200 });
  return Promise.resolve({
    "SQL floor, gaffer's schema: batch of 1000 (jobs/s)": gaffer.batch,
    "SQL floor, gaffer's schema: claim + complete by 500 (jobs/s)": gaffer.drain,
    "SQL floor, bare schema: batch of 1000 (jobs/s)": bare.batch,
    "SQL floor, bare schema: claim + complete by 500 (jobs/s)": bare.drain,
    "SQL floor, gaffer's schema: claims of 100, completions by 200 (jobs/s)": small.drain,
  });
}
