// Dead nodes (API.md §7): a node silent for more than the node timeout becomes
// `dead` and its running jobs go back to the queue (or fail past max_retries).
// The same run takes back jobs whose node stopped listing them in heartbeats.
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics.js";
import type { Clock, DeadNode, RescuedJob, Store } from "../store/types.js";
import { collect, inBatches, PeriodicService } from "./service.js";

/** Nodes and leases handled per transaction, so one sweep never holds the database long. */
export const DEAD_NODE_BATCH = 100;
export const EXPIRED_LEASE_BATCH = 500;

export interface DeadNodeSweeperParams {
  store: Store;
  clock: Clock;
  log: Logger;
  nodeTimeoutMs: number;
  intervalMs: number;
  /**
   * Since when nodes could report (the master's start, or the end of a read-only
   * spell when heartbeats were refused): no node is declared dead, and no lease
   * ends, before nodes have had one timeout to report after it.
   */
  reportingSince: () => Date;
  metrics?: Metrics;
}

export interface DeadNodeSweep {
  dead: DeadNode[];
  expired: RescuedJob[];
  skipped: boolean;
}

export class DeadNodeSweeper extends PeriodicService<DeadNodeSweep> {
  constructor(private readonly params: DeadNodeSweeperParams) {
    super("dead_nodes", params.intervalMs, params.log);
  }

  async runOnce(): Promise<DeadNodeSweep> {
    const { store, clock, nodeTimeoutMs, log } = this.params;
    const now = clock.now();
    // After a long stop (or a read-only spell) every heartbeat is old: give nodes a timeout's grace to report in.
    if (now.getTime() - this.params.reportingSince().getTime() < nodeTimeoutMs) {
      return { dead: [], expired: [], skipped: true };
    }
    const cutoff = new Date(now.getTime() - nodeTimeoutMs);
    const dead: DeadNode[] = [];
    await inBatches(DEAD_NODE_BATCH, async () => collect(dead, await store.nodes.markDead({ cutoff, limit: DEAD_NODE_BATCH })));
    const expired: RescuedJob[] = [];
    await inBatches(EXPIRED_LEASE_BATCH, async () => collect(expired, await store.jobs.expireLeases({ limit: EXPIRED_LEASE_BATCH })));
    for (const node of dead) {
      // A node an earlier sweep declared dead, whose jobs this one finished taking back, was counted and said then.
      if (node.earlier !== true) {
        log.warn(
          { event: "node.dead", nodeId: node.nodeId, name: node.name, lastHeartbeat: node.lastHeartbeat, jobs: node.jobs.length },
          `node ${node.name} is dead`,
        );
      }
      for (const job of node.jobs) {
        log.info({ event: "job.reassigned", jobId: job.jobId, nodeId: job.nodeId, outcome: job.outcome, reason: "node_dead" });
      }
    }
    for (const job of expired) {
      log.info({ event: "job.reassigned", jobId: job.jobId, nodeId: job.nodeId, outcome: job.outcome, reason: "lease_expired" });
    }
    const metrics = this.params.metrics;
    if (metrics) {
      metrics.nodesDead.inc(dead.filter((node) => node.earlier !== true).length);
      metrics.jobsReassigned.inc({ reason: "node_dead" }, dead.reduce((sum, node) => sum + node.jobs.length, 0));
      metrics.jobsReassigned.inc({ reason: "lease_expired" }, expired.length);
    }
    return { dead, expired, skipped: false };
  }
}
