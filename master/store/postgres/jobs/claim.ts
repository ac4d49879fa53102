// claim on PostgreSQL: hand ready jobs to a node, highest effective priority first, then
// FIFO, from the lanes its labels and types cover, never past its free capacity. Each lane's
// head is read and locked with FOR UPDATE SKIP LOCKED, so claims on several masters at once
// never take one job twice and never wait on each other's rows. The node's row is locked
// first (two claims of one node cannot both fill its free slots), and the rows of the
// limited types it could take (so `max_running` holds across masters).
import { sql } from "kysely";
import type { ClaimOutcome } from "../../types.js";
import { rowsOf, type PgContext } from "../context.js";
import type { Tx } from "../database.js";
import { toClaimedJob, type JobRow } from "../rows.js";
import { reviveNode } from "./lifecycle.js";
import { FAIR_SHARE_SETTING } from "../../../queue/fair-share.js";
import { chooseFair, parseFairShareMode } from "../fair-share.js";

type Taken = Pick<JobRow, "seq" | "id" | "type" | "payload" | "attempt" | "priority" | "timeout_s" | "created_at" | "effective_priority" | "ready_at">;
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

/** The lanes a node covers, minus paused types'; with the room left for each limited type it covers. */
async function gatedLanes(tx: Tx, node: NodeFacts): Promise<{ lanes: number[]; room: Map<string, number>; typeOf: Map<number, string> }> {
  const lanes = await rowsOf(
    tx,
    sql<{ id: number; type: string }>`
      SELECT id, type FROM lanes
      WHERE labels <@ ${JSON.stringify(node.labels)}::jsonb
        AND (${node.types === null ? null : JSON.stringify(node.types)}::jsonb IS NULL OR ${JSON.stringify(node.types ?? [])}::jsonb ? type)`,
  );
  if (lanes.length === 0) return { lanes: [], room: new Map(), typeOf: new Map() };
  const types = [...new Set(lanes.map((lane) => lane.type))];
  // Paused types are only read. Limited types' rows are locked in a fixed order (no deadlock
  // between masters) and their running jobs counted under the lock, in a statement after it
  // (one statement would count from before another master's commit): the limit holds
  // cluster-wide, and only claims that could take such a type wait for each other.
  const read = await rowsOf(
    tx,
    sql<{ type: string; max_running: number | null; paused: boolean }>`
      SELECT type, max_running, paused FROM job_types WHERE type = ANY(${types}::text[]) AND (paused OR max_running IS NOT NULL)`,
  );
  const limitedTypes = read.filter((gate) => !gate.paused && gate.max_running !== null).map((gate) => gate.type);
  const locked =
    limitedTypes.length === 0
      ? []
      : await rowsOf(
          tx,
          sql<{ type: string; max_running: number | null; paused: boolean }>`
            SELECT type, max_running, paused FROM job_types WHERE type = ANY(${limitedTypes}::text[]) ORDER BY type FOR UPDATE`,
        );
  const byType = new Map([...read, ...locked].map((gate) => [gate.type, gate]));
  const gates = [...byType.values()];
  const paused = new Set(gates.filter((gate) => gate.paused).map((gate) => gate.type));
  const limited = gates.filter((gate) => !gate.paused && gate.max_running !== null);
  const room = new Map<string, number>();
  if (limited.length > 0) {
    const running = await rowsOf(
      tx,
      sql<{ type: string; n: number }>`
        SELECT type, count(*) AS n FROM jobs WHERE status = 'running' AND type = ANY(${limited.map((gate) => gate.type)}::text[]) GROUP BY type`,
    );
    const counts = new Map(running.map((row) => [row.type, row.n]));
    for (const gate of limited) room.set(gate.type, Math.max(0, (gate.max_running ?? 0) - (counts.get(gate.type) ?? 0)));
  }
  const open = lanes.filter((lane) => !paused.has(lane.type) && room.get(lane.type) !== 0);
  return { lanes: open.map((lane) => lane.id), room, typeOf: new Map(open.map((lane) => [lane.id, lane.type])) };
}

/** Strict priority, then FIFO (API.md §2): each lane's head, the best `limit` of them, locked. */
async function chooseFifo(tx: Tx, lanes: number[], limit: number, room: Map<string, number>): Promise<number[]> {
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

export async function claimJobs(ctx: PgContext, tx: Tx, params: { nodeId: string; max: number }): Promise<ClaimOutcome> {
  const [node] = await rowsOf(tx, sql<NodeFacts>`
      SELECT id, status, labels, types, capacity, (SELECT value FROM settings WHERE key = ${FAIR_SHARE_SETTING}) AS fair_share
      FROM nodes WHERE id = ${params.nodeId} FOR UPDATE`);
  if (!node) return { ok: false, reason: "not_found" };
  if (node.status === "offline") return { ok: false, reason: "offline" };
  if (node.status === "draining") return NOTHING;
  const now = ctx.clock.now();
  const at = now.toISOString();
  // A claim is a sign of life: a node declared dead that asks for work is back.
  if (node.status === "dead") await reviveNode(tx, node.id, at);
  const [running] = await rowsOf(tx, sql<{ n: number }>`SELECT count(*) AS n FROM jobs WHERE node_id = ${node.id} AND status = 'running'`);
  const limit = Math.min(params.max, node.capacity - (running?.n ?? 0));
  if (limit <= 0) return NOTHING;
  const { lanes, room, typeOf } = await gatedLanes(tx, node);
  if (lanes.length === 0) return NOTHING;
  const chosen =
    parseFairShareMode(node.fair_share) === "clients"
      ? await chooseFair(tx, lanes, limit, room.size === 0 ? undefined : admitter(room, typeOf))
      : await chooseFifo(tx, lanes, limit, room);
  if (chosen.length === 0) return NOTHING;
  const leaseExpiresAt = new Date(now.getTime() + ctx.policy.leaseMs).toISOString();
  const taken = await rowsOf(
    tx,
    sql<Taken>`
      UPDATE jobs SET status = 'running', node_id = ${node.id}, attempt = attempt + 1, started_at = ${at}, updated_at = ${at},
        lease_expires_at = ${leaseExpiresAt},
        stall_at = ${at}::timestamptz + make_interval(secs => 2 * timeout_s + ${ctx.policy.stallGraceMs / 1000}),
        aging_at = NULL, progress = NULL, progress_message = NULL, lease_end_reason = NULL
      WHERE seq = ANY(${chosen}::bigint[]) AND status = 'pending'
      RETURNING seq, id, type, payload, attempt, priority, timeout_s, created_at, effective_priority, ready_at`,
  );
  if (taken.length === 0) return NOTHING;
  taken.sort(byDispatchOrder);
  await tx.db.executeQuery(
    sql`INSERT INTO job_attempts (job_id, attempt, node_id, started_at)
        SELECT job_id, attempt, ${node.id}, ${at} FROM jsonb_to_recordset(${JSON.stringify(taken.map((row) => ({ job_id: row.id, attempt: row.attempt })))}::jsonb)
          AS a(job_id text, attempt integer)`.compile(tx.db),
  );
  const items = taken.map((row) => toClaimedJob(row));
  const waitedMs = taken.map((row) => Math.max(0, now.getTime() - new Date(row.ready_at).getTime()));
  return { ok: true, items, waitedMs };
}
