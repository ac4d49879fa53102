// What the route modules are given: the store, the dispatcher, the config, the log
// and metrics. Routes wake nothing: the store's commit signal tells the dispatcher and
// the timers what a write changed, once it committed.
import type { MasterConfig } from "../config.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics.js";
import type { ModeController } from "../modes.js";
import type { Dispatcher } from "../queue/dispatcher.js";
import type { JobWaiters } from "../queue/job-waiters.js";
import type { Clock, Job, Store } from "../store/types.js";
import { forbidden, notFound } from "./problem.js";
import type { Principal } from "./route.js";

export interface HttpDeps {
  store: Store;
  dispatcher: Dispatcher;
  /** Callers of GET /jobs/:id?wait_s= waiting for their job to finish. */
  waiters: JobWaiters;
  config: MasterConfig;
  log: Logger;
  clock: Clock;
  nodeOwners: NodeOwners;
  metrics: Metrics;
  modes: ModeController;
}

/** Who registered each node (it never changes), kept in memory for the hot node routes. */
export class NodeOwners {
  private readonly owners = new Map<string, string>();

  constructor(private readonly store: Store) {}

  async ownerOf(nodeId: string): Promise<string | undefined> {
    const known = this.owners.get(nodeId);
    if (known !== undefined) return known;
    const node = await this.store.nodes.get(nodeId);
    if (node) this.owners.set(nodeId, node.client_id);
    return node?.client_id;
  }

  /**
   * A worker acts only for the nodes it registered; an admin for any. Another
   * client's node answers 404, as if it did not exist.
   */
  async check(principal: Principal, nodeId: string): Promise<void> {
    const owner = await this.ownerOf(nodeId);
    if (owner === undefined) throw notFound("node");
    if (principal.role === "admin") return;
    if (principal.role !== "worker") throw forbidden();
    if (owner !== principal.clientId) throw notFound("node");
  }
}

/** A job as `principal` may see it; anything else is 404 (API.md §3). */
export async function visibleJob(deps: HttpDeps, principal: Principal, id: string): Promise<Job> {
  const job = await deps.store.jobs.get(id);
  if (!job) throw notFound("job");
  if (principal.role === "admin") return job;
  if (principal.role === "client" && job.client_id === principal.clientId) return job;
  if (principal.role === "worker" && job.node_id !== null) {
    if ((await deps.nodeOwners.ownerOf(job.node_id)) === principal.clientId) return job;
  }
  throw notFound("job");
}
