// /api/v1/schedules: recurring jobs (API.md §5). A client sees and changes its own.
import { CronError, nextTick, ticksPerMinute } from "../../queue/cron.js";
import type { Schedule, ScheduledJobSpec, ScheduleFields } from "../../store/types.js";
import type { HttpDeps } from "../deps.js";
import { badRequest, conflict, notFound, ProblemError } from "../problem.js";
import { created, ok, route, type Principal, type Route } from "../route.js";
import { createScheduleSchema, idParams, pageOnlyQuery, pageSchema, scheduleSchema, updateScheduleSchema } from "../schemas.js";
import { checkPayload } from "./jobs.js";
import { problemResponses } from "./common.js";

const OWNERS = ["admin", "client"] as const;

/**
 * When a schedule fires next, or a 400 naming the bad field. A `client` role's schedules
 * fire at most once a minute (API.md §4); one made finer before may still be disabled.
 */
function nextRunOf(deps: HttpDeps, principal: Principal, fields: Omit<ScheduleFields, "nextRunAt">): Date | null {
  try {
    const next = nextTick(fields.cron, fields.timezone, deps.clock.now());
    if (principal.role === "client" && fields.enabled && ticksPerMinute(fields.cron) > 1) {
      throw new CronError("cron", `${fields.cron} fires more than once a minute; a client's schedule may fire at most once a minute`);
    }
    return fields.enabled ? next : null;
  } catch (error) {
    if (error instanceof CronError) throw badRequest(error.message, [{ path: error.field, message: error.message }]);
    throw error;
  }
}

/** A schedule's payload, held to what a submit's is (its ticks submit it). */
function checkScheduledPayload(deps: HttpDeps, payload: unknown): void {
  const submitted = payload === undefined ? {} : payload;
  checkPayload(deps, submitted, JSON.stringify(submitted), "job.");
}

async function visibleSchedule(deps: HttpDeps, principal: Principal, id: string): Promise<Schedule> {
  const schedule = await deps.store.schedules.get(id);
  if (!schedule || (principal.role !== "admin" && schedule.client_id !== principal.clientId)) throw notFound("schedule");
  return schedule;
}

export function scheduleRoutes(deps: HttpDeps): Route[] {
  const { store } = deps;
  const one = { 200: { description: "The schedule", schema: scheduleSchema }, ...problemResponses };
  return [
    route(
      {
        method: "post",
        path: "/api/v1/schedules",
        summary: "Create a recurring schedule: a cron expression in a time zone and the job to submit",
        tag: "schedules",
        auth: OWNERS,
        body: createScheduleSchema,
        responses: { 201: { description: "Created", schema: scheduleSchema }, ...problemResponses },
      },
      async ({ body, principal }) => {
        checkScheduledPayload(deps, body.job.payload);
        const fields = { name: body.name, cron: body.cron, timezone: body.timezone, job: body.job as ScheduledJobSpec, enabled: body.enabled };
        const outcome = await store.schedules.create({
          ...fields,
          nextRunAt: nextRunOf(deps, principal, fields),
          clientId: principal.clientId,
          actor: principal.clientId,
          ...(principal.role === "client" ? { maxPerClient: deps.config.clientMaxSchedules } : {}),
        });
        if (!outcome.ok && outcome.reason === "quota_exceeded") {
          throw new ProblemError(
            "quota_exceeded",
            `you have ${outcome.limit} schedules, the most a client may have (GAFFER_CLIENT_MAX_SCHEDULES): delete one first`,
          );
        }
        if (!outcome.ok) throw conflict(`you already have a schedule named ${body.name}`);
        deps.log.info({ event: "schedule.created", scheduleId: outcome.schedule.id, name: body.name, cron: body.cron });
        return created(outcome.schedule);
      },
    ),
    route(
      {
        method: "get",
        path: "/api/v1/schedules",
        summary: "List schedules (a client's own)",
        tag: "schedules",
        auth: OWNERS,
        query: pageOnlyQuery,
        responses: { 200: { description: "A page of schedules", schema: pageSchema(scheduleSchema) }, ...problemResponses },
      },
      async ({ query, principal }) =>
        ok(
          await store.schedules.list({
            limit: query.limit,
            cursor: query.cursor,
            clientId: principal.role === "admin" ? undefined : principal.clientId,
          }),
        ),
    ),
    route(
      { method: "get", path: "/api/v1/schedules/:id", summary: "Get a schedule", tag: "schedules", auth: OWNERS, responses: one },
      async ({ params, principal }) => ok(await visibleSchedule(deps, principal, idParams.parse(params).id)),
    ),
    route(
      {
        method: "patch",
        path: "/api/v1/schedules/:id",
        summary: "Change a schedule (enabling it again starts from the next tick, with no catch-up)",
        tag: "schedules",
        auth: OWNERS,
        body: updateScheduleSchema,
        responses: one,
      },
      async ({ params, principal, body }) => {
        const current = await visibleSchedule(deps, principal, idParams.parse(params).id);
        if (body.job) checkScheduledPayload(deps, body.job.payload);
        const fields = {
          name: body.name ?? current.name,
          cron: body.cron ?? current.cron,
          timezone: body.timezone ?? current.timezone,
          job: (body.job as ScheduledJobSpec | undefined) ?? current.job,
          enabled: body.enabled ?? current.enabled,
        };
        const outcome = await store.schedules.update({
          id: current.id,
          fields: { ...fields, nextRunAt: nextRunOf(deps, principal, fields) },
          actor: principal.clientId,
        });
        if (!outcome.ok) {
          if (outcome.reason === "conflict") throw conflict(`you already have a schedule named ${fields.name}`);
          throw notFound("schedule");
        }
        return ok(outcome.schedule);
      },
    ),
    route(
      { method: "delete", path: "/api/v1/schedules/:id", summary: "Delete a schedule", tag: "schedules", auth: OWNERS, responses: one },
      async ({ params, principal }) => {
        const schedule = await visibleSchedule(deps, principal, idParams.parse(params).id);
        if (!(await store.schedules.delete({ id: schedule.id, actor: principal.clientId }))) throw notFound("schedule");
        deps.log.info({ event: "schedule.deleted", scheduleId: schedule.id });
        return ok(schedule);
      },
    ),
  ];
}
