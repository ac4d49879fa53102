// The verbs the master's timers call: promote due scheduled jobs, age pending
// jobs, take back stalled ones. Each reads one range of a partial index; the sweeps
// of running jobs read all of jobs_running (bounded by the cluster's capacity) and sort.
import { sql } from "kysely";
import { agedOnce } from "../../../queue/aging.js";
import type { RescuedJob } from "../../types.js";
import type { StoreContext } from "../context.js";
import { param } from "../database.js";
import type { JobRow } from "../rows.js";
import { ENDING_LEASE_COLUMNS, endLeases, nextAgingAt, type EndingLease } from "./lifecycle.js";

export function promoteScheduled(ctx: StoreContext, limit: number): { promoted: number; nextAt: Date | null } {
  const { db, audit } = ctx;
  return db.transaction(() => {
    const now = ctx.clock.now();
    const at = now.toISOString();
    // INDEXED BY: without statistics SQLite would rather read every scheduled job through jobs_by_status and sort.
    const due = db.allSql<Pick<JobRow, "seq" | "id" | "effective_priority">>(sql`
      SELECT seq, id, effective_priority FROM jobs INDEXED BY jobs_scheduled
      WHERE status = 'scheduled' AND ready_at <= ${at} ORDER BY ready_at LIMIT ${limit}`);
    // Prepared, as in ageJobs: many delayed jobs can fall due at once.
    const promote = db.prepared<{ seq: number; at: string; agingAt: string | null }>("promote-job", () =>
      db.kysely
        .updateTable("jobs")
        .set({ status: sql.lit("pending"), ready_at: param("at"), aging_at: param("agingAt"), updated_at: param("at") })
        .where("seq", "=", param("seq"))
        .where("status", "=", sql.lit("scheduled")),
    );
    for (const job of due) promote.run({ seq: job.seq, at, agingAt: nextAgingAt(job.effective_priority, now, ctx.policy.agingMs) });
    if (due.length > 0) ctx.signal.mark({ claimable: true });
    audit.writeMany(
      due.map((job) => ({ event_type: "job.promoted", entity_type: "job", entity_id: job.id, client_id: null, details: {} })),
      at,
    );
    const [next] = db.allSql<{ ready_at: string }>(sql`
      SELECT ready_at FROM jobs INDEXED BY jobs_scheduled WHERE status = 'scheduled' ORDER BY ready_at LIMIT 1`);
    return { promoted: due.length, nextAt: next ? new Date(next.ready_at) : null };
  });
}

/** Lift each pending job whose aging time came by one class (API.md §2). */
export function ageJobs(ctx: StoreContext, limit: number): number {
  const { db } = ctx;
  return db.transaction(() => {
    const at = ctx.clock.now().toISOString();
    const due = db.allSql<Pick<JobRow, "seq" | "effective_priority" | "aging_at">>(sql`
      SELECT seq, effective_priority, aging_at FROM jobs INDEXED BY jobs_aging
      WHERE status = 'pending' AND aging_at IS NOT NULL AND aging_at <= ${at} ORDER BY aging_at LIMIT ${limit}`);
    for (const job of due) {
      const { weight, agingAt } = agedOnce(job.effective_priority, job.aging_at, ctx.policy.agingMs);
      // Prepared: a backlog older than the aging interval means a million of these, and
      // a Kysely query compiled for each one left the master 35 MB larger (bench: memory).
      db.prepared<{ seq: number; weight: number; agingAt: string | null }>("age-job", () =>
        db.kysely
          .updateTable("jobs")
          .set({ effective_priority: param("weight"), aging_at: param("agingAt") })
          .where("seq", "=", param("seq"))
          .where("status", "=", sql.lit("pending")),
      ).run({ seq: job.seq, weight, agingAt });
    }
    return due.length;
  });
}

/** The columns endLeases needs, for the sweeps' hand-written reads. */
const ENDING_LEASE_SELECT = sql.raw(ENDING_LEASE_COLUMNS.join(", "));

/** Jobs running past 2 × timeout_s + the stall grace go back to the queue (or fail). */
export function rescueStalled(ctx: StoreContext, limit: number): RescuedJob[] {
  const { db } = ctx;
  return db.transaction(() => {
    const at = ctx.clock.now().toISOString();
    const stalled = db.allSql<EndingLease>(sql`
      SELECT ${ENDING_LEASE_SELECT} FROM jobs INDEXED BY jobs_running
      WHERE status = 'running' AND stall_at <= ${at} ORDER BY stall_at LIMIT ${limit}`);
    // In submission order, as PostgreSQL's: the order in which their dependents fail (planDependencyFailures).
    return endLeases(ctx, stalled.sort((x, y) => x.seq - y.seq), "stalled", "job.stalled", null);
  });
}

/** Running jobs whose lease no heartbeat renewed: the node lost them (or is gone). */
export function expireLeases(ctx: StoreContext, limit: number): RescuedJob[] {
  const { db } = ctx;
  return db.transaction(() => {
    const at = ctx.clock.now().toISOString();
    const expired = db.allSql<EndingLease>(sql`
      SELECT ${ENDING_LEASE_SELECT} FROM jobs INDEXED BY jobs_running
      WHERE status = 'running' AND lease_expires_at < ${at} ORDER BY lease_expires_at LIMIT ${limit}`);
    return endLeases(ctx, expired.sort((x, y) => x.seq - y.seq), "lease_expired", "job.reassigned", null);
  });
}
