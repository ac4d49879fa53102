// claim: hand ready jobs to a node, highest effective priority first, then FIFO (or, with
// fair share on, the client with the fewest running first: fair-share.ts), only those
// whose `requires` its labels cover, never past its free capacity.
import { sql } from "kysely";
import type { ClaimOutcome } from "../../types.js";
import type { StoreContext } from "../context.js";
import { limitParam, param, type Bindable, type Prepared } from "../database.js";
import { ATTEMPT_COLUMNS } from "./attempts.js";
import { nodeJson, type JobRow } from "../rows.js";
import { takenJobOf } from "../../wire.js";
import { reviveNode } from "../node-lifecycle.js";
import { chooseFair } from "../fair-share.js";

type Head = Pick<JobRow, "seq" | "effective_priority">;
type Taken = Pick<JobRow, "seq" | "id" | "type" | "attempt" | "priority" | "timeout_s" | "created_at" | "effective_priority" | "ready_at"> & {
  /** NULL where the stored text is not JSON (PAYLOAD_JSON). */
  payload: string | null;
};

/**
 * What both ways of taking jobs set on each: running on the node, a new lease, and the
 * time the stalled-job sweeper takes it back (now + 2 × timeout_s + the grace, as ISO text in
 * whole milliseconds, truncated as a JS Date does).
 */
const LEASE_SET = sql`status = 'running', node_id = ${param("nodeId")}, attempt = attempt + 1,
  started_at = ${param("at")}, updated_at = ${param("at")}, lease_expires_at = ${param("leaseExpiresAt")},
  stall_at = strftime('%Y-%m-%dT%H:%M:%fZ',
    CAST(${param("nowMs")} + 2 * timeout_s * 1000 + ${param("graceMs")} AS INTEGER) / 1000.0, 'unixepoch'),
  aging_at = NULL, progress = NULL, progress_message = NULL, lease_end_reason = NULL`;

/**
 * A taken job's payload as JSON text for its node: as stored, or NULL where that is not JSON
 * (takenJobOf hands it over as null, marked). json_valid reads text only up to a NUL, which
 * better-sqlite3 would then hand over whole.
 */
const PAYLOAD_JSON = sql.raw("CASE WHEN json_valid(jobs.payload) AND instr(jobs.payload, char(0)) = 0 THEN jobs.payload END");

interface LeaseParams {
  nodeId: string;
  at: string;
  leaseExpiresAt: string;
  nowMs: number;
  graceMs: number;
}

export interface ClaimStatements {
  node: Prepared<{ id: string; status: string; labels: string; types: string | null; capacity: number }, { nodeId: string }>;
  running: Prepared<{ n: number }, { nodeId: string }>;
  head: Prepared<Head, { lane: number; limit: number }>;
  /** `chosen`: a JSON array of seqs. */
  take: Prepared<Taken, LeaseParams & { chosen: string }>;
  /** The head of one lane, read and taken in one statement. */
  takeHead: Prepared<Taken, LeaseParams & { lane: number; limit: number }>;
  /** One job_attempts row per job taken. */
  startAttempts: (rows: readonly Bindable[][]) => void;
}

export function prepareClaim(ctx: StoreContext): ClaimStatements {
  const { db } = ctx;
  const k = db.kysely;
  return {
    node: db.prepare(k.selectFrom("nodes").select(["id", "status", "labels", "types", "capacity"]).where("id", "=", param("nodeId"))),
    running: db.prepare(
      k
        .selectFrom("jobs")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("node_id", "=", param("nodeId"))
        .where("status", "=", sql.lit("running")),
    ),
    // One range of the partial index jobs_dispatch per lane, read from the index alone
    // (it holds both columns).
    head: db.prepare(
      k
        .selectFrom("jobs")
        .select(["seq", "effective_priority"])
        .where("status", "=", sql.lit("pending"))
        .where("lane", "=", param("lane"))
        .orderBy("effective_priority", "desc")
        .orderBy("seq")
        .limit(limitParam("limit")),
    ),
    // All the chosen jobs in one statement (a statement per job cost twice as much per
    // job). NOT INDEXED: rows are found by seq, the primary key; without it SQLite
    // would rather walk every pending job through jobs_by_status.
    // The payload goes to the node as the text kept (TakenJob), so it must be JSON: text that
    // is not (a row edited by hand) goes as null rather than break the whole answer.
    take: db.prepareSql(sql<Taken>`
      UPDATE jobs NOT INDEXED
      SET ${LEASE_SET}
      FROM json_each(${param("chosen")}) AS chosen
      WHERE jobs.seq = chosen.value AND jobs.status = 'pending'
      RETURNING jobs.seq, jobs.id, jobs.type, ${PAYLOAD_JSON} AS payload, jobs.attempt, jobs.priority, jobs.timeout_s, jobs.created_at,
                jobs.effective_priority, jobs.ready_at`),
    // A node that covers one lane (one job type, no labels: the usual case) takes its
    // head in one statement: 15–25 % less time than the head read, the JSON list of
    // the chosen and the UPDATE from it.
    takeHead: db.prepareSql(sql<Taken>`
      UPDATE jobs
      SET ${LEASE_SET}
      WHERE seq IN (
        SELECT seq FROM jobs WHERE status = 'pending' AND lane = ${param("lane")}
        ORDER BY effective_priority DESC, seq LIMIT ${limitParam("limit")})
      RETURNING seq, id, type, ${PAYLOAD_JSON} AS payload, attempt, priority, timeout_s, created_at, effective_priority, ready_at`),
    startAttempts: db.rowInserter("job_attempts", ATTEMPT_COLUMNS),
  };
}

interface Room {
  left: Map<string, number>;
  typeOf: (lane: number) => string | undefined;
}

/** Whether one more job of the lane's type fits its limit (counted if so); lanes of unlimited types always. */
function admitted(room: Room, lane: number): boolean {
  const type = room.typeOf(lane);
  const left = type === undefined ? undefined : room.left.get(type);
  if (left === undefined) return true;
  if (left <= 0) return false;
  room.left.set(type as string, left - 1);
  return true;
}

function byDispatchOrder(a: Head, b: Head): number {
  return b.effective_priority - a.effective_priority || a.seq - b.seq;
}

/**
 * Several lanes (or a limited type's): the head of each, the best `limit` of them, then one
 * UPDATE of those. `room`: how many more jobs of each limited type may run, shared by its lanes.
 */
function takeChosen(
  statements: ClaimStatements,
  lanes: number[],
  limit: number,
  lease: LeaseParams,
  room?: Room,
): Taken[] {
  const candidates: (Head & { lane: number })[] = [];
  for (const lane of lanes) for (const head of statements.head.all({ lane, limit })) candidates.push({ ...head, lane });
  candidates.sort(byDispatchOrder);
  const chosen: Head[] = [];
  for (const head of candidates) {
    if (chosen.length >= limit) break;
    if (room && !admitted(room, head.lane)) continue;
    chosen.push(head);
  }
  if (chosen.length === 0) return [];
  return statements.take.all({ chosen: JSON.stringify(chosen.map((head) => head.seq)), ...lease });
}

/** Fair share between clients (API.md §5a): the fill of fair-share.ts, then one UPDATE of the chosen. */
function takeFair(ctx: StoreContext, statements: ClaimStatements, lanes: number[], limit: number, lease: LeaseParams, room?: Room): Taken[] {
  const chosen = chooseFair(ctx.db, lanes, limit, room ? (lane) => admitted(room, lane) : undefined);
  if (chosen.length === 0) return [];
  return statements.take.all({ chosen: JSON.stringify(chosen), ...lease });
}

/** A claim that took nothing, for whichever reason (shared: nobody changes an answer). */
const NOTHING: ClaimOutcome = Object.freeze({ ok: true, items: [] });

/**
 * `emptied`: lanes known to hold no pending job in this transaction (a claim that took
 * fewer than it could emptied every lane it covers), for the claims of many nodes in a
 * row. A node whose lanes are all among them takes nothing without looking; once every
 * known lane is among them, the node is not even read (so a node that left hears of it
 * at its next claim). Lanes this claim empties are added.
 */
export function claimJobs(
  ctx: StoreContext,
  statements: ClaimStatements,
  params: { nodeId: string; max: number },
  emptied?: Set<number>,
): ClaimOutcome {
  if (emptied && emptied.size >= ctx.lanes.count) return NOTHING;
  return ctx.db.transaction(() => {
    const node = statements.node.get({ nodeId: params.nodeId });
    if (!node) return { ok: false, reason: "not_found" };
    if (node.status === "offline") return { ok: false, reason: "offline" };
    if (node.status === "draining") return NOTHING;
    const now = ctx.clock.now();
    const at = now.toISOString();
    // A claim is a sign of life: a node declared dead that asks for work is back.
    if (node.status === "dead") reviveNode(ctx, node.id, at);
    const covered = ctx.lanes.coveredBy(nodeJson<string[]>(node.labels, []), nodeJson<string[] | null>(node.types, null));
    if (emptied && covered.every((lane) => emptied.has(lane))) return NOTHING;
    const running = statements.running.get({ nodeId: node.id })?.n ?? 0;
    const limit = Math.min(params.max, node.capacity - running);
    if (limit <= 0) return NOTHING;
    const lease: LeaseParams = {
      nodeId: node.id,
      at,
      leaseExpiresAt: new Date(now.getTime() + ctx.policy.leaseMs).toISOString(),
      nowMs: now.getTime(),
      graceMs: ctx.policy.stallGraceMs,
    };
    // Paused types and types at their limit hold back nothing else: their lanes are left out.
    const gate = ctx.types.active ? ctx.types.gate(covered, ctx.lanes) : undefined;
    const lanes = gate ? gate.lanes : covered;
    if (lanes.length === 0) return NOTHING;
    const capped = gate !== undefined && gate.room.size > 0;
    const room = capped ? { left: new Map(gate.room), typeOf: (lane: number) => ctx.lanes.typeOf(lane) } : undefined;
    const taken = ctx.fair.on
      ? takeFair(ctx, statements, lanes, limit, lease, room)
      : lanes.length === 1 && !capped
        ? statements.takeHead.all({ lane: lanes[0] ?? 0, limit, ...lease })
        : takeChosen(statements, lanes, limit, lease, room);
    // Fewer than it could take, with no type's limit in the way: each lane it took from gave all it had.
    if (emptied && !capped && taken.length < limit) for (const lane of lanes) emptied.add(lane);
    if (taken.length === 0) return NOTHING;
    // RETURNING gives no order: put them back in dispatch order.
    taken.sort(byDispatchOrder);
    const items = taken.map((row) => takenJobOf(row));
    const waitedMs = taken.map((row) => Math.max(0, now.getTime() - new Date(row.ready_at).getTime()));
    statements.startAttempts(items.map((item) => [item.id, item.attempt, node.id, at]));
    return { ok: true, items, waitedMs };
  });
}
