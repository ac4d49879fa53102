// Why a job is not running yet (API.md §5, GET /jobs/:id/why): pure rules over the facts
// the dispatcher itself goes by (the job's state, its dependencies, the master's mode, the
// nodes that could take it and the jobs ahead of it in their lanes), so that a job this
// calls ready is handed out on the next claim of an eligible node.
import type { JobStatus } from "../store/types.js";

/** What a node is, for the question: could it take this job now? */
export interface NodeFacts {
  id: string;
  name: string;
  status: "online" | "draining";
  labels: readonly string[];
  /** The job types it runs; null: any. */
  types: readonly string[] | null;
  capacity: number;
  running: number;
}

export interface WhyFacts {
  status: JobStatus;
  type: string;
  requires: readonly string[];
  /** When a scheduled job becomes ready (its run_at, or a retry's backoff). */
  readyAt: string | null;
  /** Its dependencies that have not completed. */
  waitingOn: readonly { id: string; status: JobStatus }[];
  /** The master hands out nothing while paused. */
  paused: boolean;
  /** Its type's flow control (API.md §5a): paused, or a limit and how many of the type run now. */
  typeControl?: { paused: boolean; maxRunning: number | null; running: number };
  /** Nodes online or draining (dead and offline ones take nothing). */
  nodes: readonly NodeFacts[];
  /** Pending jobs the nodes that could take it would take first; null: too many to count quickly. */
  jobsAhead: number | null;
  /**
   * With fair share on (API.md §5a), a pending job's place among the clients: its client's
   * running jobs, and how many other clients' next jobs of its priority go before its
   * client's next one (in the lanes its eligible nodes cover; null: too many to count).
   */
  fairShare?: { clientId: string; running: number; clientsAhead: number | null };
}

export interface WhyReason {
  code: "scheduled" | "blocked" | "master_paused" | "type_paused" | "type_limit" | "no_eligible_node" | "no_handler" | "nodes_busy" | "fair_share" | "queued";
  message: string;
  [fact: string]: unknown;
}

export interface WhyAnswer {
  status: JobStatus;
  reasons: WhyReason[];
  jobs_ahead: number | null;
  eligible_nodes: number;
  /** Pending, and nothing but its place in the queue holds it. */
  ready: boolean;
}

/** Whether a node has all of a job's labels and runs its type. */
export function canRun(node: Pick<NodeFacts, "labels" | "types">, type: string, requires: readonly string[]): boolean {
  const labels = new Set(node.labels);
  return requires.every((label) => labels.has(label)) && (node.types === null || node.types.includes(type));
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

export function whyWaiting(facts: WhyFacts): WhyAnswer {
  const eligible = facts.nodes.filter((node) => canRun(node, facts.type, facts.requires));
  const base = { status: facts.status, eligible_nodes: eligible.length };
  if (facts.status === "running" || facts.status === "completed" || facts.status === "failed" || facts.status === "canceled") {
    return { ...base, reasons: [], jobs_ahead: null, ready: false };
  }
  const reasons: WhyReason[] = [];
  if (facts.status === "scheduled") {
    reasons.push({ code: "scheduled", message: `it waits until ${facts.readyAt ?? "its run_at"} (its run_at, or a retry's backoff)`, run_at: facts.readyAt });
  }
  if (facts.status === "blocked") {
    const ids = facts.waitingOn.map((dependency) => dependency.id);
    reasons.push({
      code: "blocked",
      message: `it waits for ${plural(ids.length, "job")} it depends on to complete: ${ids.join(", ")}`,
      dependencies: facts.waitingOn,
    });
  }
  if (facts.paused) reasons.push({ code: "master_paused", message: "the master is paused: it hands out no jobs until it is set back to normal" });
  const control = facts.typeControl;
  if (control?.paused) reasons.push({ code: "type_paused", message: `jobs of type ${facts.type} are paused: none is handed out until the type is resumed`, type: facts.type });
  if (control && control.maxRunning !== null && control.running >= control.maxRunning) {
    reasons.push({
      code: "type_limit",
      message: `${plural(control.running, "job")} of type ${facts.type} run now, its limit`,
      limit: control.maxRunning,
      running: control.running,
    });
  }
  const labelled = facts.nodes.filter((node) => canRun({ labels: node.labels, types: null }, facts.type, facts.requires));
  if (labelled.length === 0) {
    reasons.push({
      code: "no_eligible_node",
      message:
        facts.requires.length === 0
          ? "no node is online"
          : `no online node has all of its labels: ${facts.requires.join(", ")}`,
      labels: facts.requires,
    });
  } else if (eligible.length === 0) {
    reasons.push({ code: "no_handler", message: `no online node with its labels runs jobs of type ${facts.type}`, type: facts.type });
  } else if (eligible.every((node) => node.status === "draining" || node.running >= node.capacity)) {
    reasons.push({
      code: "nodes_busy",
      message: `every node that could run it is full or draining (${plural(eligible.length, "node")})`,
      nodes: eligible.map((node) => ({ name: node.name, status: node.status, running: node.running, capacity: node.capacity })),
    });
  }
  const pending = facts.status === "pending";
  const fair = facts.fairShare;
  if (pending && fair && fair.clientsAhead !== 0) {
    reasons.push({
      code: "fair_share",
      message:
        fair.clientsAhead === null
          ? `many other clients' jobs of its priority go first: fewer of theirs run than its client's ${fair.running}`
          : `${plural(fair.clientsAhead, "other client")}' jobs of its priority go first: its client runs ${fair.running}, ` +
            "they run fewer (or as many, and have waited longer)",
      client_id: fair.clientId,
      running: fair.running,
      clients_ahead: fair.clientsAhead,
    });
  }
  const ready = pending && reasons.length === 0;
  if (pending) {
    const ahead = facts.jobsAhead;
    reasons.push({
      code: "queued",
      message:
        ahead === null
          ? "many jobs are ahead of it for the same nodes"
          : ahead === 0
            ? "it is next for the nodes that can run it"
            : `${plural(ahead, "job")} ahead of it for the same nodes`,
      jobs_ahead: ahead,
    });
  }
  return { ...base, reasons, jobs_ahead: pending ? facts.jobsAhead : null, ready };
}
