// job_attempts: one row per hand-out of a job to a node, started by the claim in its
// transaction and ended in the transaction that ends the lease (the node's report, or
// the master: the node died or left, the job stalled or was canceled). The record of a
// job's normal way, where the audit log keeps the decisions of people and the master.
import { sql, type RawBuilder } from "kysely";
import type { AttemptOutcome, JobAttempt, JobError } from "../../types.js";
import type { StoreContext } from "../context.js";
import { param } from "../database.js";
import { textList, unpackedText } from "../packed-texts.js";
import { parseJson } from "../rows.js";

/** What a claim writes of each attempt it starts (the rest starts as the table's defaults). */
export const ATTEMPT_COLUMNS = ["job_id", "attempt", "node_id", "started_at"] as const;

export interface AttemptEnd {
  jobId: string;
  attempt: number;
  outcome: AttemptOutcome;
  /** What its node reported; null when the master ended it. */
  reported: "completed" | "failed" | null;
  error: JobError | null;
  logTail: string | null;
  at: string;
}

/** End a running attempt (a row already ended stays as it is). */
export function endAttempt(ctx: StoreContext, end: AttemptEnd): void {
  const { db } = ctx;
  db.prepared<{ jobId: string; attempt: number; outcome: string; reported: string | null; error: string | null; logTail: string | null; at: string }>(
    "end-attempt",
    () =>
      db.kysely
        .updateTable("job_attempts")
        .set({ outcome: param("outcome"), reported: param("reported"), error: param("error"), log_tail: param("logTail"), finished_at: param("at") })
        .where("job_id", "=", param("jobId"))
        .where("attempt", "=", param("attempt"))
        .where("outcome", "=", sql.lit("running")),
  ).run({ ...end, error: end.error === null ? null : JSON.stringify(end.error) });
}

/** The SQL that ends many plain completions' attempts; `logTail`: the tail's text, from a `done` row. */
function endCompletedSql(logTail: RawBuilder<unknown>) {
  return sql`
    UPDATE job_attempts
    SET outcome = 'completed', reported = 'completed', finished_at = ${param("at")}, log_tail = ${logTail}
    FROM json_each(${param("done")}) AS done
    WHERE job_attempts.job_id = done.value ->> 'id' AND job_attempts.attempt = done.value ->> 'attempt'
      AND job_attempts.outcome = 'running'`;
}

/** End the attempts of many plain completions at once, each with its log tail (packed when they are long: packed-texts.ts). */
export function endCompletedAttempts(ctx: StoreContext, ended: readonly { id: string; attempt: number; logTail: string | null }[], at: string): void {
  const { db } = ctx;
  const { list, blob } = textList(
    ended,
    ended.map((attempt) => attempt.logTail),
    "log_tail",
  );
  if (blob === null) {
    db.preparedSql<{ done: string; at: string }>("end-completed-attempts", () => endCompletedSql(sql`done.value ->> 'log_tail'`)).run({ done: list, at });
  } else {
    db.preparedSql<{ done: string; tails: Buffer; at: string }>("end-completed-attempts-packed", () => endCompletedSql(unpackedText("tails"))).run({
      done: list,
      tails: blob,
      at,
    });
  }
}

/** Who was handed attempt `attempt` of a job, and what it reported; undefined: nobody. */
export function handOut(ctx: StoreContext, jobId: string, attempt: number): { node_id: string; reported: string | null } | undefined {
  const { db } = ctx;
  return db
    .prepared<{ jobId: string; attempt: number }, { node_id: string; reported: string | null }>("hand-out", () =>
      db.kysely
        .selectFrom("job_attempts")
        .select(["node_id", "reported"])
        .where("job_id", "=", param("jobId"))
        .where("attempt", "=", param("attempt")),
    )
    .get({ jobId, attempt });
}

/** The attempts of one job, oldest first, with the reported status for the job's history. */
export function listAttempts(ctx: StoreContext, jobId: string): (JobAttempt & { reported: string | null })[] {
  const { db } = ctx;
  const rows = db.all(
    db.kysely
      .selectFrom("job_attempts as a")
      .leftJoin("nodes as n", "n.id", "a.node_id")
      .select(["a.attempt", "a.node_id", "n.name as node_name", "a.started_at", "a.finished_at", "a.outcome", "a.reported", "a.error", "a.log_tail"])
      .where("a.job_id", "=", jobId)
      .orderBy("a.attempt"),
  );
  return rows.map((row) => ({
    attempt: row.attempt,
    node_id: row.node_id,
    node_name: row.node_name,
    started_at: row.started_at,
    finished_at: row.finished_at,
    outcome: row.outcome as JobAttempt["outcome"],
    reported: row.reported,
    error: parseJson<JobError | null>(row.error, null),
    log_tail: row.log_tail,
  }));
}
