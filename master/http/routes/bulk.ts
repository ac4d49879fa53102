// POST /api/v1/jobs/cancel and /api/v1/jobs/retry: the one-job actions for every job a
// filter matches, oldest first, at most `max` (API.md §5, Bulk).
import { z } from "zod";
import { FAILURE_REASONS, JOB_STATUSES, type BulkActionParams, type JobFilter } from "../../store/types.js";
import type { HttpDeps } from "../deps.js";
import { forbidden } from "../problem.js";
import { ok, route, type Principal, type Route } from "../route.js";
import { id, jobType, priority, tagFilter, timestamp } from "../schemas.js";
import { problemResponses } from "./common.js";

export const BULK_MAX = 10_000;
export const BULK_DEFAULT_MAX = 1000;

export const bulkFilterSchema = z
  .object({
    status: z.enum(JOB_STATUSES).optional(),
    type: jobType.optional(),
    priority: priority.optional(),
    tag: tagFilter.optional(),
    failure_reason: z.enum(FAILURE_REASONS).optional(),
    client_id: id.optional(),
    created_after: timestamp.optional(),
    created_before: timestamp.optional(),
  })
  .strict()
  .refine((filter) => Object.values(filter).some((value) => value !== undefined), "give at least one filter: an action on every job is refused");

export const bulkActionBody = z
  .object({
    filter: bulkFilterSchema,
    max: z.int().min(1).max(BULK_MAX).default(BULK_DEFAULT_MAX),
    dry_run: z.boolean().default(false),
  })
  .strict();

export const bulkOutcomeSchema = z
  .object({ matched: z.int(), changed: z.int(), more: z.boolean(), dry_run: z.boolean() })
  .meta({ id: "BulkOutcome" });

type BulkBody = z.output<typeof bulkActionBody>;

/** The store's filter, for this caller: a client's covers only its own jobs. */
function filterFor(principal: Principal, filter: BulkBody["filter"]): JobFilter {
  let clientId = filter.client_id;
  if (principal.role !== "admin") {
    if (clientId !== undefined && clientId !== principal.clientId) throw forbidden("only an admin filters by another client's client_id");
    clientId = principal.clientId;
  }
  const [tagKey, ...tagValue] = filter.tag?.split(":") ?? [];
  return {
    status: filter.status,
    type: filter.type,
    priority: filter.priority,
    tag: tagKey === undefined ? undefined : { key: tagKey, value: tagValue.join(":") },
    failureReason: filter.failure_reason,
    clientId,
    createdAfter: filter.created_after === undefined ? undefined : new Date(filter.created_after),
    createdBefore: filter.created_before === undefined ? undefined : new Date(filter.created_before),
  };
}

export function bulkRoutes(deps: HttpDeps): Route[] {
  const { store } = deps;
  const actions = [
    { action: "cancel", event: "jobs.canceled", summary: "Cancel every job a filter matches (running ones are asked to stop), oldest first, at most max" },
    { action: "retry", event: "jobs.retried", summary: "Run again every failed or canceled job a filter matches, oldest first, at most max" },
  ] as const;
  return actions.map(({ action, event, summary }) =>
    route(
      {
        method: "post",
        path: `/api/v1/jobs/${action}`,
        summary,
        tag: "jobs",
        auth: ["admin", "client"],
        body: bulkActionBody,
        responses: { 200: { description: "How many jobs matched and how many changed", schema: bulkOutcomeSchema }, ...problemResponses },
      },
      async ({ body, principal }) => {
        const params: BulkActionParams = {
          filter: filterFor(principal, body.filter),
          max: body.max,
          actor: principal.clientId,
          shownFilter: body.filter,
          dryRun: body.dry_run,
        };
        const outcome = action === "cancel" ? await store.jobs.cancelMatching(params) : await store.jobs.retryMatching(params);
        if (!body.dry_run) deps.log.info({ event, actor: principal.clientId, filter: body.filter, ...outcome });
        return ok({ ...outcome, dry_run: body.dry_run });
      },
    ),
  );
}
