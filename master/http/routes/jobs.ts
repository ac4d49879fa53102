// /api/v1/jobs: submit (one or a batch), read, list, cancel, retry, re-prioritise, events; queue stats.
import { z } from "zod";
import { isFinal } from "../../queue/transitions.js";
import { whyWaiting } from "../../queue/why.js";
import { submittedPayload, type Job, type JobActionOutcome, type SubmitJobParams, type SubmitOptions, type SubmitOutcome } from "../../store/types.js";
import { visibleJob, type HttpDeps } from "../deps.js";
import { badRequest, conflict, forbidden, notFound, ProblemError, type FieldError } from "../problem.js";
import { createdJson, ok, route, type Principal, type Reply, type Route } from "../route.js";
import {
  auditEntrySchema,
  getJobQuery,
  idParams,
  jobAttemptSchema,
  jobEventSchema,
  jobSchema,
  listAuditQuery,
  listJobsQuery,
  pageOnlyQuery,
  pageSchema,
  queueStatsSchema,
  setPriorityBody,
  submitBatchSchema,
  submitJobSchema,
  throughputQuery,
  throughputSchema,
  whySchema,
  type SubmitJobBody,
} from "../schemas.js";
import { batchAnswer, newJobJson } from "../job-answer.js";
import { unstorableJson } from "../storable.js";
import { problemResponses } from "./common.js";

const SUBMITTERS = ["admin", "client"] as const;

/**
 * Resolves once the job is final or `waitMs` has passed: woken by the commit that finished
 * it, or by the lookup of every waited job after commits may have gone unheard. The wait
 * is registered before the read, so that a finish between the two is not missed, and is
 * let go however this ends (a read that throws too).
 */
async function waitForFinal(deps: HttpDeps, jobId: string, waitMs: number, signal: AbortSignal | undefined): Promise<void> {
  const waiting = deps.waiters.wait(jobId, waitMs, signal);
  try {
    const now = await deps.store.jobs.get(jobId);
    if (!now || isFinal(now.status)) return;
    // Told by the commit, before its flush: answer once it is on disk.
    if ((await waiting.done) === "finished") await deps.store.durable();
  } finally {
    waiting.cancel();
  }
}

/**
 * A payload over GAFFER_MAX_PAYLOAD_BYTES is refused with 413, one a store would not keep as sent
 * (storable.ts) with 400, each naming the field; `payloadJson` is its JSON text.
 */
export function checkPayload(deps: HttpDeps, payload: unknown, payloadJson: string, path: string): void {
  const limit = deps.config.maxPayloadBytes;
  // A UTF-16 code unit is at most 3 bytes of UTF-8: a text that short is within the limit uncounted.
  const size = payloadJson.length * 3 <= limit ? 0 : Buffer.byteLength(payloadJson);
  if (size > limit) {
    throw new ProblemError(
      "payload_too_large",
      `the payload is ${size} bytes; the limit is ${limit} (GAFFER_MAX_PAYLOAD_BYTES)`,
      [{ path: `${path}payload`, message: `at most ${limit} bytes` }],
    );
  }
  const unstorable = unstorableJson(payload, payloadJson);
  if (unstorable !== undefined) throw badRequest(`${path}payload: ${unstorable}`, [{ path: `${path}payload`, message: unstorable }]);
}

/** Check one job's body beyond its schema and turn it into store params. */
function toSubmitParams(deps: HttpDeps, principal: Principal, body: SubmitJobBody, path: string): SubmitJobParams {
  // Turned into JSON here once: measured, then written by the store as it is.
  const { payload, payloadJson } = submittedPayload(body.payload === undefined ? {} : body.payload);
  checkPayload(deps, payload, payloadJson, path);
  return {
    clientId: principal.clientId,
    type: body.type,
    payload,
    payloadJson,
    priority: body.priority,
    maxRetries: body.max_retries ?? deps.config.maxRetries,
    timeoutS: body.timeout_s ?? deps.config.jobTimeoutS,
    runAt: body.run_at === undefined ? null : new Date(body.run_at),
    requires: body.requires,
    dependsOn: body.depends_on,
    idempotencyKey: body.idempotency_key ?? null,
    tags: body.tags,
  };
}

/** For a worker: which of these nodes are its own (undefined for the other roles, who see all). */
async function ownNodes(deps: HttpDeps, principal: Principal, nodeIds: readonly string[]): Promise<Set<string> | undefined> {
  if (principal.role !== "worker") return undefined;
  const mine = new Set<string>();
  for (const id of new Set(nodeIds)) if ((await deps.nodeOwners.ownerOf(id)) === principal.clientId) mine.add(id);
  return mine;
}

/**
 * The submitted counter once per type and priority of the submit, not once per job (a batch
 * of 1,000 is one or a few label sets), and the debug lines only when they are written.
 */
function afterSubmit(deps: HttpDeps, outcome: Extract<SubmitOutcome, { ok: true }>): void {
  const debug = deps.log.isLevelEnabled("debug");
  const counts = new Map<string, { type: string; priority: Job["priority"]; count: number }>();
  for (const item of outcome.items) {
    if (!item.created) continue;
    const { type, priority } = item.job;
    const key = `${priority}\u0000${type}`;
    const counted = counts.get(key);
    if (counted) counted.count += 1;
    else counts.set(key, { type, priority, count: 1 });
    if (debug) deps.log.debug({ event: "job.submitted", jobId: item.job.id, type });
  }
  for (const { type, priority, count } of counts.values()) deps.metrics.jobsSubmitted.inc({ type, priority }, count);
}

/** A refused submit as its problem: an unknown dependency (400) or the client's quota (429). */
function submitRefused(outcome: Extract<SubmitOutcome, { ok: false }>, prefix: (index: number) => string): ProblemError {
  if (outcome.reason === "quota_exceeded") {
    return new ProblemError(
      "quota_exceeded",
      `you have ${outcome.unfinished} jobs not yet finished and may have at most ${outcome.limit} (GAFFER_CLIENT_MAX_QUEUED): ` +
        `nothing was stored; submit again once some have finished, or cancel some`,
    );
  }
  const errors: FieldError[] = [
    { path: `${prefix(outcome.index)}depends_on`, message: `no job ${outcome.dependency} of yours exists` },
  ];
  return badRequest(`unknown dependency ${outcome.dependency}`, errors);
}

/** The quota a submit of this principal is held to: a `client` role's only (API.md §4). */
function submitOptions(deps: HttpDeps, principal: Principal, batch: boolean): SubmitOptions {
  return principal.role === "client" ? { batch, maxUnfinished: deps.config.clientMaxQueued } : { batch };
}

/** Map a store outcome for one job to the answer, or the right problem. */
function jobActionReply(outcome: JobActionOutcome, what: string): Reply {
  if (outcome.ok) return ok(outcome.job);
  if (outcome.reason === "not_found") throw notFound("job");
  throw conflict(outcome.detail ?? `cannot ${what} a job that is ${outcome.status ?? "in this state"}`);
}

export function jobRoutes(deps: HttpDeps): Route[] {
  const { store } = deps;
  const jobResponses = { 200: { description: "The job", schema: jobSchema }, ...problemResponses };
  return [
    route(
      {
        method: "post",
        path: "/api/v1/jobs",
        summary: "Submit a job",
        tag: "jobs",
        auth: SUBMITTERS,
        body: submitJobSchema,
        responses: {
          201: { description: "Created", schema: jobSchema },
          200: { description: "An existing job with the same idempotency key", schema: jobSchema },
          ...problemResponses,
        },
      },
      async ({ body, principal }) => {
        const params = toSubmitParams(deps, principal, body, "");
        const outcome = await deps.store.jobs.submit([params], submitOptions(deps, principal, false));
        if (!outcome.ok) throw submitRefused(outcome, () => "");
        afterSubmit(deps, outcome);
        const item = outcome.items[0];
        if (!item) throw new Error("submit answered no job");
        if (!item.created) return ok(item.job);
        return createdJson(newJobJson(item.job, params.payloadJson));
      },
    ),
    route(
      {
        method: "post",
        path: "/api/v1/jobs/batch",
        summary: "Submit up to 1000 jobs at once, all or nothing",
        tag: "jobs",
        auth: SUBMITTERS,
        body: submitBatchSchema,
        largeBody: true,
        responses: { 201: { description: "Created, in order", schema: pageSchema(jobSchema).pick({ items: true }) }, ...problemResponses },
      },
      async ({ body, principal }) => {
        const params = body.jobs.map((job, index) => toSubmitParams(deps, principal, job, `jobs.${index}.`));
        const outcome = await deps.store.jobs.submit(params, submitOptions(deps, principal, true));
        if (!outcome.ok) throw submitRefused(outcome, (index) => `jobs.${index}.`);
        afterSubmit(deps, outcome);
        // The store answers in the batch's order: a job it made is that item's, with that item's payload text.
        return createdJson(batchAnswer(outcome.items.map((item, index) => ({ job: item.job, payloadJson: item.created ? params[index]?.payloadJson : undefined }))));
      },
    ),
    route(
      {
        method: "get",
        path: "/api/v1/jobs",
        summary: "List jobs, newest first",
        tag: "jobs",
        auth: ["admin", "client", "worker"],
        query: listJobsQuery,
        responses: { 200: { description: "A page of jobs", schema: pageSchema(jobSchema) }, ...problemResponses },
      },
      async ({ query, principal }) => {
        let clientId = query.client_id;
        if (principal.role === "client") {
          // A client sees its own jobs only; asking for another's shows nothing.
          if (clientId !== undefined && clientId !== principal.clientId) return ok({ items: [], next_cursor: null });
          clientId = principal.clientId;
        }
        if (principal.role === "worker") {
          if (query.node_id === undefined) throw forbidden("a worker lists only the jobs of its own nodes: pass node_id");
          await deps.nodeOwners.check(principal, query.node_id);
        }
        const [tagKey, ...tagValue] = query.tag?.split(":") ?? [];
        const page = await store.jobs.list({
          limit: query.limit,
          cursor: query.cursor,
          status: query.status,
          type: query.type,
          priority: query.priority,
          nodeId: query.node_id,
          clientId,
          tag: tagKey === undefined ? undefined : { key: tagKey, value: tagValue.join(":") },
          failureReason: query.failure_reason,
        });
        return ok(page);
      },
    ),
    route(
      {
        method: "get",
        path: "/api/v1/jobs/:id",
        summary: "Get a job; with wait_s, once it is completed, failed or canceled (or after wait_s seconds)",
        tag: "jobs",
        auth: ["admin", "client", "worker"],
        query: getJobQuery,
        responses: jobResponses,
      },
      async (request) => {
        const { params, principal, query } = request;
        const job = await visibleJob(deps, principal, idParams.parse(params).id);
        if (!query.wait_s || isFinal(job.status)) return ok(job);
        await waitForFinal(deps, job.id, query.wait_s * 1000, request.signal);
        // Seen again as the caller may see it now (a worker's lease may have moved on).
        return ok(await visibleJob(deps, principal, job.id));
      },
    ),
    route(
      {
        method: "patch",
        path: "/api/v1/jobs/:id",
        summary: "Change a job's priority while it is not running yet",
        tag: "jobs",
        auth: SUBMITTERS,
        body: setPriorityBody,
        responses: jobResponses,
      },
      async ({ params, principal, body }) => {
        const job = await visibleJob(deps, principal, idParams.parse(params).id);
        const outcome = await store.jobs.setPriority({ id: job.id, priority: body.priority, actor: principal.clientId });
        return jobActionReply(outcome, "re-prioritise");
      },
    ),
    route(
      {
        method: "post",
        path: "/api/v1/jobs/:id/cancel",
        summary: "Cancel a job (a running one is asked to stop)",
        tag: "jobs",
        auth: SUBMITTERS,
        responses: jobResponses,
      },
      async ({ params, principal }) => {
        const job = await visibleJob(deps, principal, idParams.parse(params).id);
        const outcome = await store.jobs.cancel({ id: job.id, actor: principal.clientId });
        if (outcome.ok) deps.log.info({ event: "job.canceled", jobId: job.id, status: outcome.job.status });
        return jobActionReply(outcome, "cancel");
      },
    ),
    route(
      {
        method: "post",
        path: "/api/v1/jobs/:id/retry",
        summary: "Run a failed or canceled job again",
        tag: "jobs",
        auth: SUBMITTERS,
        responses: jobResponses,
      },
      async ({ params, principal }) => {
        const job = await visibleJob(deps, principal, idParams.parse(params).id);
        const outcome = await store.jobs.retry({ id: job.id, actor: principal.clientId });
        return jobActionReply(outcome, "retry");
      },
    ),
    route(
      {
        method: "get",
        path: "/api/v1/jobs/:id/events",
        summary: "A job's history, oldest first: its submission, attempts and every audit row about it",
        tag: "jobs",
        auth: ["admin", "client", "worker"],
        query: pageOnlyQuery,
        responses: { 200: { description: "A page of events", schema: pageSchema(jobEventSchema) }, ...problemResponses },
      },
      async ({ params, principal, query }) => {
        const job = await visibleJob(deps, principal, idParams.parse(params).id);
        const page = await store.jobs.events({ jobId: job.id, limit: query.limit, cursor: query.cursor });
        // A worker sees what happened on its own nodes only.
        const mine = await ownNodes(deps, principal, page.items.flatMap((event) => (event.node_id ? [event.node_id] : [])));
        return ok(mine ? { ...page, items: page.items.filter((event) => event.node_id !== undefined && mine.has(event.node_id)) } : page);
      },
    ),
    route(
      {
        method: "get",
        path: "/api/v1/jobs/:id/why",
        summary: "Why a job is not running yet: reasons with their codes and facts, and how many jobs are ahead of it",
        tag: "jobs",
        auth: ["admin", "client", "worker"],
        responses: { 200: { description: "The reasons", schema: whySchema }, ...problemResponses },
      },
      async ({ params, principal }) => {
        const job = await visibleJob(deps, principal, idParams.parse(params).id);
        const facts = await store.jobs.whyFacts(job.id);
        if (!facts) throw notFound("job");
        const answer = whyWaiting({ ...facts, paused: !deps.modes.allowsDispatch });
        if (principal.role === "admin") return ok(answer);
        // Only admins see nodes (API.md §3): the others get the counts, not the names.
        return ok({ ...answer, reasons: answer.reasons.map(({ nodes: _nodes, ...reason }) => reason) });
      },
    ),
    route(
      {
        method: "get",
        path: "/api/v1/jobs/:id/attempts",
        summary: "Each hand-out of a job to a node, oldest first, with its outcome and log tail",
        tag: "jobs",
        auth: ["admin", "client", "worker"],
        responses: { 200: { description: "The job's attempts", schema: z.object({ items: z.array(jobAttemptSchema) }) }, ...problemResponses },
      },
      async ({ params, principal }) => {
        const job = await visibleJob(deps, principal, idParams.parse(params).id);
        const attempts = await store.jobs.attempts(job.id);
        // A worker sees the attempts of its own nodes only: another client's log tails are not its business.
        const mine = await ownNodes(deps, principal, attempts.map((attempt) => attempt.node_id));
        return ok({ items: mine ? attempts.filter((attempt) => mine.has(attempt.node_id)) : attempts });
      },
    ),
    route(
      {
        method: "get",
        path: "/api/v1/queue/stats",
        summary: "Jobs by status, pending jobs by priority, nodes by status",
        tag: "jobs",
        auth: SUBMITTERS,
        responses: { 200: { description: "Queue statistics", schema: queueStatsSchema }, ...problemResponses },
      },
      async () => ok(await store.jobs.stats()),
    ),
    route(
      {
        method: "get",
        path: "/api/v1/queue/throughput",
        summary: "Jobs completed and failed per minute over the last `minutes` (from the database)",
        tag: "jobs",
        auth: SUBMITTERS,
        query: throughputQuery,
        responses: { 200: { description: "Per-minute counts, oldest first", schema: throughputSchema }, ...problemResponses },
      },
      async ({ query }) => {
        const since = new Date(deps.clock.now().getTime() - query.minutes * 60_000);
        return ok({ since: since.toISOString(), minutes: await store.jobs.throughput({ since }) });
      },
    ),
    route(
      {
        method: "get",
        path: "/api/v1/audit",
        summary: "The audit log, newest first, with filters",
        tag: "operations",
        auth: ["admin"],
        query: listAuditQuery,
        responses: { 200: { description: "A page of audit entries", schema: pageSchema(auditEntrySchema) }, ...problemResponses },
      },
      async ({ query }) =>
        ok(
          await store.audit.list({
            limit: query.limit,
            cursor: query.cursor,
            eventType: query.event_type,
            entityType: query.entity_type,
            entityId: query.entity_id,
            clientId: query.client_id,
          }),
        ),
    ),
  ];
}
