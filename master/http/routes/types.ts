// /api/v1/types: flow control per job type (API.md §5a): everyone sees the counts,
// admins pause, resume and limit a type.
import { z } from "zod";
import type { HttpDeps } from "../deps.js";
import { badRequest } from "../problem.js";
import { ok, route, type Route } from "../route.js";
import { jobType, jobTypeSchema, setJobTypeSchema } from "../schemas.js";
import { problemResponses } from "./common.js";

/** Finished counts cover the last hour. */
const HOUR_MS = 3_600_000;

export function typeRoutes(deps: HttpDeps): Route[] {
  const { store, clock } = deps;
  return [
    route(
      {
        method: "get",
        path: "/api/v1/types",
        summary: "Job types with their limit, pause and counts (pending, running, finished in the last hour)",
        tag: "types",
        auth: ["admin", "client"],
        responses: { 200: { description: "The types", schema: z.object({ items: z.array(jobTypeSchema) }) }, ...problemResponses },
      },
      async () => ok({ items: await store.types.list({ since: new Date(clock.now().getTime() - HOUR_MS) }) }),
    ),
    route(
      {
        method: "put",
        path: "/api/v1/types/:type",
        summary: "Set a type's cluster-wide limit of running jobs (null: none), pause or resume it",
        tag: "types",
        auth: ["admin"],
        body: setJobTypeSchema,
        responses: { 200: { description: "The type", schema: jobTypeSchema }, ...problemResponses },
      },
      async ({ params, body, principal }) => {
        const type = jobType.safeParse(params.type);
        if (!type.success) throw badRequest("the type must be 1–64 of A-Z a-z 0-9 _ . : -");
        const info = await store.types.set({
          type: type.data,
          maxRunning: body.max_running,
          paused: body.paused,
          actor: principal.clientId,
          since: new Date(clock.now().getTime() - HOUR_MS),
        });
        deps.log.info({ event: "type.changed", type: type.data, maxRunning: info.max_running, paused: info.paused });
        return ok(info);
      },
    ),
  ];
}
