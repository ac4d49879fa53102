// claim on PostgreSQL: hand ready jobs to a node, highest effective priority first, then
// FIFO, from the lanes its labels and types cover, never past its free capacity. Each lane's
// head is read and locked with FOR UPDATE SKIP LOCKED, so claims on several masters at once
// never take one job twice and never wait on each other's rows. The node's row is locked
// first (two claims of one node cannot both fill its free slots), and the rows of the
// limited types it could take (so `max_running` holds across masters). With the node's lock,
// a claim takes the type gates' advisory lock shared: a change of a type's pause or limit takes
// it alone (job-types.ts), so it waits for the claims that read the gates before it and the
// claims after it read what it wrote. A claim is five round trips when no type it covers is
// limited: BEGIN, the node's lock, one read of its running count and its lanes, one statement
// that locks the heads, takes them and starts their attempts, and COMMIT.
import { sql } from "kysely";
import type { ClaimOutcome } from "../../types.js";
import { rowsOf, type PgContext } from "../context.js";
import { PREPARED, type Tx } from "../database.js";
import { typeGatesLock } from "../job-types.js";
import type { JobRow } from "../rows.js";
import { takenJobOf } from "../../wire.js";
import { reviveNode } from "./lifecycle.js";
import { FAIR_SHARE_SETTING } from "../../../queue/fair-share.js";
import { chooseFair, parseFairShareMode } from "../fair-share.js";

/** A taken row; `payload` as the text the `json` column keeps (valid JSON: the type checks it), not parsed. */
type Taken = Pick<JobRow, "seq" | "id" | "type" | "attempt" | "priority" | "timeout_s" | "created_at" | "effective_priority" | "ready_at"> & { payload: string };
type Head = Pick<JobRow, "seq" | "effective_priority" | "type">;

const NOTHING: ClaimOutcome = Object.freeze({ ok: true, items: [] });

function byDispatchOrder(a: Pick<JobRow, "seq" | "effective_priority">, b: Pick<JobRow, "seq" | "effective_priority">): number {
  return b.effective_priority - a.effective_priority || a.seq - b.seq;
}

interface NodeFacts {
  id: string;
  /** The cluster's fair-share mode (settings), read with the node. */
  fair_share: string | null;
  status: string;
  labels: string[];
  types: string[] | null;
  capacity: number;
}

/** A lane the node covers, with its type's gate (paused, max_running) if it has one. */
interface CoveredLane {
  id: number;
  type: string;
  paused: boolean | null;
  max_running: number | null;
}

/** What the claim reads once the node's row is locked: its running jobs and the lanes it covers, in one statement. */
async function coverage(tx: Tx, node: NodeFacts): Promise<{ running: number; lanes: CoveredLane[] }> {
  const [row] = await rowsOf(
    tx,
    sql<{ running: number; lanes: CoveredLane[] }>`${PREPARED}
      SELECT (SELECT count(*) FROM jobs WHERE node_id = ${node.id} AND status = 'running') AS running,
             (SELECT coalesce(json_agg(json_build_object('id', l.id, 'type', l.type, 'paused', t.paused, 'max_running', t.max_running)), '[]')
              FROM lanes l LEFT JOIN job_types t ON t.type = l.type AND (t.paused OR t.max_running IS NOT NULL)
              WHERE l.labels <@ ${JSON.stringify(node.labels)}::jsonb
                AND (${node.types === null ? null : JSON.stringify(node.types)}::jsonb IS NULL OR ${JSON.stringify(node.types ?? [])}::jsonb ? l.type)) AS lanes`,
  );
  return { running: row?.running ?? 0, lanes: row?.lanes ?? [] };
}

/** The lanes a node covers, minus paused types'; with the room left for each limited type it covers. */
async function gatedLanes(tx: Tx, covered: CoveredLane[]): Promise<{ lanes: number[]; room: Map<string, number>; typeOf: Map<number, string> }> {
  if (covered.length === 0) return { lanes: [], room: new Map(), typeOf: new Map() };
  const paused = new Set(covered.filter((lane) => lane.paused === true).map((lane) => lane.type));
  // Limited types' rows are locked in a fixed order (no deadlock between masters), read again
  // under the lock, and their running jobs counted in a statement after it (one statement
  // would count from before another master's commit): the limit holds cluster-wide, and only
  // claims that could take such a type wait for each other.
  const limitedTypes = [...new Set(covered.filter((lane) => lane.paused !== true && lane.max_running !== null).map((lane) => lane.type))];
  const room = new Map<string, number>();
  if (limitedTypes.length > 0) {
    const locked = await rowsOf(
      tx,
      sql<{ type: string; max_running: number | null; paused: boolean }>`
        SELECT type, max_running, paused FROM job_types WHERE type = ANY(${limitedTypes}::text[]) ORDER BY type FOR UPDATE`,
    );
    for (const gate of locked) if (gate.paused) paused.add(gate.type);
    const limited = locked.filter((gate) => !gate.paused && gate.max_running !== null);
    if (limited.length > 0) {
      const running = await rowsOf(
        tx,
        sql<{ type: string; n: number }>`
          SELECT type, count(*) AS n FROM jobs WHERE status = 'running' AND type = ANY(${limited.map((gate) => gate.type)}::text[]) GROUP BY type`,
      );
      const counts = new Map(running.map((row) => [row.type, row.n]));
      for (const gate of limited) room.set(gate.type, Math.max(0, (gate.max_running ?? 0) - (counts.get(gate.type) ?? 0)));
    }
  }
  const open = covered.filter((lane) => !paused.has(lane.type) && room.get(lane.type) !== 0);
  return { lanes: open.map((lane) => lane.id), room, typeOf: new Map(open.map((lane) => [lane.id, lane.type])) };
}

/** The columns a claim returns of each job it took. */
const TAKEN = sql.raw("seq, id, type, payload::text AS payload, attempt, priority, timeout_s, created_at, effective_priority, ready_at");

/** What taking a job writes on its row (the job is `jobs`; its lease ends at `leaseExpiresAt`). */
function takeSet(ctx: PgContext, nodeId: string, at: string, leaseExpiresAt: string) {
  return sql`status = 'running', node_id = ${nodeId}, attempt = jobs.attempt + 1, started_at = ${at}, updated_at = ${at},
        lease_expires_at = ${leaseExpiresAt},
        stall_at = ${at}::timestamptz + make_interval(secs => 2 * jobs.timeout_s + ${ctx.policy.stallGraceMs / 1000}),
        aging_at = NULL, progress = NULL, progress_message = NULL, lease_end_reason = NULL`;
}

/**
 * No limited type among the lanes: the first `limit` jobs of the lanes' heads in dispatch
 * order, locked (rows another claim holds are skipped), taken, and their attempts started, in
 * one statement. Prepared (parsed once a connection); PostgreSQL still plans it at each call,
 * its generic plan being costed for ten lanes and a tenth of the pending jobs. The heads are
 * taken by key (`seq = ANY`, and `IS TRUE` keeps the planner off the partial indexes of
 * pending jobs), so that a generic plan (plan_cache_mode = force_generic_plan on the
 * database) reads the heads only: joined to them, it read every pending job.
 */
async function takeHeads(ctx: PgContext, tx: Tx, nodeId: string, lanes: number[], limit: number, at: string, leaseExpiresAt: string): Promise<Taken[]> {
  return rowsOf(
    tx,
    sql<Taken>`${PREPARED}
      WITH heads AS (
        SELECT j.seq, j.effective_priority
        FROM unnest(${lanes}::int[]) AS l(lane)
        CROSS JOIN LATERAL (
          SELECT seq, effective_priority FROM jobs
          WHERE status = 'pending' AND lane = l.lane
          ORDER BY effective_priority DESC, seq
          LIMIT ${limit}
          FOR UPDATE SKIP LOCKED
        ) j
        ORDER BY j.effective_priority DESC, j.seq
        LIMIT ${limit}
      ), taken AS (
        UPDATE jobs SET ${takeSet(ctx, nodeId, at, leaseExpiresAt)}
        WHERE jobs.seq = ANY(ARRAY(SELECT seq FROM heads)) AND (jobs.status = 'pending') IS TRUE
        RETURNING jobs.seq, jobs.id, jobs.type, jobs.payload, jobs.attempt, jobs.priority, jobs.timeout_s, jobs.created_at, jobs.effective_priority, jobs.ready_at
      ), started AS (
        INSERT INTO job_attempts (job_id, attempt, node_id, started_at) SELECT id, attempt, ${nodeId}, ${at} FROM taken
      )
      SELECT ${TAKEN} FROM taken`,
  );
}

/** Limited types among the lanes, strict FIFO: the heads are read and locked, and the best `limit` chosen within each type's room. */
async function chooseWithinRoom(tx: Tx, lanes: number[], room: Map<string, number>, limit: number): Promise<number[]> {
  // Each lane's head in dispatch order, locked; rows another claim holds are skipped.
  const heads = await rowsOf(
    tx,
    sql<Head>`
      SELECT j.seq, j.effective_priority, j.type
      FROM unnest(${lanes}::int[]) AS l(lane)
      CROSS JOIN LATERAL (
        SELECT seq, effective_priority, type FROM jobs
        WHERE status = 'pending' AND lane = l.lane
        ORDER BY effective_priority DESC, seq
        LIMIT ${limit}
        FOR UPDATE SKIP LOCKED
      ) j`,
  );
  heads.sort(byDispatchOrder);
  const left = new Map(room);
  const chosen: number[] = [];
  for (const head of heads) {
    if (chosen.length >= limit) break;
    const free = left.get(head.type);
    if (free !== undefined) {
      if (free <= 0) continue;
      left.set(head.type, free - 1);
    }
    chosen.push(head.seq);
  }
  return chosen;
}

/** Whether one more job of a lane's type fits its limit (counted if so). */
function admitter(room: Map<string, number>, typeOf: Map<number, string>): (lane: number) => boolean {
  const left = new Map(room);
  return (lane) => {
    const type = typeOf.get(lane);
    const free = type === undefined ? undefined : left.get(type);
    if (free === undefined) return true;
    if (free <= 0) return false;
    left.set(type as string, free - 1);
    return true;
  };
}

/** Take the chosen jobs (locked by whoever chose them) and start their attempts. */
async function takeChosen(ctx: PgContext, tx: Tx, nodeId: string, chosen: number[], at: string, leaseExpiresAt: string): Promise<Taken[]> {
  if (chosen.length === 0) return [];
  const taken = await rowsOf(
    tx,
    sql<Taken>`
      UPDATE jobs SET ${takeSet(ctx, nodeId, at, leaseExpiresAt)}
      WHERE seq = ANY(${chosen}::bigint[]) AND status = 'pending'
      RETURNING ${TAKEN}`,
  );
  if (taken.length === 0) return [];
  await tx.db.executeQuery(
    sql`INSERT INTO job_attempts (job_id, attempt, node_id, started_at)
        SELECT job_id, attempt, ${nodeId}, ${at} FROM jsonb_to_recordset(${JSON.stringify(taken.map((row) => ({ job_id: row.id, attempt: row.attempt })))}::jsonb)
          AS a(job_id text, attempt integer)`.compile(tx.db),
  );
  return taken;
}

export async function claimJobs(ctx: PgContext, tx: Tx, params: { nodeId: string; max: number }): Promise<ClaimOutcome> {
  // The gates' lock is taken in this statement, so every statement after it reads the gates
  // as of a moment no change of them was in flight.
  const [node] = await rowsOf(tx, sql<NodeFacts>`${PREPARED}
      SELECT id, status, labels, types, capacity, (SELECT value FROM settings WHERE key = ${FAIR_SHARE_SETTING}) AS fair_share,
             pg_advisory_xact_lock_shared(${typeGatesLock(ctx.db.schema)}) IS NULL AS gates_locked
      FROM nodes WHERE id = ${params.nodeId} FOR UPDATE`);
  if (!node) return { ok: false, reason: "not_found" };
  if (node.status === "offline") return { ok: false, reason: "offline" };
  if (node.status === "draining") return NOTHING;
  const now = ctx.clock.now();
  const at = now.toISOString();
  // A claim is a sign of life: a node declared dead that asks for work is back.
  if (node.status === "dead") await reviveNode(tx, node.id, at);
  const covered = await coverage(tx, node);
  const limit = Math.min(params.max, node.capacity - covered.running);
  if (limit <= 0) return NOTHING;
  const { lanes, room, typeOf } = await gatedLanes(tx, covered.lanes);
  if (lanes.length === 0) return NOTHING;
  const leaseExpiresAt = new Date(now.getTime() + ctx.policy.leaseMs).toISOString();
  const taken =
    parseFairShareMode(node.fair_share) === "clients"
      ? await takeChosen(ctx, tx, node.id, await chooseFair(tx, lanes, limit, room.size === 0 ? undefined : admitter(room, typeOf)), at, leaseExpiresAt)
      : room.size === 0
        ? await takeHeads(ctx, tx, node.id, lanes, limit, at, leaseExpiresAt)
        : await takeChosen(ctx, tx, node.id, await chooseWithinRoom(tx, lanes, room, limit), at, leaseExpiresAt);
  if (taken.length === 0) return NOTHING;
  taken.sort(byDispatchOrder);
  const items = taken.map((row) => takenJobOf(row));
  const waitedMs = taken.map((row) => Math.max(0, now.getTime() - new Date(row.ready_at).getTime()));
  return { ok: true, items, waitedMs };
}
