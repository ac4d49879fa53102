// The store's big statements on PostgreSQL at scale, against the pool's statement_timeout
// (DEFAULT_QUERY_TIMEOUT_MS): the dead-node sweep re-queuing every running job, the stalled-jobs
// sweep, bulk cancel and retry, retention and the expired rows' cleanup, each over `--jobs`
// jobs (default 100,000), as the sweepers and the bulk routes call them (their batch sizes).
// Prints, for each, its calls, its time, its longest call, its transactions and the longest of
// them, and its longest statement; with --detail, the statements that took most of its time.
// Run: node dist/bench/statement-times.js [--jobs N] [--detail] [--dead-nodes-only]
import pg from "pg";
import { createClient } from "../master/auth/clients.js";
import { BULK_MAX } from "../master/http/routes/bulk.js";
import { defaultQueuePolicy } from "../master/queue/policy.js";
import { DEFAULT_QUERY_TIMEOUT_MS } from "../master/store/postgres/database.js";
import { openPostgresStore } from "../master/store/postgres/index.js";
import { submittedPayload, type Store, type SubmitJobParams } from "../master/store/types.js";
import { DEAD_NODE_BATCH, EXPIRED_LEASE_BATCH } from "../master/sweepers/dead-nodes.js";
import { RETENTION_BATCH } from "../master/sweepers/retention.js";
import { STALLED_JOB_BATCH } from "../master/sweepers/stalled-jobs.js";
import { TOKEN_CLEANUP_BATCH } from "../master/sweepers/token-cleanup.js";
import { freshPgDatabase } from "./lib.js";

const argIndex = process.argv.indexOf("--jobs");
const JOBS = argIndex > 0 ? Number(process.argv[argIndex + 1]) : 100_000;
const DETAIL = process.argv.includes("--detail");
/** Stop after the dead-node sweep (the setup and one measure: for quick comparisons). */
const DEAD_NODES_ONLY = process.argv.includes("--dead-nodes-only");
/** Nodes at the API's largest capacity, enough to run every job at once. */
const CAPACITY = 10_000;

/** Every statement's time, from pg itself (all of the store's connections are pg Clients). */
const statements: { ms: number; text: string }[] = [];
/** Every transaction's time, from its BEGIN's start to its COMMIT's (or ROLLBACK's) end. */
const transactions: number[] = [];
const opened = new WeakMap<pg.Client, number>();
const query = pg.Client.prototype.query as (...args: unknown[]) => unknown;
pg.Client.prototype.query = function timed(this: pg.Client, ...args: unknown[]) {
  const started = performance.now();
  const result = query.apply(this, args);
  const config = args[0];
  const text = typeof config === "string" ? config : ((config as { text?: string } | undefined)?.text ?? "");
  if (/^\s*(begin|start transaction)/i.test(text)) opened.set(this, started);
  const ending = /^\s*(commit|rollback)/i.test(text);
  if (result instanceof Promise) {
    void result.then(() => {
      const ended = performance.now();
      statements.push({ ms: ended - started, text });
      const begun = opened.get(this);
      if (ending && begun !== undefined) {
        transactions.push(ended - begun);
        opened.delete(this);
      }
    }, () => undefined);
  }
  return result;
} as typeof pg.Client.prototype.query;

let nowMs = Date.parse("2026-12-07T00:00:00.000Z");
const clock = { now: () => new Date(nowMs) };

interface Measured {
  what: string;
  calls: number;
  handled: number;
  totalMs: number;
  longestCallMs: number;
  transactions: number;
  longestTransactionMs: number;
  longestStatementMs: number;
  longestStatement: string;
}
const results: Measured[] = [];

/** Call `step` until it handles fewer than `batch` (as the sweepers' inBatches does), timing each call and its statements. */
async function measure(what: string, batch: number, step: () => Promise<number>): Promise<void> {
  const from = statements.length;
  const fromTransactions = transactions.length;
  let calls = 0;
  let handled = 0;
  let longestCallMs = 0;
  const started = performance.now();
  for (;;) {
    const callStarted = performance.now();
    const n = await step();
    longestCallMs = Math.max(longestCallMs, performance.now() - callStarted);
    calls += 1;
    handled += n;
    if (n < batch) break;
  }
  const totalMs = performance.now() - started;
  const longest = statements.slice(from).reduce((a, b) => (b.ms > a.ms ? b : a), { ms: 0, text: "" });
  const its = transactions.slice(fromTransactions);
  const row = {
    what, calls, handled, totalMs, longestCallMs,
    transactions: its.length, longestTransactionMs: Math.max(0, ...its),
    longestStatementMs: longest.ms, longestStatement: longest.text.replace(/\s+/g, " ").slice(0, 70),
  };
  results.push(row);
  process.stderr.write(`${JSON.stringify(row)}\n`);
  if (DETAIL) {
    const byText = new Map<string, { n: number; ms: number }>();
    for (const { ms, text } of statements.slice(from)) {
      const key = text.replace(/\s+/g, " ").trim().slice(0, 90);
      const sum = byText.get(key) ?? { n: 0, ms: 0 };
      sum.n += 1;
      sum.ms += ms;
      byText.set(key, sum);
    }
    for (const [text, sum] of [...byText].sort((a, b) => b[1].ms - a[1].ms).slice(0, 8)) {
      process.stderr.write(`    ${sum.ms.toFixed(0).padStart(7)} ms ${String(sum.n).padStart(6)}x  ${text}\n`);
    }
  }
}

async function submitAll(store: Store, clientId: string): Promise<void> {
  for (let i = 0; i < JOBS; i += 1000) {
    const jobs: SubmitJobParams[] = Array.from({ length: Math.min(1000, JOBS - i) }, (_, k) => ({
      clientId, type: "noop", ...submittedPayload({ i: i + k }), priority: "medium", maxRetries: 100, timeoutS: 60,
      runAt: null, requires: [], dependsOn: [], idempotencyKey: null, tags: {},
    }));
    const outcome = await store.jobs.submit(jobs, { batch: true });
    if (!outcome.ok) throw new Error(`submit: ${outcome.reason}`);
  }
}

/** Nodes that claim every pending job. */
async function runAll(store: Store, clientId: string, round: string): Promise<void> {
  for (let n = 0; n * CAPACITY < JOBS; n++) {
    const { node } = await store.nodes.register({ clientId, name: `${round}-${n}`, labels: [], capacity: CAPACITY, types: null, version: null, hardware: {} });
    for (let taken = 0; taken < CAPACITY; ) {
      const outcome = await store.jobs.claim({ nodeId: node.id, max: 1000 });
      const items = "items" in outcome ? outcome.items : [];
      if (items.length === 0) break;
      taken += items.length;
    }
  }
}

/** Runs the measures (up to the dead-node sweep with --dead-nodes-only). */
async function measureAll(): Promise<void> {
  const database = await freshPgDatabase();
  const store = await openPostgresStore({ url: database.url, clock, policy: defaultQueuePolicy(), poolSize: 4 });
  try {
    const client = await createClient(store, { name: "bench", role: "admin", actor: null });
    process.stderr.write(`${JOBS} jobs, statement_timeout ${DEFAULT_QUERY_TIMEOUT_MS} ms\n`);
    await measure(`submit ${JOBS} (batches of 1,000)`, Infinity, async () => (await submitAll(store, client.id), JOBS));

    await runAll(store, client.id, "a");
    nowMs += 3_600_000;
    const cutoff = new Date(nowMs - 60_000);
    await measure(`dead-node sweep: ${JOBS / CAPACITY} nodes × ${CAPACITY} running`, DEAD_NODE_BATCH, async () => (await store.nodes.markDead({ cutoff, limit: DEAD_NODE_BATCH })).length);
    if (DEAD_NODES_ONLY) return;

    await runAll(store, client.id, "b");
    nowMs += 3_600_000;
    await measure(`expired leases: ${JOBS} running`, EXPIRED_LEASE_BATCH, async () => (await store.jobs.expireLeases({ limit: EXPIRED_LEASE_BATCH })).length);

    await runAll(store, client.id, "c");
    // Past 2 × timeout_s + the stall grace (and the leases' end: the stalled sweep runs first here).
    nowMs += 3_600_000;
    await measure(`stalled-jobs sweep: ${JOBS} running`, STALLED_JOB_BATCH, async () => (await store.jobs.rescueStalled({ limit: STALLED_JOB_BATCH })).length);

    const bulk = (action: "cancelMatching" | "retryMatching", status: "pending" | "canceled") => async () =>
      (await store.jobs[action]({ filter: { status }, max: BULK_MAX, actor: client.id, shownFilter: { status } })).changed;
    await measure(`bulk cancel: ${JOBS} pending, ${BULK_MAX} a call`, BULK_MAX, bulk("cancelMatching", "pending"));
    await measure(`bulk retry: ${JOBS} canceled, ${BULK_MAX} a call`, BULK_MAX, bulk("retryMatching", "canceled"));
    await measure(`bulk cancel: ${JOBS} pending, in one call`, Infinity, async () =>
      (await store.jobs.cancelMatching({ filter: { status: "pending" }, max: JOBS, actor: client.id, shownFilter: { status: "pending" } })).changed);

    nowMs += 31 * 86_400_000;
    const before = new Date(nowMs - 30 * 86_400_000);
    await measure(`retention: ${JOBS} finished jobs`, RETENTION_BATCH, () => store.jobs.purgeFinished({ before, limit: RETENTION_BATCH }));
    await measure(`retention: the audit log`, RETENTION_BATCH, () => store.audit.purge({ before, limit: RETENTION_BATCH }));

    // Expired tokens and rate-limit counters, written straight in (issuing them one by one is not what is measured).
    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    await admin.query(
      `INSERT INTO auth_tokens (id, client_id, token_hash, expires_at, created_at)
       SELECT 't' || i, $1, md5(i::text), $2::timestamptz, $2::timestamptz FROM generate_series(1, $3) AS i`,
      [client.id, new Date(nowMs - 86_400_000).toISOString(), JOBS],
    );
    await admin.query(`INSERT INTO rate_limits (key, points, expire) SELECT 'k' || i, 1, $1 FROM generate_series(1, $2) AS i`, [nowMs - 60_000, JOBS]);
    await admin.end();
    await measure(`token cleanup: ${JOBS} expired`, TOKEN_CLEANUP_BATCH, () => store.tokens.deleteExpired({ before: new Date(nowMs), limit: TOKEN_CLEANUP_BATCH }));
    await measure(`rate-limit cleanup: ${JOBS} expired`, TOKEN_CLEANUP_BATCH, () => store.rateLimits.deleteExpired({ before: new Date(nowMs), limit: TOKEN_CLEANUP_BATCH }));
  } finally {
    await store.close();
    await database.drop();
  }
}

async function main(): Promise<void> {
  await measureAll();
  process.stdout.write(
    "| what | calls | total s | longest call s | transactions | longest transaction s | longest statement ms | its statement |\n|---|---|---|---|---|---|---|---|\n",
  );
  for (const r of results) {
    process.stdout.write(
      `| ${r.what} | ${r.calls} | ${(r.totalMs / 1000).toFixed(1)} | ${(r.longestCallMs / 1000).toFixed(2)} | ${r.transactions} | ${(r.longestTransactionMs / 1000).toFixed(2)} | ${r.longestStatementMs.toFixed(0)} | \`${r.longestStatement}\` |\n`,
    );
  }
}

await main();
