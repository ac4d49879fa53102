// Nodes: register, heartbeat (leases and the cancel list), leave, drain and resume,
// and the dead-node sweep.
import { randomUUID } from "node:crypto";
import { sql } from "kysely";
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
import type { StoreContext } from "./context.js";
import { inJsonArray, param, type Prepared } from "./database.js";
import { ENDING_LEASE_COLUMNS, endLeases, type EndingLease } from "./jobs/lifecycle.js";
import { reviveNode } from "./node-lifecycle.js";
import { decodeCursor, pageOf, toNode, type JobRow, type NodeRow } from "./rows.js";
import { handOut } from "./jobs/attempts.js";

/** job.progress audit rows: at most one a minute per job (API.md §7). */
const PROGRESS_AUDIT_INTERVAL_MS = 60_000;

type Lease = Pick<
  JobRow,
  | "seq" | "id" | "status" | "node_id" | "attempt" | "cancel_requested" | "lease_end_reason"
  | "lease_expires_at" | "progress" | "progress_message" | "progress_logged_at"
>;

interface HeartbeatStatements {
  node: Prepared<{ id: string; status: string; last_heartbeat: string }, { nodeId: string }>;
  touch: Prepared<unknown, { nodeId: string; at: string }>;
  /** `ids`: a JSON array of job ids. */
  leases: Prepared<Lease, { ids: string }>;
  /** `seqs`: a JSON array of seq. */
  renew: Prepared<unknown, { seqs: string; leaseExpiresAt: string }>;
  progress: Prepared<unknown, { seq: number; progress: number | null; message: string | null; loggedAt: string | null; at: string }>;
  /** The node's running jobs: the leases of what it lists, and cancels it has not heard of. */
  running: Prepared<Lease, { nodeId: string }>;
}

const LEASE_COLUMNS = [
  "seq", "id", "status", "node_id", "attempt", "cancel_requested", "lease_end_reason",
  "lease_expires_at", "progress", "progress_message", "progress_logged_at",
] as const satisfies readonly (keyof Lease)[];

/** Nodes with how many jobs each runs now (shared by the node reads and GET /jobs/:id/why). */
export function selectNodes(ctx: StoreContext) {
  return ctx.db.kysely
    .selectFrom("nodes")
    .selectAll("nodes")
    .select((eb) =>
      eb
        .selectFrom("jobs")
        .select(eb.fn.countAll<number>().as("n"))
        .whereRef("jobs.node_id", "=", "nodes.id")
        .where("jobs.status", "=", sql.lit("running"))
        .as("running"),
    );
}

function prepareHeartbeat(ctx: StoreContext): HeartbeatStatements {
  const { db } = ctx;
  const k = db.kysely;
  return {
    node: db.prepare(k.selectFrom("nodes").select(["id", "status", "last_heartbeat"]).where("id", "=", param("nodeId"))),
    touch: db.prepare(k.updateTable("nodes").set({ last_heartbeat: param("at") }).where("id", "=", param("nodeId"))),
    // The listed jobs that are not (or no longer) the node's running ones, in one read;
    // every renewal in one write. NOT INDEXED: by seq (see claim).
    leases: db.prepare(k.selectFrom("jobs").select(LEASE_COLUMNS).where("id", "in", inJsonArray<string>("ids"))),
    renew: db.prepareSql(sql`
      UPDATE jobs NOT INDEXED SET lease_expires_at = ${param("leaseExpiresAt")}
      WHERE seq IN ${inJsonArray("seqs")} AND status = 'running'`),
    progress: db.prepare(
      k
        .updateTable("jobs")
        .set({
          progress: param("progress"),
          progress_message: param("message"),
          progress_logged_at: param("loggedAt"),
          updated_at: param("at"),
        })
        .where("seq", "=", param("seq")),
    ),
    // One range of jobs_running instead of a lookup by id for each listed job (a descent of
    // the id index and one of the table each).
    running: db.prepare(
      k.selectFrom("jobs").select(LEASE_COLUMNS).where("node_id", "=", param("nodeId")).where("status", "=", sql.lit("running")),
    ),
  };
}

/** A heartbeat that would write something: answered by a write transaction, not a read. */
const MUST_WRITE = Symbol("must write");

/** Why a job the node lists is no longer its to run. */
function cancelReason(lease: Lease, listedAttempt: number): CancelNotice["reason"] {
  if (lease.status === "canceled" || lease.cancel_requested === 1) return "canceled";
  if (lease.attempt === listedAttempt && lease.lease_end_reason === "stalled") return "stalled";
  return "reassigned";
}

export class SqliteNodeStore implements NodeStore {
  private readonly hb: HeartbeatStatements;

  constructor(private readonly ctx: StoreContext) {
    this.hb = prepareHeartbeat(ctx);
  }

  private load(id: string): NodeRow | undefined {
    return this.ctx.db.get(selectNodes(this.ctx).where("nodes.id", "=", id));
  }

  async register(params: RegisterNodeParams): Promise<{ node: Node; created: boolean }> {
    const { db, audit } = this.ctx;
    return db.transaction(() => {
      const at = this.ctx.clock.now().toISOString();
      const existing = db.get(
        db.kysely
          .selectFrom("nodes")
          .select(["id", "status"])
          .where("client_id", "=", params.clientId)
          .where("name", "=", params.name),
      );
      const fields = {
        labels: JSON.stringify([...new Set(params.labels)].sort()),
        types: params.types === null ? null : JSON.stringify([...new Set(params.types)].sort()),
        capacity: params.capacity,
        version: params.version,
        hardware: JSON.stringify(params.hardware),
        status: "online",
        last_heartbeat: at,
        updated_at: at,
      };
      const id = existing?.id ?? randomUUID();
      if (existing) {
        db.run(db.kysely.updateTable("nodes").set(fields).where("id", "=", id));
        // Its claims waiting since before may now take jobs they could not (types, labels, capacity, back online).
        this.ctx.signal.mark({ claimable: true });
      } else {
        db.run(
          db.kysely
            .insertInto("nodes")
            .values({ ...fields, id, name: params.name, client_id: params.clientId, registered_at: at }),
        );
      }
      audit.write(
        {
          event_type: "node.registered",
          entity_type: "node",
          entity_id: id,
          client_id: params.clientId,
          details: { name: params.name, labels: params.labels, capacity: params.capacity, types: params.types, from: existing?.status ?? null },
        },
        at,
      );
      return { node: toNode(this.load(id) as NodeRow), created: !existing };
    });
  }

  async get(id: string): Promise<Node | undefined> {
    const row = this.load(id);
    return row ? toNode(row) : undefined;
  }

  async list(params: ListNodesParams): Promise<Page<Node>> {
    const before = decodeCursor(params.cursor);
    let query = selectNodes(this.ctx)
      .select(sql<number>`nodes.rowid`.as("position"))
      .orderBy(sql`nodes.rowid`, "desc")
      .limit(params.limit + 1);
    if (before !== undefined) query = query.where(sql<number>`nodes.rowid`, "<", before);
    if (params.status !== undefined) query = query.where("nodes.status", "=", params.status);
    if (params.clientId !== undefined) query = query.where("nodes.client_id", "=", params.clientId);
    return pageOf(this.ctx.db.all(query), params.limit, (row) => row.position, toNode);
  }

  async heartbeat(params: { nodeId: string; running: HeartbeatJob[] }): Promise<HeartbeatOutcome> {
    // Most heartbeats of a busy cluster change nothing: the node's last_heartbeat is
    // recent, no lease is due for renewal, no progress moved. Those are answered from
    // a read: no transaction, no commit, no fsync. The others run again as a write, of
    // soft state only (a sign of life, renewed leases, progress, a dead node back): the
    // node sends it again next time, and after a restart the master gives nodes a timeout
    // to report before it ends a lease. So its commit waits for no flush of its own.
    const read = this.beat(params, false);
    const outcome = read === MUST_WRITE ? (this.ctx.db.softTransaction(() => this.beat(params, true)) as HeartbeatOutcome) : read;
    // What the answer says must not be lost: every commit it could have read is on disk first.
    await this.ctx.db.durable();
    return outcome;
  }

  /** The heartbeat; with `write` false, MUST_WRITE at the first thing that would be written. */
  private beat(params: { nodeId: string; running: HeartbeatJob[] }, write: boolean): HeartbeatOutcome | typeof MUST_WRITE {
    const { audit, policy } = this.ctx;
    const hb = this.hb;
    const node = hb.node.get({ nodeId: params.nodeId });
    if (!node) return { ok: false, reason: "not_found" };
    if (node.status === "offline") return { ok: false, reason: "offline" };
    const now = this.ctx.clock.now();
    const at = now.toISOString();
    const stale = node.last_heartbeat < new Date(now.getTime() - policy.heartbeatWriteMs).toISOString();
    if (node.status === "dead" || stale) {
      if (!write) return MUST_WRITE;
      if (node.status === "dead") reviveNode(this.ctx, node.id, at);
      else hb.touch.run({ nodeId: node.id, at });
    }
    const leaseExpiresAt = new Date(now.getTime() + policy.leaseMs).toISOString();
    // Renew only leases past half their life: fewer writes, same guarantee.
    const renewBefore = new Date(now.getTime() + policy.leaseMs / 2).toISOString();
    const cancel: CancelNotice[] = [];
    const listed = new Set<string>();
    // The node's running jobs first (most of what it lists), then the rest it lists by id.
    const running = hb.running.all({ nodeId: node.id });
    const leases = new Map(running.map((lease) => [lease.id, lease]));
    const elsewhere = params.running.filter((job) => !leases.has(job.jobId)).map((job) => job.jobId);
    if (elsewhere.length > 0) {
      for (const lease of hb.leases.all({ ids: JSON.stringify(elsewhere) })) leases.set(lease.id, lease);
    }
    const renew: number[] = [];
    for (const job of params.running) {
      if (listed.has(job.jobId)) continue; // listed twice: counts once
      listed.add(job.jobId);
      const lease = leases.get(job.jobId);
      const ours = lease !== undefined && lease.status === "running" && lease.node_id === node.id && lease.attempt === job.attempt;
      // A job this node was never handed (under that attempt) is unknown to it, whether it exists or not.
      if (!lease || (!ours && handOut(this.ctx, lease.id, job.attempt)?.node_id !== node.id)) {
        cancel.push({ job_id: job.jobId, attempt: job.attempt, reason: "unknown" });
        continue;
      }
      if (!ours || lease.cancel_requested === 1) {
        cancel.push({ job_id: job.jobId, attempt: job.attempt, reason: cancelReason(lease, job.attempt) });
        if (!ours) continue;
      }
      if (lease.lease_expires_at === null || lease.lease_expires_at < renewBefore) {
        if (!write) return MUST_WRITE;
        renew.push(lease.seq);
      }
      const progress = job.progress ?? lease.progress;
      const message = job.message ?? lease.progress_message;
      if (progress !== lease.progress || message !== lease.progress_message) {
        if (!write) return MUST_WRITE;
        const logDue =
          lease.progress_logged_at === null ||
          now.getTime() - new Date(lease.progress_logged_at).getTime() >= PROGRESS_AUDIT_INTERVAL_MS;
        hb.progress.run({ seq: lease.seq, progress, message, loggedAt: logDue ? at : lease.progress_logged_at, at });
        if (logDue) {
          audit.write(
            {
              event_type: "job.progress",
              entity_type: "job",
              entity_id: lease.id,
              client_id: null,
              details: { progress, message, attempt: lease.attempt },
            },
            at,
          );
        }
      }
    }
    if (renew.length > 0) hb.renew.run({ seqs: JSON.stringify(renew), leaseExpiresAt });
    // A cancel asked for a job the node did not list yet (say, claimed a moment ago).
    for (const job of running) {
      if (job.cancel_requested === 1 && !listed.has(job.id)) cancel.push({ job_id: job.id, attempt: job.attempt, reason: "canceled" });
    }
    const status: NodeStatus = node.status === "draining" ? "draining" : "online";
    return { ok: true, status, cancel };
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
  private transition(params: ActorParams, from: NodeStatus[], to: NodeStatus, event: string): NodeActionOutcome {
    const { db, audit } = this.ctx;
    return db.transaction(() => {
      const node = this.load(params.id);
      if (!node) return { ok: false, reason: "not_found" };
      if (!from.includes(node.status as NodeStatus)) {
        return { ok: false, reason: "conflict", status: node.status as NodeStatus };
      }
      let requeued = 0;
      if (node.status !== to) {
        const at = this.ctx.clock.now().toISOString();
        db.run(db.kysely.updateTable("nodes").set({ status: to, updated_at: at }).where("id", "=", node.id));
        audit.write(
          { event_type: event, entity_type: "node", entity_id: node.id, client_id: params.actor, details: { from: node.status } },
          at,
        );
        if (to === "offline") {
          const rescued = endLeases(this.ctx, this.runningJobs(node.id), "node_left", "job.reassigned", params.actor);
          requeued = rescued.filter((job) => job.outcome === "requeued").length;
        }
        if (to === "online") this.ctx.signal.mark({ claimable: true }); // its waiting claims may now get work
      }
      return { ok: true, node: toNode(this.load(node.id) as NodeRow), requeued };
    });
  }

  private runningJobs(nodeId: string): EndingLease[] {
    const { db } = this.ctx;
    return db
      .prepared<{ nodeId: string }, EndingLease>("node-running-jobs", () =>
        db.kysely
          .selectFrom("jobs")
          .select(ENDING_LEASE_COLUMNS)
          .where("node_id", "=", param("nodeId"))
          .where("status", "=", sql.lit("running"))
          .orderBy("seq"),
      )
      .all({ nodeId });
  }

  async markDead(params: { cutoff: Date; limit: number }): Promise<DeadNode[]> {
    const { db, audit } = this.ctx;
    return db.transaction(() => {
      const at = this.ctx.clock.now().toISOString();
      // last_heartbeat lags a node's latest heartbeat by up to heartbeatWriteMs.
      const before = new Date(params.cutoff.getTime() - this.ctx.policy.heartbeatWriteMs).toISOString();
      const silent = db.all(
        db.kysely
          .selectFrom("nodes")
          .select(["id", "name", "last_heartbeat"])
          .where("status", "in", [sql.lit("online"), sql.lit("draining")])
          .where("last_heartbeat", "<", before)
          .orderBy("last_heartbeat")
          .limit(params.limit),
      );
      return silent.map((node) => {
        db.prepared<{ id: string; at: string }>("node-dead", () =>
          db.kysely.updateTable("nodes").set({ status: sql.lit("dead"), updated_at: param("at") }).where("id", "=", param("id")),
        ).run({ id: node.id, at });
        const running = this.runningJobs(node.id);
        audit.write(
          {
            event_type: "node.dead",
            entity_type: "node",
            entity_id: node.id,
            client_id: null,
            details: { last_heartbeat: node.last_heartbeat, jobs: running.length },
          },
          at,
        );
        const jobs = endLeases(this.ctx, running, "node_dead", "job.reassigned", null);
        return { nodeId: node.id, name: node.name, lastHeartbeat: node.last_heartbeat, jobs };
      });
    });
  }
}
