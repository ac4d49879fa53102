// Nodes on PostgreSQL: register, heartbeat (leases and the cancel list), leave, drain and
// resume, and the dead-node sweep. Several masters may act on one node at once: every
// verb locks the rows it changes (node first, then its jobs) and guards each write by the
// state it read under that lock.
import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import { decodeCursor, pageOf } from "../pages.js";
import type {
  ActorParams,
  CancelNotice,
  DeadNode,
  HeartbeatJob,
  HeartbeatOutcome,
  ListNodesParams,
  Node,
  NodeActionOutcome,
  NodeStatus,
  NodeStore,
  Page,
  RegisterNodeParams,
} from "../types.js";
import { changed, rowsOf, writeAudit, type AuditEvent, type PgContext } from "./context.js";
import { translatePgError, type Executor, type Tx } from "./database.js";
import { ENDING_LEASE_SELECT, endLeases, reviveNode, type EndingLease } from "./jobs/lifecycle.js";
import { toNode, type JobRow, type NodeRow } from "./rows.js";

/** job.progress audit rows: at most one a minute per job (API.md §7). */
const PROGRESS_AUDIT_INTERVAL_MS = 60_000;

/** A dead node's running jobs taken back per transaction (a node may run up to 10,000). */
export const DEAD_NODE_JOB_BATCH = 1000;

/** Nodes with how many jobs each runs now (shared by the node reads and GET /jobs/:id/why). */
export const NODE_SELECT = sql`SELECT n.*, (SELECT count(*) FROM jobs j WHERE j.node_id = n.id AND j.status = 'running') AS running FROM nodes n`;

type Lease = Pick<
  JobRow,
  "seq" | "id" | "status" | "node_id" | "attempt" | "cancel_requested" | "lease_end_reason" | "lease_expires_at" | "progress" | "progress_message" | "progress_logged_at"
>;

const LEASE_SELECT = sql.raw("seq, id, status, node_id, attempt, cancel_requested, lease_end_reason, lease_expires_at, progress, progress_message, progress_logged_at");

type NodeState = Pick<NodeRow, "id" | "status" | "last_heartbeat">;

async function loadNode(db: Executor, id: string): Promise<NodeRow | undefined> {
  const { rows } = await sql<NodeRow>`${NODE_SELECT} WHERE n.id = ${id}`.execute(db);
  return rows[0];
}

/** Why a job the node lists is no longer its to run. */
function cancelReason(lease: Lease, listedAttempt: number): CancelNotice["reason"] {
  if (lease.status === "canceled" || lease.cancel_requested) return "canceled";
  if (lease.attempt === listedAttempt && lease.lease_end_reason === "stalled") return "stalled";
  return "reassigned";
}

/** A heartbeat that would write something: answered by a transaction that locks, not by plain reads. */
const MUST_WRITE = Symbol("must write");

export class PostgresNodeStore implements NodeStore {
  constructor(private readonly ctx: PgContext) {}

  async register(params: RegisterNodeParams): Promise<{ node: Node; created: boolean }> {
    return this.ctx.db.transaction(async (tx) => {
      const at = this.ctx.clock.now().toISOString();
      const labels = JSON.stringify([...new Set(params.labels)].sort());
      const types = params.types === null ? null : JSON.stringify([...new Set(params.types)].sort());
      const hardware = JSON.stringify(params.hardware);
      const find = () =>
        rowsOf(tx, sql<{ id: string; status: string }>`SELECT id, status FROM nodes WHERE client_id = ${params.clientId} AND name = ${params.name} FOR UPDATE`);
      let [existing] = await find();
      let id = existing?.id;
      if (!existing) {
        const [made] = await rowsOf(
          tx,
          sql<{ id: string }>`INSERT INTO nodes (id, name, client_id, status, labels, types, capacity, hardware, version, registered_at, last_heartbeat, updated_at)
            VALUES (${randomUUID()}, ${params.name}, ${params.clientId}, 'online', ${labels}::jsonb, ${types}::jsonb, ${params.capacity},
                    ${hardware}::jsonb, ${params.version}, ${at}, ${at}, ${at})
            ON CONFLICT (client_id, name) DO NOTHING RETURNING id`,
        );
        id = made?.id;
        // Another master registered the same node a moment ago: this is a registration again.
        if (!made) [existing] = await find();
      }
      if (existing) {
        id = existing.id;
        // Its claims waiting since before may now take jobs they could not (types, labels, capacity, back online).
        tx.mark({ claimable: true });
        await changed(
          tx,
          sql`UPDATE nodes SET labels = ${labels}::jsonb, types = ${types}::jsonb, capacity = ${params.capacity}, version = ${params.version},
                hardware = ${hardware}::jsonb, status = 'online', last_heartbeat = ${at}, updated_at = ${at}
              WHERE id = ${existing.id}`,
        );
      }
      if (id === undefined) throw new Error(`node ${params.name} was neither stored nor found`);
      await writeAudit(
        tx.db,
        [
          {
            event_type: "node.registered",
            entity_type: "node",
            entity_id: id,
            client_id: params.clientId,
            details: { name: params.name, labels: params.labels, capacity: params.capacity, types: params.types, from: existing?.status ?? null },
          },
        ],
        at,
      );
      return { node: toNode((await loadNode(tx.db, id)) as NodeRow), created: !existing };
    });
  }

  async get(id: string): Promise<Node | undefined> {
    const row = await this.ctx.db.one(sql<NodeRow>`${NODE_SELECT} WHERE n.id = ${id}`);
    return row ? toNode(row) : undefined;
  }

  /** Newest first. */
  async list(params: ListNodesParams): Promise<Page<Node>> {
    const before = decodeCursor(params.cursor);
    const where = [
      before === undefined ? undefined : sql`n.seq < ${before}`,
      params.status === undefined ? undefined : sql`n.status = ${params.status}`,
      params.clientId === undefined ? undefined : sql`n.client_id = ${params.clientId}`,
    ].filter((clause) => clause !== undefined);
    const rows = await this.ctx.db.run(sql<NodeRow & { seq: number }>`
      ${NODE_SELECT} ${where.length > 0 ? sql`WHERE ${sql.join(where, sql` AND `)}` : sql``}
      ORDER BY n.seq DESC LIMIT ${params.limit + 1}`);
    return pageOf(rows, params.limit, (row) => row.seq, toNode);
  }

  async heartbeat(params: { nodeId: string; running: HeartbeatJob[] }): Promise<HeartbeatOutcome> {
    // Most heartbeats change nothing (last_heartbeat recent, no lease due for renewal, no
    // progress moved): those are answered from plain reads. The others run again in a
    // transaction that locks the node and its running jobs, and decides on what it locked.
    let read: HeartbeatOutcome | typeof MUST_WRITE;
    try {
      read = await this.beat(this.ctx.db.kysely, params, undefined);
    } catch (error) {
      throw translatePgError(error);
    }
    if (read !== MUST_WRITE) return read;
    return this.ctx.db.transaction(async (tx) => (await this.beat(tx.db, params, tx)) as HeartbeatOutcome);
  }

  /** The heartbeat; without `tx`, MUST_WRITE at the first thing that would be written. */
  private async beat(db: Executor, params: { nodeId: string; running: HeartbeatJob[] }, tx: Tx | undefined): Promise<HeartbeatOutcome | typeof MUST_WRITE> {
    const { policy } = this.ctx;
    const lock = tx ? sql` FOR UPDATE` : sql``;
    const [node] = (await sql<NodeState>`SELECT id, status, last_heartbeat FROM nodes WHERE id = ${params.nodeId}${lock}`.execute(db)).rows;
    if (!node) return { ok: false, reason: "not_found" };
    if (node.status === "offline") return { ok: false, reason: "offline" };
    const now = this.ctx.clock.now();
    const at = now.toISOString();
    const stale = node.last_heartbeat < new Date(now.getTime() - policy.heartbeatWriteMs).toISOString();
    if (node.status === "dead" || stale) {
      if (!tx) return MUST_WRITE;
      if (node.status === "dead") await reviveNode(tx, node.id, at);
      else await changed(tx, sql`UPDATE nodes SET last_heartbeat = ${at} WHERE id = ${node.id} AND status = ${node.status}`);
    }
    const leaseExpiresAt = new Date(now.getTime() + policy.leaseMs).toISOString();
    // Renew only leases past half their life: fewer writes, same guarantee.
    const renewBefore = new Date(now.getTime() + policy.leaseMs / 2).toISOString();
    // The node's running jobs first (most of what it lists), then the rest it lists by id.
    const running = (
      await sql<Lease>`SELECT ${LEASE_SELECT} FROM jobs WHERE node_id = ${node.id} AND status = 'running' ORDER BY seq${lock}`.execute(db)
    ).rows;
    const leases = new Map(running.map((lease) => [lease.id, lease]));
    const elsewhere = [...new Set(params.running.map((job) => job.jobId).filter((id) => !leases.has(id)))];
    if (elsewhere.length > 0) {
      for (const lease of (await sql<Lease>`SELECT ${LEASE_SELECT} FROM jobs WHERE id = ANY(${elsewhere}::text[])`.execute(db)).rows) leases.set(lease.id, lease);
    }
    const handedHere = await this.handedOutHere(db, node.id, params.running.filter((job) => {
      const lease = leases.get(job.jobId);
      return lease !== undefined && !(lease.status === "running" && lease.node_id === node.id && lease.attempt === job.attempt);
    }));
    const cancel: CancelNotice[] = [];
    const listed = new Set<string>();
    const renew: number[] = [];
    const audit: AuditEvent[] = [];
    for (const job of params.running) {
      if (listed.has(job.jobId)) continue; // listed twice: counts once
      listed.add(job.jobId);
      const lease = leases.get(job.jobId);
      const ours = lease !== undefined && lease.status === "running" && lease.node_id === node.id && lease.attempt === job.attempt;
      // A job this node was never handed (under that attempt) is unknown to it, whether it exists or not.
      if (!lease || (!ours && !handedHere.has(`${job.jobId}\u0000${job.attempt}`))) {
        cancel.push({ job_id: job.jobId, attempt: job.attempt, reason: "unknown" });
        continue;
      }
      if (!ours || lease.cancel_requested) {
        cancel.push({ job_id: job.jobId, attempt: job.attempt, reason: cancelReason(lease, job.attempt) });
        if (!ours) continue;
      }
      if (lease.lease_expires_at === null || lease.lease_expires_at < renewBefore) {
        if (!tx) return MUST_WRITE;
        renew.push(lease.seq);
      }
      const progress = job.progress ?? lease.progress;
      const message = job.message ?? lease.progress_message;
      if (progress !== lease.progress || message !== lease.progress_message) {
        if (!tx) return MUST_WRITE;
        const logDue = lease.progress_logged_at === null || now.getTime() - new Date(lease.progress_logged_at).getTime() >= PROGRESS_AUDIT_INTERVAL_MS;
        const n = await changed(
          tx,
          sql`UPDATE jobs SET progress = ${progress}, progress_message = ${message},
                progress_logged_at = ${logDue ? at : lease.progress_logged_at}, updated_at = ${at}
              WHERE seq = ${lease.seq} AND status = 'running' AND node_id = ${node.id} AND attempt = ${lease.attempt}`,
        );
        if (n > 0 && logDue) {
          audit.push({ event_type: "job.progress", entity_type: "job", entity_id: lease.id, client_id: null, details: { progress, message, attempt: lease.attempt } });
        }
      }
    }
    if (tx) {
      if (renew.length > 0) {
        await changed(
          tx,
          sql`UPDATE jobs SET lease_expires_at = ${leaseExpiresAt} WHERE seq = ANY(${renew}::bigint[]) AND status = 'running' AND node_id = ${node.id}`,
        );
      }
      await writeAudit(tx.db, audit, at);
    }
    // A cancel asked for a job the node did not list yet (say, claimed a moment ago).
    for (const job of running) {
      if (job.cancel_requested && !listed.has(job.id)) cancel.push({ job_id: job.id, attempt: job.attempt, reason: "canceled" });
    }
    const status: NodeStatus = node.status === "draining" ? "draining" : "online";
    return { ok: true, status, cancel };
  }

  /** Which of `jobs` (by id and attempt) were handed to this node at that attempt, as "id\0attempt". */
  private async handedOutHere(db: Executor, nodeId: string, jobs: readonly HeartbeatJob[]): Promise<Set<string>> {
    if (jobs.length === 0) return new Set();
    const { rows } = await sql<{ job_id: string; attempt: number }>`
      SELECT a.job_id, a.attempt FROM job_attempts a
      JOIN unnest(${jobs.map((job) => job.jobId)}::text[], ${jobs.map((job) => job.attempt)}::int[]) AS w(job_id, attempt)
        ON a.job_id = w.job_id AND a.attempt = w.attempt
      WHERE a.node_id = ${nodeId}`.execute(db);
    return new Set(rows.map((row) => `${row.job_id}\u0000${row.attempt}`));
  }

  async deregister(params: ActorParams): Promise<NodeActionOutcome> {
    return this.transition(params, ["online", "draining", "dead", "offline"], "offline", "node.offline");
  }

  async drain(params: ActorParams): Promise<NodeActionOutcome> {
    return this.transition(params, ["online", "draining"], "draining", "node.draining");
  }

  async resume(params: ActorParams): Promise<NodeActionOutcome> {
    return this.transition(params, ["online", "draining"], "online", "node.resumed");
  }

  /** Move a node from one of `from` to `to`; going offline hands its jobs back. */
  private async transition(params: ActorParams, from: NodeStatus[], to: NodeStatus, event: string): Promise<NodeActionOutcome> {
    return this.ctx.db.transaction(async (tx) => {
      const [node] = await rowsOf(tx, sql<{ id: string; status: NodeStatus }>`SELECT id, status FROM nodes WHERE id = ${params.id} FOR UPDATE`);
      if (!node) return { ok: false, reason: "not_found" };
      if (!from.includes(node.status)) return { ok: false, reason: "conflict", status: node.status };
      let requeued = 0;
      if (node.status !== to) {
        const at = this.ctx.clock.now().toISOString();
        await changed(tx, sql`UPDATE nodes SET status = ${to}, updated_at = ${at} WHERE id = ${node.id} AND status = ${node.status}`);
        await writeAudit(tx.db, [{ event_type: event, entity_type: "node", entity_id: node.id, client_id: params.actor, details: { from: node.status } }], at);
        if (to === "offline") {
          const rescued = await endLeases(this.ctx, tx, await this.runningJobs(tx, node.id), "node_left", "job.reassigned", params.actor);
          requeued = rescued.filter((job) => job.outcome === "requeued").length;
        }
        if (to === "online") tx.mark({ claimable: true }); // its waiting claims may now get work
      }
      return { ok: true, node: toNode((await loadNode(tx.db, node.id)) as NodeRow), requeued };
    });
  }

  /** A node's running jobs, locked, for endLeases. */
  private async runningJobs(tx: Tx, nodeId: string): Promise<EndingLease[]> {
    return rowsOf(tx, sql<EndingLease>`SELECT ${ENDING_LEASE_SELECT} FROM jobs WHERE node_id = ${nodeId} AND status = 'running' ORDER BY seq FOR UPDATE`);
  }

  /**
   * Silent nodes become dead in one transaction; then their running jobs are re-queued (or
   * failed, or canceled) in later transactions of at most DEAD_NODE_JOB_BATCH jobs, each job
   * guarded by "still running on that node under that attempt", so that no transaction holds
   * many job rows. A sweep cut short between batches (the master stopped) leaves dead nodes
   * with running jobs: the next one finishes them first. A node that comes back before its
   * turn (a heartbeat revives it) keeps the jobs not yet taken back, and a result of a job not
   * yet taken back is accepted as its lease's (the job ends once, and no batch takes it back).
   */
  async markDead(params: { cutoff: Date; limit: number }): Promise<DeadNode[]> {
    const { dead, earlier } = await this.ctx.db.transaction((tx) => this.declareDead(tx, params));
    if (dead.length === 0) return [];
    const ids = dead.map((node) => node.nodeId);
    const byNode = new Map(dead.map((node) => [node.nodeId, node]));
    for (;;) {
      const { taken, rescued } = await this.ctx.db.transaction(async (tx) => {
        // The nodes still dead, locked (in id order, as every sweep locks them): a heartbeat
        // that revives one waits for this batch, or went first and this batch leaves its jobs.
        // Read in the jobs' statement, a node's status came from that statement's snapshot, so
        // a heartbeat that committed while it waited on a job's lock had told its node to keep
        // a job this batch then took back.
        const stillDead = (
          await rowsOf(tx, sql<{ id: string }>`SELECT id FROM nodes WHERE id = ANY(${ids}::text[]) AND status = 'dead' ORDER BY id FOR UPDATE`)
        ).map((node) => node.id);
        if (stillDead.length === 0) return { taken: 0, rescued: [] };
        // Not ORDER BY seq: that sorts every running job of these nodes for each batch; without
        // it the scan of jobs_running stops at the batch. SKIP LOCKED never waits, so the order the
        // rows are locked in cannot deadlock.
        const running = await rowsOf(
          tx,
          sql<EndingLease>`SELECT ${ENDING_LEASE_SELECT} FROM jobs
            WHERE node_id = ANY(${stillDead}::text[]) AND status = 'running'
            LIMIT ${DEAD_NODE_JOB_BATCH} FOR UPDATE SKIP LOCKED`,
        );
        running.sort((a, b) => Number(a.seq) - Number(b.seq));
        return { taken: running.length, rescued: await endLeases(this.ctx, tx, running, "node_dead", "job.reassigned", null) };
      });
      for (const job of rescued) byNode.get(job.nodeId ?? "")?.jobs.push(job);
      // A node declared dead earlier is told only if this sweep took jobs of it back (another
      // master's sweep may be taking them at the same time).
      if (taken < DEAD_NODE_JOB_BATCH) {
        return dead.filter((node) => !earlier.has(node.nodeId) || node.jobs.length > 0).map((node) => (earlier.has(node.nodeId) ? { ...node, earlier: true } : node));
      }
    }
  }

  /**
   * Up to `limit` nodes: first those declared dead earlier that still hold running jobs (a
   * sweep cut short), then silent ones, made dead now with a node.dead audit row each.
   */
  private async declareDead(tx: Tx, params: { cutoff: Date; limit: number }): Promise<{ dead: DeadNode[]; earlier: Set<string> }> {
    const at = this.ctx.clock.now().toISOString();
    type Silent = { id: string; name: string; last_heartbeat: string };
    // Found from the nodes of the running jobs (a partial index of the running jobs, then each
    // node by its key), not from the dead nodes: gaffer never deletes a node, so dead ones pile
    // up with history, while the running jobs are bounded by the nodes' capacity. Left to
    // itself the planner hashes every dead node against them.
    const unfinished = await rowsOf(
      tx,
      sql<Silent>`WITH holders AS MATERIALIZED (SELECT DISTINCT node_id FROM jobs WHERE status = 'running')
        SELECT n.id, n.name, n.last_heartbeat FROM holders h
        CROSS JOIN LATERAL (SELECT id, name, last_heartbeat FROM nodes WHERE nodes.id = h.node_id AND nodes.status = 'dead' OFFSET 0) n
        ORDER BY n.last_heartbeat LIMIT ${params.limit}`,
    );
    const room = params.limit - unfinished.length;
    // last_heartbeat lags a node's latest heartbeat by up to heartbeatWriteMs. A node
    // locked now is being written by a heartbeat (or another sweep): it is skipped.
    const before = new Date(params.cutoff.getTime() - this.ctx.policy.heartbeatWriteMs).toISOString();
    const silent =
      room <= 0
        ? []
        : await rowsOf(
            tx,
            sql<Silent & { status: string }>`
              SELECT id, name, status, last_heartbeat FROM nodes
              WHERE status IN ('online', 'draining') AND last_heartbeat < ${before}
              ORDER BY last_heartbeat LIMIT ${room} FOR UPDATE SKIP LOCKED`,
          );
    const made = new Set(
      silent.length === 0
        ? []
        : (
            await rowsOf(
              tx,
              sql<{ id: string }>`UPDATE nodes SET status = 'dead', updated_at = ${at}
                WHERE id = ANY(${silent.map((node) => node.id)}::text[]) AND status IN ('online', 'draining') RETURNING id`,
            )
          ).map((row) => row.id),
    );
    const newlyDead = silent.filter((node) => made.has(node.id));
    if (newlyDead.length > 0) {
      const counts = await rowsOf(
        tx,
        sql<{ node_id: string; jobs: number }>`SELECT node_id, count(*)::integer AS jobs FROM jobs
          WHERE node_id = ANY(${newlyDead.map((node) => node.id)}::text[]) AND status = 'running' GROUP BY node_id`,
      );
      const running = new Map(counts.map((row) => [row.node_id, row.jobs]));
      await writeAudit(
        tx.db,
        newlyDead.map((node) => ({
          event_type: "node.dead",
          entity_type: "node",
          entity_id: node.id,
          client_id: null,
          details: { last_heartbeat: node.last_heartbeat, jobs: running.get(node.id) ?? 0 },
        })),
        at,
      );
    }
    return {
      dead: [...unfinished, ...newlyDead].map((node) => ({ nodeId: node.id, name: node.name, lastHeartbeat: node.last_heartbeat, jobs: [] })),
      earlier: new Set(unfinished.map((node) => node.id)),
    };
  }
}
