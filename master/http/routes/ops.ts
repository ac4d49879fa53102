// Operations: /health, /ready, /metrics, /openapi.json (public), and the master's state and mode (admin).
import { z } from "zod";
import { FAIR_SHARE_MODES } from "../../queue/fair-share.js";
import { MODES } from "../../modes.js";
import type { HttpDeps } from "../deps.js";
import { problemSchema, unavailable } from "../problem.js";
import { ok, route, type Route } from "../route.js";
import { healthSchema } from "../schemas.js";
import { problemResponses } from "./common.js";

export interface OpsParams {
  isReady: () => boolean;
  openApi: () => Record<string, unknown>;
  version: string;
  startedAt: Date;
  /** Each background service's last runs, for GET /api/v1/state. */
  services: () => Record<string, unknown>;
  waitingClaims: () => number;
}

/** How long /ready's look at the database stands for the next probes. */
export const READY_PING_MEMO_MS = 1_000;
/** How long /ready waits for the database before it answers 503. */
export const READY_PING_TIMEOUT_MS = 2_000;

/**
 * /ready's look at the database: /ready is public, so however many probes come, one ping at a
 * time is in flight, its answer stands for `memoMs`, and a ping that takes more than
 * `timeoutMs` answers "unavailable" at once to every probe until it settles (a new one starts
 * only then: a silent database is not sent a ping per probe).
 */
export class SharedPing {
  private inFlight: { done: Promise<void>; startedAt: number } | undefined;
  private last: { at: number; error: unknown } | undefined;

  constructor(
    private readonly ping: () => Promise<void>,
    private readonly memoMs = READY_PING_MEMO_MS,
    private readonly timeoutMs = READY_PING_TIMEOUT_MS,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Resolves if the database answered, lately or now, in time; else throws. */
  async check(): Promise<void> {
    const last = this.last;
    if (last && this.now() - last.at < this.memoMs) {
      if (last.error !== undefined) throw last.error;
      return;
    }
    const flight = (this.inFlight ??= this.start());
    const left = this.timeoutMs - (this.now() - flight.startedAt);
    if (left <= 0) throw this.late();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(this.late()), left)));
    try {
      await Promise.race([flight.done, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  private start(): { done: Promise<void>; startedAt: number } {
    const settle = (error: unknown) => {
      this.last = { at: this.now(), error };
      this.inFlight = undefined;
    };
    const done = this.ping().then(
      () => settle(undefined),
      (error: unknown) => {
        settle(error ?? new Error("the ping failed"));
        throw error;
      },
    );
    // Probes that stopped waiting leave its failure unheard.
    done.catch(() => undefined);
    return { done, startedAt: this.now() };
  }

  private late(): Error {
    return unavailable(`the database did not answer within ${this.timeoutMs / 1000} s`);
  }
}

const modeSchema = z.object({ mode: z.enum(MODES) }).strict();

const stateSchema = z.object({
  mode: z.enum(MODES),
  mode_reason: z.string().nullable(),
  mode_since: z.string(),
  /** Dispatch within one priority (API.md §5a), as the database holds it. */
  fair_share: z.enum(FAIR_SHARE_MODES),
  version: z.string(),
  uptime_s: z.number(),
  db: z.record(z.string(), z.unknown()),
  sweepers: z.record(z.string(), z.unknown()),
  counts: z.record(z.string(), z.unknown()),
});

export function opsRoutes(deps: HttpDeps, params: OpsParams): Route[] {
  const ping = new SharedPing(() => deps.store.ping());
  const state = async () => {
    const mode = deps.modes.current;
    const stats = await deps.store.jobs.stats();
    return {
      mode: mode.mode,
      mode_reason: mode.reason,
      mode_since: mode.since,
      fair_share: await deps.store.jobs.fairShare(),
      version: params.version,
      uptime_s: Math.round((deps.clock.now().getTime() - params.startedAt.getTime()) / 100) / 10,
      db: await deps.store.describe(),
      sweepers: params.services(),
      counts: { jobs: stats.jobs, nodes: stats.nodes, pending_by_priority: stats.pending_by_priority, waiting_claims: params.waitingClaims() },
    };
  };
  return [
    route(
      {
        method: "get",
        path: "/health",
        summary: "The process runs (and whether it asks for credentials, for the dashboard's first page)",
        tag: "operations",
        auth: "public",
        responses: { 200: { description: "Alive", schema: healthSchema } },
      },
      async () => ok({ status: "ok", auth: deps.config.auth }),
    ),
    route(
      {
        method: "get",
        path: "/ready",
        summary: "The database is open, migrated and answering, and takes writes",
        tag: "operations",
        auth: "public",
        responses: {
          200: { description: "Ready", schema: healthSchema },
          503: { description: "Not ready, or read-only", schema: problemSchema },
        },
      },
      async () => {
        if (!params.isReady()) throw unavailable("the master is not ready");
        // A PostgreSQL server that is gone or silent (a failover under way): a load balancer sends elsewhere.
        await ping.check();
        const mode = deps.modes.current;
        if (mode.mode === "read_only") throw unavailable(`the master is read-only: ${mode.reason ?? "set by an admin"}`);
        return ok({ status: "ready", mode: mode.mode });
      },
    ),
    route(
      {
        method: "get",
        path: "/metrics",
        summary: "Prometheus metrics",
        tag: "operations",
        auth: "public",
        responses: { 200: { description: "Prometheus text format" } },
      },
      async () => ({ status: 200, raw: { contentType: deps.metrics.contentType, text: await deps.metrics.text() } }),
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
    route(
      {
        method: "get",
        path: "/api/v1/state",
        summary: "Mode, version, uptime, database, sweepers and counts",
        tag: "operations",
        auth: ["admin"],
        responses: { 200: { description: "The master's state", schema: stateSchema }, ...problemResponses },
      },
      async () => ok(await state()),
    ),
    route(
      {
        method: "put",
        path: "/api/v1/state/mode",
        summary: "Set the mode: normal, paused (no jobs handed out) or read_only (writes refused)",
        tag: "operations",
        auth: ["admin"],
        body: modeSchema,
        readOnlyAllowed: true,
        responses: { 200: { description: "The master's state", schema: stateSchema }, ...problemResponses },
      },
      async ({ body, principal }) => {
        const outcome = await deps.modes.set(body.mode, principal.clientId);
        if (!outcome.ok) throw unavailable(outcome.detail);
        // Paused claims waited without taking anything: they look again now.
        if (body.mode === "normal") deps.dispatcher.notify();
        return ok(await state());
      },
    ),
  ];
}
