// The express application: every route from the declarations, then 404 and problem handling.
import { existsSync } from "node:fs";
import { join } from "node:path";
import express, { type Express, type RequestHandler } from "express";
import { isLoopbackHostHeader } from "../auth/loopback.js";
import { packageRoot } from "../package-info.js";
import type { Authenticator } from "../auth/principal.js";
import type { HttpDeps } from "./deps.js";
import { secureAnswers } from "./headers.js";
import { buildOpenApi } from "./openapi.js";
import { forbidden, notFound, problemHandler } from "./problem.js";
import { mountRoutes, type MountParams, type Route } from "./route.js";
import { authRoutes, type AuthDeps } from "./routes/auth.js";
import { bulkRoutes } from "./routes/bulk.js";
import { jobRoutes } from "./routes/jobs.js";
import { nodeRoutes } from "./routes/nodes.js";
import { opsRoutes } from "./routes/ops.js";
import { scheduleRoutes } from "./routes/schedules.js";
import { typeRoutes } from "./routes/types.js";

export interface AppParams {
  deps: HttpDeps;
  authenticator: Authenticator;
  auth: AuthDeps;
  version: string;
  isReady: () => boolean;
  startedAt: Date;
  services: () => Record<string, unknown>;
  guards?: MountParams["guards"];
  /** Sees every error before it becomes a problem document (a full disk turns the master read-only). */
  onError?: (error: unknown) => void;
}

export function allRoutes(params: AppParams): Route[] {
  const routes: Route[] = [];
  let openApi: Record<string, unknown> | undefined;
  routes.push(
    ...opsRoutes(params.deps, {
      isReady: params.isReady,
      openApi: () => (openApi ??= buildOpenApi(routes, params.version)),
      version: params.version,
      startedAt: params.startedAt,
      services: params.services,
      waitingClaims: () => params.deps.dispatcher.waiting,
    }),
    ...authRoutes(params.deps, params.auth),
    ...bulkRoutes(params.deps),
    ...jobRoutes(params.deps),
    ...nodeRoutes(params.deps),
    ...scheduleRoutes(params.deps),
    ...typeRoutes(params.deps),
  );
  return routes;
}

/** Nothing the dashboard loads may come from another host (its files set their own caching). */
const DASHBOARD_HEADERS: Record<string, string> = {
  "Content-Security-Policy":
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
};

/** Auth off: a request addressed to any other name is refused, whatever its path (see auth/loopback.ts). */
const loopbackHostOnly: RequestHandler = (req, _res, next) => {
  if (!isLoopbackHostHeader(req.headers.host)) {
    throw forbidden("auth is off: this master answers only requests addressed to localhost or a loopback address");
  }
  next();
};

/** The dashboard's files, built into dist/dashboard by npm run build (which npm install runs). */
function dashboard(): RequestHandler[] {
  const dir = join(packageRoot(), "dist", "dashboard");
  if (!existsSync(join(dir, "index.html"))) {
    return [
      (req, res, next) => {
        if (req.method !== "GET" || req.path !== "/") return next();
        res.status(404).type("text/plain").send("The dashboard is not built: run npm run build.\n");
      },
    ];
  }
  return [
    express.static(dir, {
      index: "index.html",
      // Only on the files it serves: a path it does not have falls through to the 404 problem.
      setHeaders: (res, path) => {
        for (const [name, value] of Object.entries(DASHBOARD_HEADERS)) res.setHeader(name, value);
        // Hashed file names under assets/ never change; index.html must always be fresh.
        res.setHeader("Cache-Control", path.includes(`${join("dashboard", "assets")}`) ? "public, max-age=31536000, immutable" : "no-cache");
      },
    }),
  ];
}

export function createApp(params: AppParams): { app: Express; routes: Route[] } {
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);
  app.set("trust proxy", "loopback");
  secureAnswers(app);
  if (params.deps.config.auth === "off") app.use(loopbackHostOnly);
  const routes = allRoutes(params);
  // On a Router of their own, mounted in the application: its automatic OPTIONS answer (the
  // methods a path takes) comes before the dashboard and the 404 (mounting them on the
  // application's router saved a little garbage a request, within the noise, and lost it).
  const router = express.Router();
  mountRoutes(router, routes, {
    authenticator: params.authenticator,
    maxPayloadBytes: params.deps.config.maxPayloadBytes,
    maxBatchBytes: params.deps.config.maxBatchBytes,
    clientMaxBatchBytes: params.deps.config.clientMaxBatchBytes,
    guards: params.guards,
    onResponse: (spec, status, durationS) =>
      params.deps.metrics.httpDuration.observe({ method: spec.method.toUpperCase(), route: spec.path, status: String(status) }, durationS),
  });
  app.use(router);
  app.use(...dashboard());
  app.use(() => {
    throw notFound("route");
  });
  app.use(problemHandler(params.deps.log, params.onError));
  return { app, routes };
}
