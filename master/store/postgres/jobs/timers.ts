// The verbs the master's timers call on PostgreSQL: promote due scheduled jobs, age pending
// jobs, take back stalled jobs and expired leases. Each locks the rows it takes with SKIP
// LOCKED, so a sweep never waits on a claim or a report.
import { sql } from "kysely";
import { agedOnce } from "../../../queue/aging.js";
import type { RescuedJob } from "../../types.js";
import { changed, rowsOf, writeAudit, type PgContext } from "../context.js";
import type { Tx } from "../database.js";
import type { JobRow } from "../rows.js";
import { ENDING_LEASE_SELECT, endLeases, nextAgingAt, type EndingLease } from "./lifecycle.js";

export async function promoteScheduled(ctx: PgContext, tx: Tx, limit: number): Promise<{ promoted: number; nextAt: Date | null }> {
  const now = ctx.clock.now();
  const at = now.toISOString();
  const due = await rowsOf(
    tx,
    sql<Pick<JobRow, "seq" | "id" | "effective_priority">>`
      SELECT seq, id, effective_priority FROM jobs WHERE status = 'scheduled' AND ready_at <= ${at}
      ORDER BY ready_at LIMIT ${limit} FOR UPDATE SKIP LOCKED`,
  );
  if (due.length > 0) {
    await changed(
      tx,
      sql`UPDATE jobs SET status = 'pending', ready_at = ${at}, aging_at = p.aging_at, updated_at = ${at}
          FROM jsonb_to_recordset(${JSON.stringify(due.map((job) => ({ seq: job.seq, aging_at: nextAgingAt(job.effective_priority, now, ctx.policy.agingMs) })))}::jsonb)
            AS p(seq bigint, aging_at timestamptz)
          WHERE jobs.seq = p.seq AND jobs.status = 'scheduled'`,
    );
    tx.mark({ claimable: true });
    await writeAudit(tx.db, due.map((job) => ({ event_type: "job.promoted", entity_type: "job", entity_id: job.id, client_id: null, details: {} })), at);
  }
  const [next] = await rowsOf(tx, sql<{ ready_at: string }>`SELECT ready_at FROM jobs WHERE status = 'scheduled' ORDER BY ready_at LIMIT 1`);
  return { promoted: due.length, nextAt: next ? new Date(next.ready_at) : null };
}

/** Lift each pending job whose aging time came by one class (API.md §2). */
export async function ageJobs(ctx: PgContext, tx: Tx, limit: number): Promise<number> {
  const at = ctx.clock.now().toISOString();
  const due = await rowsOf(
    tx,
    sql<Pick<JobRow, "seq" | "effective_priority" | "aging_at">>`
      SELECT seq, effective_priority, aging_at FROM jobs
      WHERE status = 'pending' AND aging_at IS NOT NULL AND aging_at <= ${at}
      ORDER BY aging_at LIMIT ${limit} FOR UPDATE SKIP LOCKED`,
  );
  if (due.length === 0) return 0;
  const lifted = due.map((job) => {
    const { weight, agingAt } = agedOnce(job.effective_priority, job.aging_at, ctx.policy.agingMs);
    return { seq: job.seq, weight, aging_at: agingAt };
  });
  await changed(
    tx,
    sql`UPDATE jobs SET effective_priority = a.weight, aging_at = a.aging_at
        FROM jsonb_to_recordset(${JSON.stringify(lifted)}::jsonb) AS a(seq bigint, weight integer, aging_at timestamptz)
        WHERE jobs.seq = a.seq AND jobs.status = 'pending'`,
  );
  return due.length;
}

/**
 * A sweep's batch in submission order, as SQLite's reads it: the order in which their
 * dependents fail (planDependencyFailures). Not ORDER BY …, seq: jobs claimed together run
 * out together, and PostgreSQL would read and sort every one of them for each batch.
 */
function oldestFirst(jobs: EndingLease[]): EndingLease[] {
  return jobs.sort((a, b) => Number(a.seq) - Number(b.seq));
}

/** Jobs running past 2 × timeout_s + the stall grace go back to the queue (or fail). */
export async function rescueStalled(ctx: PgContext, tx: Tx, limit: number): Promise<RescuedJob[]> {
  const at = ctx.clock.now().toISOString();
  const stalled = await rowsOf(
    tx,
    sql<EndingLease>`SELECT ${ENDING_LEASE_SELECT} FROM jobs WHERE status = 'running' AND stall_at <= ${at}
                     ORDER BY stall_at LIMIT ${limit} FOR UPDATE SKIP LOCKED`,
  );
  return endLeases(ctx, tx, oldestFirst(stalled), "stalled", "job.stalled", null);
}

/** Running jobs whose lease no heartbeat renewed: the node lost them (or is gone). */
export async function expireLeases(ctx: PgContext, tx: Tx, limit: number): Promise<RescuedJob[]> {
  const at = ctx.clock.now().toISOString();
  const expired = await rowsOf(
    tx,
    sql<EndingLease>`SELECT ${ENDING_LEASE_SELECT} FROM jobs WHERE status = 'running' AND lease_expires_at < ${at}
                     ORDER BY lease_expires_at LIMIT ${limit} FOR UPDATE SKIP LOCKED`,
  );
  return endLeases(ctx, tx, oldestFirst(expired), "lease_expired", "job.reassigned", null);
}
