// Fair share between clients on SQLite (API.md §5a): the cluster's mode, the tables that
// keep each client's place in line (migrations/sqlite/0007_fair_share.sql), and the claim's
// fill from them.
//
// The index and the triggers that keep fair_queue and fair_clients exact exist only while
// the mode is `clients`: turning it on makes them and rebuilds the tables from `jobs` in
// one transaction, turning it off drops them and empties the tables, so strict FIFO (the
// default) pays nothing per job. While on, the triggers follow every change of a job,
// whichever verb, sweeper or operator's sqlite3 session makes it.
import { sql } from "kysely";
import { closingGate, FAIR_SHARE_SETTING, fairRowsToRead, fillFairLevel, topLevel, type FairCandidate, type FairShareMode } from "../../queue/fair-share.js";
import { limitParam, param, type SqliteDatabase } from "./database.js";
import type { FairQueueTable } from "../schema.js";

/** The fair-share objects made with the mode: the index a claim finds a client's next jobs by, and the triggers. */
/** A pending job (`old`) leaves its client's line: one fewer, a new head if it was the head, the row gone when empty. */
const LEAVE_LINE = `UPDATE fair_queue SET pending = pending - 1,
       head_seq = CASE WHEN head_seq = old.seq AND pending > 1 THEN coalesce(
         (SELECT min(seq) FROM jobs WHERE status = 'pending' AND lane = old.lane
            AND effective_priority = old.effective_priority AND client_id = old.client_id), head_seq) ELSE head_seq END
     WHERE old.status = 'pending' AND lane = old.lane AND effective_priority = old.effective_priority AND client_id = old.client_id;
     DELETE FROM fair_queue
     WHERE old.status = 'pending' AND lane = old.lane AND effective_priority = old.effective_priority AND client_id = old.client_id
       AND pending <= 0;`;

const FAIR_OBJECTS: readonly string[] = [
  `CREATE INDEX jobs_fair ON jobs (lane, effective_priority DESC, client_id, seq) WHERE status = 'pending'`,
  // A job pending now joins its client's line (a new job, a retry, a promotion, a re-queue,
  // a new priority): the row made if new, its head moved if this one is older.
  `CREATE TRIGGER fair_job_added AFTER INSERT ON jobs
   WHEN new.status = 'pending' OR new.status = 'running'
   BEGIN
     INSERT INTO fair_queue (lane, effective_priority, client_id, head_seq, pending, running)
       SELECT new.lane, new.effective_priority, new.client_id, new.seq, 1,
              coalesce((SELECT running FROM fair_clients WHERE client_id = new.client_id), 0)
       WHERE new.status = 'pending'
       ON CONFLICT (lane, effective_priority, client_id) DO UPDATE SET pending = pending + 1, head_seq = min(head_seq, excluded.head_seq);
     INSERT INTO fair_clients (client_id, running) SELECT new.client_id, 1 WHERE new.status = 'running'
       ON CONFLICT (client_id) DO UPDATE SET running = running + 1;
     UPDATE fair_queue SET running = running + 1 WHERE new.status = 'running' AND client_id = new.client_id;
   END`,
  // A job leaves its line (taken, canceled, its priority changed) and joins another.
  `CREATE TRIGGER fair_job_moved AFTER UPDATE OF status, effective_priority ON jobs
   WHEN (old.status = 'pending' OR new.status = 'pending')
     AND (old.status IS NOT new.status OR old.effective_priority IS NOT new.effective_priority)
   BEGIN
     ${LEAVE_LINE}
     INSERT INTO fair_queue (lane, effective_priority, client_id, head_seq, pending, running)
       SELECT new.lane, new.effective_priority, new.client_id, new.seq, 1,
              coalesce((SELECT running FROM fair_clients WHERE client_id = new.client_id), 0)
       WHERE new.status = 'pending'
       ON CONFLICT (lane, effective_priority, client_id) DO UPDATE SET pending = pending + 1, head_seq = min(head_seq, excluded.head_seq);
   END`,
  // A job starts or stops running: its client's count, on every row of the client.
  `CREATE TRIGGER fair_job_running AFTER UPDATE OF status ON jobs
   WHEN (old.status = 'running') <> (new.status = 'running')
   BEGIN
     INSERT INTO fair_clients (client_id, running) SELECT new.client_id, CASE WHEN new.status = 'running' THEN 1 ELSE -1 END WHERE true
       ON CONFLICT (client_id) DO UPDATE SET running = running + excluded.running;
     DELETE FROM fair_clients WHERE client_id = new.client_id AND running = 0;
     UPDATE fair_queue SET running = running + CASE WHEN new.status = 'running' THEN 1 ELSE -1 END WHERE client_id = new.client_id;
   END`,
  // Whatever deletes a pending or running job (retention deletes only finished ones).
  `CREATE TRIGGER fair_job_deleted AFTER DELETE ON jobs
   WHEN old.status = 'pending' OR old.status = 'running'
   BEGIN
     ${LEAVE_LINE}
     UPDATE fair_clients SET running = running - 1 WHERE old.status = 'running' AND client_id = old.client_id;
     DELETE FROM fair_clients WHERE old.status = 'running' AND client_id = old.client_id AND running = 0;
     UPDATE fair_queue SET running = running - 1 WHERE old.status = 'running' AND client_id = old.client_id;
   END`,
];

const DROP_OBJECTS: readonly string[] = [
  "DROP TRIGGER IF EXISTS fair_job_added",
  "DROP TRIGGER IF EXISTS fair_job_moved",
  "DROP TRIGGER IF EXISTS fair_job_running",
  "DROP TRIGGER IF EXISTS fair_job_deleted",
  "DROP INDEX IF EXISTS jobs_fair",
];

/** The tables as `jobs` says they are: what turning the mode on writes (and what the tests compare with). */
export const FAIR_REBUILD: readonly string[] = [
  "DELETE FROM fair_queue",
  "DELETE FROM fair_clients",
  `INSERT INTO fair_clients (client_id, running)
     SELECT client_id, count(*) FROM jobs INDEXED BY jobs_running WHERE status = 'running' GROUP BY client_id`,
  `INSERT INTO fair_queue (lane, effective_priority, client_id, head_seq, pending, running)
     SELECT j.lane, j.effective_priority, j.client_id, min(j.seq), count(*), coalesce(c.running, 0)
     FROM jobs AS j INDEXED BY jobs_fair LEFT JOIN fair_clients AS c ON c.client_id = j.client_id
     WHERE j.status = 'pending'
     GROUP BY j.lane, j.effective_priority, j.client_id`,
];

export function parseFairShareMode(value: string | undefined): FairShareMode {
  return value === "clients" ? "clients" : "off";
}

/** The mode this database is in, kept in memory (one master per SQLite file) after each commit that changes it. */
export class FairShare {
  private current: FairShareMode;

  constructor(private readonly db: SqliteDatabase) {
    const row = db.get(db.kysely.selectFrom("settings").select("value").where("key", "=", FAIR_SHARE_SETTING));
    this.current = parseFairShareMode(row?.value);
  }

  get mode(): FairShareMode {
    return this.current;
  }

  get on(): boolean {
    return this.current === "clients";
  }

  /**
   * Put the database in `mode`, inside the caller's transaction: the setting, and the
   * objects and rows of fair share made (rebuilt from jobs) or dropped (emptied).
   * Answers the mode it was in.
   */
  switchTo(mode: FairShareMode, at: string): FairShareMode {
    const { db } = this;
    const from = this.current;
    const run = (text: string) => db.sqlite.prepare(text).run();
    for (const statement of DROP_OBJECTS) run(statement);
    run("DELETE FROM fair_queue");
    run("DELETE FROM fair_clients");
    if (mode === "clients") {
      for (const statement of FAIR_OBJECTS) run(statement);
      for (const statement of FAIR_REBUILD) run(statement);
    }
    db.run(
      db.kysely
        .insertInto("settings")
        .values({ key: FAIR_SHARE_SETTING, value: mode, updated_at: at })
        .onConflict((oc) => oc.column("key").doUpdateSet({ value: mode, updated_at: at })),
    );
    db.onCommit(() => {
      this.current = mode;
    });
    return from;
  }
}

/** A client's line in one lane at one priority. */
type FairRow = FairQueueTable;

/**
 * A claim under fair share: priority by priority (highest first), the candidates of each
 * lane from fair_queue, the fill of queue/fair-share.ts, each chosen client's next jobs
 * read from jobs_fair as the fill needs them. Answers the chosen seqs; `admit` as in the fill.
 */
export function chooseFair(db: SqliteDatabase, lanes: readonly number[], limit: number, admit?: (lane: number) => boolean): number[] {
  const rowsOf = db.preparedSql<{ lane: number; below: number; limit: number }, FairRow>("fair-rows", () =>
    sql`SELECT lane, effective_priority, client_id, head_seq, pending, running FROM fair_queue INDEXED BY fair_queue_order
        WHERE lane = ${param("lane")} AND effective_priority < ${param("below")}
        ORDER BY effective_priority DESC, running, head_seq LIMIT ${limitParam("limit")}`,
  );
  const nextOf = db.preparedSql<{ lane: number; priority: number; clientId: string; after: number }, { seq: number }>("fair-next", () =>
    sql`SELECT seq FROM jobs
        WHERE status = 'pending' AND lane = ${param("lane")} AND effective_priority = ${param("priority")}
          AND client_id = ${param("clientId")} AND seq > ${param("after")}
        ORDER BY seq LIMIT 1`,
  );
  const taken = new Map<string, number>();
  const chosen: number[] = [];
  const closed = new Set<number>();
  const gate = closingGate(admit, closed);
  let below = Number.MAX_SAFE_INTEGER;
  while (chosen.length < limit) {
    const want = limit - chosen.length;
    // Clients this claim gave jobs have moved back in line: read past them (fairRowsToRead).
    const read = fairRowsToRead(want, taken);
    const rows: FairRow[] = [];
    for (const lane of lanes) if (!closed.has(lane)) for (const row of rowsOf.all({ lane, below, limit: read })) rows.push(row);
    const level = topLevel(rows);
    if (!level) break;
    const priority = level.priority;
    const candidates: FairCandidate[] = level.rows.map((row) => ({
      lane: row.lane,
      clientId: row.client_id,
      headSeq: row.head_seq,
      pending: row.pending,
      running: row.running,
    }));
    chosen.push(
      ...fillFairLevel({
        candidates,
        want,
        taken,
        admit: gate,
        nextSeq: (candidate, after) => nextOf.get({ lane: candidate.lane, priority, clientId: candidate.clientId, after })?.seq,
      }),
    );
    below = priority;
  }
  return chosen;
}
