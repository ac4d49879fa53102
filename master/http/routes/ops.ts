// The public operational routes: /health, /ready, /openapi.json.
import type { HttpDeps } from "../deps.js";
import { problemSchema, unavailable } from "../problem.js";
import { ok, route, type Route } from "../route.js";
import { healthSchema } from "../schemas.js";

export interface OpsParams {
  isReady: () => boolean;
  openApi: () => Record<string, unknown>;
}

export function opsRoutes(_deps: HttpDeps, params: OpsParams): Route[] {
  return [
    route(
      {
        method: "get",
        path: "/health",
        summary: "The process runs",
        tag: "operations",
        auth: "public",
        responses: { 200: { description: "Alive", schema: healthSchema } },
      },
      async () => ok({ status: "ok" }),
    ),
    route(
      {
        method: "get",
        path: "/ready",
        summary: "The database is open and migrated",
        tag: "operations",
        auth: "public",
        responses: {
          200: { description: "Ready", schema: healthSchema },
          503: { description: "Not ready", schema: problemSchema },
        },
      },
      async () => {
        if (!params.isReady()) throw unavailable("the master is not ready");
        return ok({ status: "ready" });
      },
    ),
    route(
      {
        method: "get",
        path: "/openapi.json",
        summary: "This document",
        tag: "operations",
        auth: "public",
        responses: { 200: { description: "OpenAPI 3.1" } },
      },
      async () => ok(params.openApi()),
    ),
  ];
}
