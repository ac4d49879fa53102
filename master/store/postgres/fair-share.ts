// Fair share between clients on PostgreSQL (API.md §5a): the cluster's mode, the tables
// that keep each client's place in line (migrations/postgres/0003_fair_share.sql), and the
// claim's fill from them.
//
// The index and the triggers that keep fair_queue and fair_clients exact exist only while
// the mode is `clients`. The transaction that turns it on locks jobs against every write,
// makes them and rebuilds the tables from jobs; turning it off drops them and empties the
// tables. The mode lives in the settings row that every claim reads with its node, so every
// master claims the same way from the commit that changed it on.
import { sql } from "kysely";
import { closingGate, FAIR_SHARE_SETTING, fairRowsToRead, fillFairLevel, topLevel, type FairCandidate, type FairShareMode } from "../../queue/fair-share.js";
import { rowsOf } from "./context.js";
import type { Executor, Tx } from "./database.js";
import type { FairQueueTable } from "../schema.js";

const FAIR_OBJECTS: readonly string[] = [
  `CREATE INDEX jobs_fair ON jobs (lane, effective_priority DESC, client_id, seq) WHERE status = 'pending'`,
  // Per statement (0003's gaffer_fair_share: each statement's changes added up and written in
  // client order); the UPDATE one runs for every UPDATE of jobs, as transition tables cannot
  // go with a column list.
  `CREATE TRIGGER jobs_fair_added AFTER INSERT ON jobs
     REFERENCING NEW TABLE AS fair_new FOR EACH STATEMENT EXECUTE FUNCTION gaffer_fair_share()`,
  `CREATE TRIGGER jobs_fair_changed AFTER UPDATE ON jobs
     REFERENCING OLD TABLE AS fair_old NEW TABLE AS fair_new FOR EACH STATEMENT EXECUTE FUNCTION gaffer_fair_share()`,
  `CREATE TRIGGER jobs_fair_deleted AFTER DELETE ON jobs
     REFERENCING OLD TABLE AS fair_old FOR EACH STATEMENT EXECUTE FUNCTION gaffer_fair_share()`,
];

const DROP_OBJECTS: readonly string[] = [
  "DROP TRIGGER IF EXISTS jobs_fair_added ON jobs",
  "DROP TRIGGER IF EXISTS jobs_fair_changed ON jobs",
  "DROP TRIGGER IF EXISTS jobs_fair_deleted ON jobs",
  "DROP INDEX IF EXISTS jobs_fair",
];

const REBUILD: readonly string[] = [
  `INSERT INTO fair_clients (client_id, running)
     SELECT client_id, count(*) FROM jobs WHERE status = 'running' GROUP BY client_id`,
  `INSERT INTO fair_queue (lane, effective_priority, client_id, head_seq, pending, running)
     SELECT j.lane, j.effective_priority, j.client_id, min(j.seq), count(*), coalesce(min(c.running), 0)
     FROM jobs AS j LEFT JOIN fair_clients AS c ON c.client_id = j.client_id
     WHERE j.status = 'pending'
     GROUP BY j.lane, j.effective_priority, j.client_id`,
];

export function parseFairShareMode(value: string | null | undefined): FairShareMode {
  return value === "clients" ? "clients" : "off";
}

/** The mode the database is in now. */
export async function readFairShareMode(db: Executor): Promise<FairShareMode> {
  const { rows } = await sql<{ value: string }>`SELECT value FROM settings WHERE key = ${FAIR_SHARE_SETTING}`.execute(db);
  return parseFairShareMode(rows[0]?.value);
}

/**
 * Put the cluster in `mode` in this transaction; answers the mode it was in. Only a change
 * locks jobs (SHARE ROW EXCLUSIVE: every write of a job waits for it, reads go on), so
 * masters starting in the mode the database is in already change nothing.
 */
export async function switchFairShare(tx: Tx, mode: FairShareMode, at: string): Promise<FairShareMode> {
  const before = await readFairShareMode(tx.db);
  if (before === mode) return before;
  await sql`LOCK TABLE jobs IN SHARE ROW EXCLUSIVE MODE`.execute(tx.db);
  // Another master may have switched while this one waited for the lock.
  const from = await readFairShareMode(tx.db);
  if (from === mode) return from;
  for (const statement of DROP_OBJECTS) await sql.raw(statement).execute(tx.db);
  await sql`DELETE FROM fair_queue`.execute(tx.db);
  await sql`DELETE FROM fair_clients`.execute(tx.db);
  if (mode === "clients") {
    for (const statement of FAIR_OBJECTS) await sql.raw(statement).execute(tx.db);
    for (const statement of REBUILD) await sql.raw(statement).execute(tx.db);
  }
  await sql`INSERT INTO settings (key, value, updated_at) VALUES (${FAIR_SHARE_SETTING}, ${mode}, ${at})
            ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`.execute(tx.db);
  // Every master reads the settings again; waiting claims take by the new order.
  tx.mark({ settings: true, claimable: true });
  return from;
}

/** A client's line in one lane at one priority. */
type FairRow = FairQueueTable;

/**
 * A claim under fair share: priority by priority (highest first), each lane's candidates
 * from fair_queue and their first pending jobs (read, not locked), the fill of
 * queue/fair-share.ts, which says how many jobs each client gets; then each client's first
 * that many jobs locked with SKIP LOCKED. A job another claim holds at once is passed over
 * for the same client's next one, so a client's share stays its share; a client with fewer
 * free jobs than its share gets what it has, and the priority is filled again for the
 * rest without it (other clients' free jobs of this priority go before any lower one).
 * Answers the locked seqs.
 */
export async function chooseFair(tx: Tx, lanes: readonly number[], limit: number, admit?: (lane: number) => boolean): Promise<number[]> {
  const taken = new Map<string, number>();
  const chosen: number[] = [];
  const closed = new Set<number>();
  const gate = closingGate(admit, closed);
  let below = 2_147_483_647;
  // (priority, lane, client)s with no job left there that this claim can lock.
  const dry = new Set<string>();
  const dryKey = (priority: number, lane: number, clientId: string) => `${priority}\u0000${lane}\u0000${clientId}`;
  const key = (lane: number, clientId: string) => `${lane}\u0000${clientId}`;
  // Jobs this claim chose from each (priority, lane, client): still pending, and counted in fair_queue, until it takes them.
  const chosenAt = new Map<string, number>();
  while (chosen.length < limit) {
    const want = limit - chosen.length;
    const open = lanes.filter((lane) => !closed.has(lane));
    if (open.length === 0) break;
    // Clients this claim gave jobs have moved back in line, and dry ones are passed over:
    // read past both (fairRowsToRead).
    const read = fairRowsToRead(want, taken) + dry.size;
    const rows = await rowsOf(
      tx,
      sql<FairRow>`
        SELECT f.lane, f.effective_priority, f.client_id, f.head_seq, f.pending, f.running
        FROM unnest(${open}::int[]) AS l(lane)
        CROSS JOIN LATERAL (
          SELECT lane, effective_priority, client_id, head_seq, pending, running FROM fair_queue
          WHERE lane = l.lane AND effective_priority < ${below}
          ORDER BY effective_priority DESC, running, head_seq
          LIMIT ${read}
        ) f`,
    );
    const level = topLevel(rows.filter((row) => !dry.has(dryKey(row.effective_priority, row.lane, row.client_id))));
    if (!level) break;
    const priority = level.priority;
    const jobsOf = (candidates: { lane: number; client_id: string; n: number }[], lock: boolean) =>
      rowsOf(
        tx,
        sql<{ lane: number; client_id: string; seq: number }>`
          SELECT c.lane, c.client_id, j.seq
          FROM jsonb_to_recordset(${JSON.stringify(candidates)}::jsonb) AS c(lane int, client_id text, n int)
          CROSS JOIN LATERAL (
            SELECT seq FROM jobs
            WHERE status = 'pending' AND lane = c.lane AND effective_priority = ${priority} AND client_id = c.client_id
              AND seq <> ALL(${chosen}::bigint[])
            ORDER BY seq LIMIT c.n
            ${lock ? sql`FOR UPDATE SKIP LOCKED` : sql``}
          ) j
          ORDER BY c.lane, c.client_id, j.seq`,
      );
    const seqsOf = new Map<string, number[]>();
    for (const row of await jobsOf(level.rows.map((row) => ({ lane: row.lane, client_id: row.client_id, n: Math.min(row.pending, want) })), false)) {
      const k = key(row.lane, row.client_id);
      const seqs = seqsOf.get(k);
      if (seqs) seqs.push(row.seq);
      else seqsOf.set(k, [row.seq]);
    }
    // fair_queue and jobs are read by two statements (two snapshots, READ COMMITTED): a claim
    // that committed between them may have emptied lines this one read, and the clients past
    // the read window then go unread. A line with fewer pending jobs than its row said (less
    // this claim's own) is dry here, and the priority is read again without it, as a lock
    // failure is; going down a priority on a short read would pass over other clients' free
    // jobs of this one.
    const short = level.rows.filter((row) => {
      const k = dryKey(priority, row.lane, row.client_id);
      return (seqsOf.get(key(row.lane, row.client_id))?.length ?? 0) < Math.min(row.pending - (chosenAt.get(k) ?? 0), want);
    });
    if (short.length > 0) {
      for (const row of short) dry.add(dryKey(priority, row.lane, row.client_id));
      continue;
    }
    const candidates: FairCandidate[] = [];
    for (const row of level.rows) {
      const seqs = seqsOf.get(key(row.lane, row.client_id)) ?? [];
      const head = seqs[0];
      if (head !== undefined) candidates.push({ lane: row.lane, clientId: row.client_id, headSeq: head, pending: seqs.length, running: row.running });
    }
    const laneOf = new Map<number, FairCandidate>();
    for (const candidate of candidates) for (const seq of seqsOf.get(key(candidate.lane, candidate.clientId)) ?? []) laneOf.set(seq, candidate);
    const shareTaken = new Map(taken);
    const picked = fillFairLevel({
      candidates,
      want,
      taken: shareTaken,
      admit: gate,
      nextSeq: (candidate, after) => {
        const seqs = seqsOf.get(key(candidate.lane, candidate.clientId)) ?? [];
        return seqs[seqs.indexOf(after) + 1];
      },
    });
    // Each (lane, client)'s share, then that many of its jobs that no other claim holds.
    const shares = new Map<string, { lane: number; client_id: string; n: number }>();
    for (const seq of picked) {
      const candidate = laneOf.get(seq);
      if (!candidate) continue;
      const k = key(candidate.lane, candidate.clientId);
      const share = shares.get(k) ?? { lane: candidate.lane, client_id: candidate.clientId, n: 0 };
      share.n += 1;
      shares.set(k, share);
    }
    const locked = shares.size === 0 ? [] : await jobsOf([...shares.values()], true);
    for (const row of locked) {
      chosen.push(row.seq);
      const k = dryKey(priority, row.lane, row.client_id);
      chosenAt.set(k, (chosenAt.get(k) ?? 0) + 1);
      taken.set(row.client_id, (taken.get(row.client_id) ?? 0) + 1);
      const share = shares.get(key(row.lane, row.client_id));
      if (share) share.n -= 1;
    }
    // The priority gave all it had for this claim (or nothing more it may take): the next one
    // down. Else another claim holds jobs of a share: that (lane, client) is dry here, and the
    // priority is filled again from the others (each round dries one more, so this ends).
    if (locked.length === picked.length) {
      below = priority;
      dry.clear();
    } else for (const share of shares.values()) if (share.n > 0) dry.add(dryKey(priority, share.lane, share.client_id));
  }
  return chosen;
}
