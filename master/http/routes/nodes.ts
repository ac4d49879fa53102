// /api/v1/nodes: what workers do (register, heartbeat, claim, report, leave) and
// what admins do to nodes (list, drain, resume). Single-job reports live under
// /api/v1/jobs/:id/complete|fail but are node verbs, so they are here too.
import type { JobError, JobReport, NodeActionOutcome, ReportOutcome, ReportVerdict } from "../../store/types.js";
import { utf8Tail } from "../../log-tail.js";
import type { HttpDeps } from "../deps.js";
import { claimAnswer } from "../claim-answer.js";
import { badRequest, conflict, notFound, ProblemError } from "../problem.js";
import { created, ok, okJson, route, type Principal, type Reply, type Route } from "../route.js";
import {
  claimedJobSchema,
  claimSchema,
  completeSchema,
  failSchema,
  heartbeatReplySchema,
  heartbeatSchema,
  idParams,
  jobSchema,
  listNodesQuery,
  MAX_ERROR_CODE_CHARS,
  MAX_ERROR_MESSAGE_CHARS,
  nodeSchema,
  pageSchema,
  registerNodeSchema,
  resultsReplySchema,
  resultsSchema,
} from "../schemas.js";
import { cleanText, isStorableText, unstorableJson } from "../storable.js";
import { problemResponses } from "./common.js";

const WORKERS = ["admin", "worker"] as const;

function nodeActionReply(outcome: NodeActionOutcome, what: string): Reply {
  if (outcome.ok) return ok(outcome.node);
  if (outcome.reason === "not_found") throw notFound("node");
  throw conflict(`cannot ${what} a node that is ${outcome.status ?? "in this state"}`);
}

function offlineConflict(): never {
  throw conflict("the node is offline (it deregistered); register it again");
}

/**
 * A long-poll claim past the node's capacity of waiting claims. A 429, not an empty
 * list: a worker's claim loop backs off after an error, but asks again at once after
 * an empty answer, which would turn the extra claim into a busy loop.
 */
const WAITING_CLAIMS_RETRY_AFTER_S = 1;
function tooManyWaiting(): never {
  throw new ProblemError("rate_limited", "this node already has as many claims waiting as its capacity", undefined, {
    "Retry-After": String(WAITING_CLAIMS_RETRY_AFTER_S),
  });
}

const REASONS: Record<ReportVerdict, string | undefined> = {
  accepted: undefined,
  duplicate: "duplicate",
  stale_attempt: "stale_attempt",
  not_found: "not_found",
};

/**
 * The last `limit` bytes of a handler's log tail, cut at a character boundary (the
 * worker sends its own GAFFER_LOG_TAIL_BYTES, which may be larger than the master's).
 */
export function lastBytes(text: string | undefined, limit: number): string | undefined {
  if (text === undefined || limit <= 0) return undefined;
  const bytes = Buffer.from(text, "utf8");
  return bytes.length <= limit ? text : utf8Tail(bytes, limit);
}

/** A handler's log tail as the master keeps it: its last `limit` bytes, as every store keeps text (cleanText). */
function keptLogTail(text: string | undefined, limit: number): string | undefined {
  const tail = lastBytes(text, limit);
  return tail === undefined ? undefined : cleanText(tail);
}

/** A reported error as every store keeps it (cleanText, cut to the lengths a job's error has), retryable unless it says otherwise. */
function keptError(error: { message: string; code?: string | undefined; retryable?: boolean | undefined }): JobError {
  const kept: JobError = { message: cleanText(error.message.slice(0, MAX_ERROR_MESSAGE_CHARS)), retryable: error.retryable !== false };
  if (error.code !== undefined) kept.code = cleanText(error.code.slice(0, MAX_ERROR_CODE_CHARS));
  return kept;
}

/** Count what accepted reports did (metrics) and say it in the log. */
function recordEffects(deps: HttpDeps, items: ReportOutcome[]): void {
  for (const { jobId, effect } of items) {
    if (!effect) continue;
    const labels = { type: effect.type, priority: effect.priority };
    if (effect.runMs !== null) deps.metrics.jobRun.observe({ type: effect.type }, effect.runMs / 1000);
    if (effect.status === "completed") deps.metrics.jobsCompleted.inc(labels);
    else if (effect.status === "failed") {
      deps.metrics.jobsFailed.inc({ ...labels, reason: effect.failureReason ?? "unknown" });
      deps.log.info({ event: "job.failed", jobId, type: effect.type, reason: effect.failureReason });
    } else if (effect.status === "scheduled" || effect.status === "pending") deps.metrics.jobsRetried.inc(labels);
  }
}


export function nodeRoutes(deps: HttpDeps): Route[] {
  const { store, nodeOwners } = deps;
  const nodeResponses = { 200: { description: "The node", schema: nodeSchema }, ...problemResponses };

  /** One report through the batch verb, answered as the single-job routes answer. */
  async function reportOne(principal: Principal, nodeId: string, single: JobReport): Promise<Reply> {
    await nodeOwners.check(principal, nodeId);
    const result = await store.jobs.report({ nodeId, reports: [single] });
    recordEffects(deps, result.items);
    const verdict = result.items[0]?.verdict ?? "not_found";
    if (verdict === "not_found") throw notFound("job");
    if (verdict === "stale_attempt") {
      throw conflict(`attempt ${single.attempt} is not this job's current lease on node ${nodeId}`);
    }
    const job = await store.jobs.get(single.jobId);
    if (!job) throw notFound("job");
    return ok(job);
  }

  /**
   * A batch of reports through the store, answered in order. A job id no store could hold is no
   * job's (not_found), answered without asking the store: the rest of its batch still counts.
   */
  async function reportAll(nodeId: string, reports: JobReport[]): Promise<ReportOutcome[]> {
    const known = reports.filter((report) => isStorableText(report.jobId));
    if (known.length === reports.length) return (await store.jobs.report({ nodeId, reports })).items;
    const answered = known.length === 0 ? [] : (await store.jobs.report({ nodeId, reports: known })).items;
    let next = 0;
    return reports.map((report) =>
      isStorableText(report.jobId) ? (answered[next++] ?? { jobId: report.jobId, verdict: "not_found" }) : { jobId: report.jobId, verdict: "not_found" },
    );
  }

  return [
    route(
      {
        method: "post",
        path: "/api/v1/nodes",
        summary: "Register a node (the same name again: the same node, back online)",
        tag: "nodes",
        auth: WORKERS,
        body: registerNodeSchema,
        responses: {
          201: { description: "Registered", schema: nodeSchema },
          200: { description: "Registered again", schema: nodeSchema },
          ...problemResponses,
        },
      },
      async ({ body, principal }) => {
        const unstorable = unstorableJson(body.hardware, JSON.stringify(body.hardware));
        if (unstorable !== undefined) throw badRequest(`hardware: ${unstorable}`, [{ path: "hardware", message: unstorable }]);
        const { node, created: isNew } = await store.nodes.register({
          clientId: principal.clientId,
          name: body.name,
          labels: body.labels,
          capacity: body.capacity,
          types: body.types ?? null,
          version: body.version ?? null,
          hardware: body.hardware,
        });
        deps.log.info({ event: "node.registered", nodeId: node.id, name: node.name, labels: node.labels, types: node.types, capacity: node.capacity });
        return isNew ? created(node) : ok(node);
      },
    ),
    route(
      {
        method: "get",
        path: "/api/v1/nodes",
        summary: "List nodes",
        tag: "nodes",
        auth: ["admin"],
        query: listNodesQuery,
        responses: { 200: { description: "A page of nodes", schema: pageSchema(nodeSchema) }, ...problemResponses },
      },
      async ({ query }) => ok(await store.nodes.list({ limit: query.limit, cursor: query.cursor, status: query.status })),
    ),
    route(
      {
        method: "get",
        path: "/api/v1/nodes/:id",
        summary: "Get a node",
        tag: "nodes",
        auth: WORKERS,
        responses: nodeResponses,
      },
      async ({ params, principal }) => {
        const { id } = idParams.parse(params);
        await nodeOwners.check(principal, id);
        const node = await store.nodes.get(id);
        if (!node) throw notFound("node");
        return ok(node);
      },
    ),
    route(
      {
        method: "post",
        path: "/api/v1/nodes/:id/heartbeat",
        summary: "Report liveness and running jobs; answers the jobs to stop",
        tag: "nodes",
        auth: WORKERS,
        body: heartbeatSchema,
        responses: { 200: { description: "Status and cancel list", schema: heartbeatReplySchema }, ...problemResponses },
      },
      async ({ params, principal, body }) => {
        const { id } = idParams.parse(params);
        await nodeOwners.check(principal, id);
        // A job id no store could hold is no job of this node's: told to stop, as an unknown one is.
        const unknown = body.running.filter((job) => !isStorableText(job.job_id));
        const outcome = await store.nodes.heartbeat({
          nodeId: id,
          running: (unknown.length === 0 ? body.running : body.running.filter((job) => isStorableText(job.job_id))).map((job) => ({
            jobId: job.job_id,
            attempt: job.attempt,
            progress: job.progress ?? undefined,
            message: job.message === undefined ? undefined : cleanText(job.message),
          })),
        });
        if (!outcome.ok) {
          if (outcome.reason === "not_found") throw notFound("node");
          offlineConflict();
        }
        const cancel = [...outcome.cancel, ...unknown.map((job) => ({ job_id: job.job_id, attempt: job.attempt, reason: "unknown" as const }))];
        return ok({ status: outcome.status, heartbeat_interval_s: deps.config.heartbeatIntervalS, cancel });
      },
    ),
    route(
      {
        method: "post",
        path: "/api/v1/nodes/:id/claim",
        summary: "Take up to `max` ready jobs, waiting up to `wait_s` for one",
        tag: "nodes",
        auth: WORKERS,
        body: claimSchema,
        responses: {
          200: { description: "The jobs, possibly none", schema: pageSchema(claimedJobSchema).pick({ items: true }) },
          ...problemResponses,
        },
      },
      async ({ params, principal, body, signal }) => {
        const { id } = idParams.parse(params);
        await nodeOwners.check(principal, id);
        const outcome = await deps.dispatcher.claim({ nodeId: id, max: body.max, waitMs: body.wait_s * 1000, signal });
        if (!outcome.ok) {
          if (outcome.reason === "not_found") throw notFound("node");
          if (outcome.reason === "too_many_waiting") tooManyWaiting();
          offlineConflict();
        }
        if (outcome.items.length > 0) {
          outcome.items.forEach((job, index) => {
            deps.metrics.jobWait.observe({ priority: job.priority }, (outcome.waitedMs?.[index] ?? 0) / 1000);
            if (job.payloadUnreadable) {
              deps.log.warn(
                { event: "job.payload_unreadable", jobId: job.id, nodeId: id },
                `job ${job.id}'s stored payload is not JSON (its row edited by hand?): handed to node ${id} as null`,
              );
            }
          });
          deps.log.debug({ event: "job.assigned", nodeId: id, jobs: outcome.items.map((job) => job.id) });
        }
        return okJson(claimAnswer(outcome.items));
      },
    ),
    route(
      {
        method: "post",
        path: "/api/v1/nodes/:id/results",
        summary: "Report many results at once",
        tag: "nodes",
        auth: WORKERS,
        body: resultsSchema,
        largeBody: true,
        responses: { 200: { description: "One verdict per result", schema: resultsReplySchema }, ...problemResponses },
      },
      async ({ params, principal, body }) => {
        const { id } = idParams.parse(params);
        await nodeOwners.check(principal, id);
        const outcomes = await reportAll(
          id,
          body.results.map((r) => ({
            jobId: r.job_id,
            attempt: r.attempt,
            status: r.status,
            result: r.result,
            error: r.error === undefined ? undefined : keptError(r.error),
            logTail: keptLogTail(r.log_tail, deps.config.logTailBytes),
          })),
        );
        recordEffects(deps, outcomes);
        const items = outcomes.map((item) => {
          const accepted = item.verdict === "accepted" || item.verdict === "duplicate";
          const reason = REASONS[item.verdict];
          return reason === undefined ? { job_id: item.jobId, accepted } : { job_id: item.jobId, accepted, reason };
        });
        return ok({ items });
      },
    ),
    route(
      {
        method: "post",
        path: "/api/v1/jobs/:id/complete",
        summary: "Report a job completed",
        tag: "nodes",
        auth: WORKERS,
        body: completeSchema,
        responses: { 200: { description: "The job", schema: jobSchema }, ...problemResponses },
      },
      async ({ params, principal, body }) =>
        reportOne(principal, body.node_id, {
          jobId: idParams.parse(params).id,
          attempt: body.attempt,
          status: "completed",
          result: body.result,
          logTail: keptLogTail(body.log_tail, deps.config.logTailBytes),
        }),
    ),
    route(
      {
        method: "post",
        path: "/api/v1/jobs/:id/fail",
        summary: "Report a job failed",
        tag: "nodes",
        auth: WORKERS,
        body: failSchema,
        responses: { 200: { description: "The job", schema: jobSchema }, ...problemResponses },
      },
      async ({ params, principal, body }) =>
        reportOne(principal, body.node_id, {
          jobId: idParams.parse(params).id,
          attempt: body.attempt,
          status: "failed",
          error: keptError(body.error),
          logTail: keptLogTail(body.log_tail, deps.config.logTailBytes),
        }),
    ),
    route(
      {
        method: "post",
        path: "/api/v1/nodes/:id/deregister",
        summary: "Leave gracefully: offline, unfinished jobs back to the queue",
        tag: "nodes",
        auth: WORKERS,
        responses: nodeResponses,
      },
      async ({ params, principal }) => {
        const { id } = idParams.parse(params);
        await nodeOwners.check(principal, id);
        const outcome = await store.nodes.deregister({ id, actor: principal.clientId });
        if (outcome.ok) {
          deps.log.info({ event: "node.offline", nodeId: id, requeued: outcome.requeued });
        }
        return nodeActionReply(outcome, "deregister");
      },
    ),
    route(
      {
        method: "post",
        path: "/api/v1/nodes/:id/drain",
        summary: "Stop handing jobs to a node; its running jobs finish",
        tag: "nodes",
        auth: ["admin"],
        responses: nodeResponses,
      },
      async ({ params, principal }) => {
        const outcome = await store.nodes.drain({ id: idParams.parse(params).id, actor: principal.clientId });
        if (outcome.ok) deps.log.info({ event: "node.draining", nodeId: outcome.node.id });
        return nodeActionReply(outcome, "drain");
      },
    ),
    route(
      {
        method: "post",
        path: "/api/v1/nodes/:id/resume",
        summary: "Hand jobs to a drained node again",
        tag: "nodes",
        auth: ["admin"],
        responses: nodeResponses,
      },
      async ({ params, principal }) => {
        const outcome = await store.nodes.resume({ id: idParams.parse(params).id, actor: principal.clientId });
        if (outcome.ok) {
          deps.log.info({ event: "node.resumed", nodeId: outcome.node.id });
        }
        return nodeActionReply(outcome, "resume");
      },
    ),
  ];
}
