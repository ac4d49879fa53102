// Routes are declared once, with their schemas and who may call them. The same
// declarations mount the express handlers, build /openapi.json, and let a test
// walk every route for auth: no route can exist outside this list.
import type { IncomingMessage } from "node:http";
import express, { type ErrorRequestHandler, type NextFunction, type Request, type RequestHandler, type Response, type Router } from "express";
import type { z } from "zod";
import type { Authenticator, Principal } from "../auth/principal.js";
import type { Role } from "../store/types.js";
import { writeJsonHead } from "./headers.js";
import { LONG_ANSWER_CHARS } from "./json-list.js";
import { badRequest, fieldErrors, forbidden, ProblemError } from "./problem.js";

export type Method = "get" | "post" | "put" | "patch" | "delete";

export interface ResponseSpec {
  description: string;
  schema?: z.ZodType;
}

export interface RouteSpec<B extends z.ZodType | undefined, Q extends z.ZodType | undefined> {
  method: Method;
  /** Express syntax: /api/v1/jobs/:id */
  path: string;
  summary: string;
  tag: string;
  /** The roles allowed; "public" routes need no token (API.md §1 names them). */
  auth: readonly Role[] | "public";
  body?: B;
  query?: Q;
  responses: Record<number, ResponseSpec>;
  /**
   * Batch routes accept bodies up to GAFFER_MAX_BATCH_BYTES instead of GAFFER_MAX_PAYLOAD_BYTES
   * (up to GAFFER_CLIENT_MAX_BATCH_BYTES from a `client` role).
   */
  largeBody?: boolean;
  /** A tighter body limit than GAFFER_MAX_PAYLOAD_BYTES, for a public route read before any rate limit. */
  maxBodyBytes?: number;
  /** Whether it changes state (refused in read_only mode). Default: every method but GET. */
  writes?: boolean;
  /** Served even in read_only mode (the call that leaves it). */
  readOnlyAllowed?: boolean;
}

/** Whether a route changes state. */
export function isWrite(spec: Pick<RouteSpec<undefined, undefined>, "method" | "writes">): boolean {
  return spec.writes ?? spec.method !== "get";
}

type Infer<S> = S extends z.ZodType ? z.output<S> : undefined;

export interface RouteInput<B, Q> {
  body: Infer<B>;
  query: Infer<Q>;
  params: Record<string, string>;
  principal: Principal;
  req: Request;
  res: Response;
  /** Aborted when the client goes away before the answer. */
  signal: AbortSignal;
}

export interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** Sent as is with this content type (for non-JSON answers). */
  raw?: { contentType: string; text: string };
  /** A JSON answer already encoded (its parts kept as JSON text: okJson), as text or as UTF-8 bytes, sent as `body` would be. */
  json?: string | Buffer;
}

export interface Route {
  spec: RouteSpec<z.ZodType | undefined, z.ZodType | undefined>;
  handler: (input: RouteInput<unknown, unknown>) => Promise<Reply>;
}

export function route<B extends z.ZodType | undefined = undefined, Q extends z.ZodType | undefined = undefined>(
  spec: RouteSpec<B, Q>,
  handler: (input: RouteInput<B, Q>) => Promise<Reply>,
): Route {
  return { spec, handler } as unknown as Route;
}

export const ok = (body: unknown): Reply => ({ status: 200, body });
/** A 200 whose JSON text is made already (the claim's answer, its payloads as they are kept). */
export const okJson = (json: string | Buffer): Reply => ({ status: 200, json });
export const created = (body: unknown): Reply => ({ status: 201, body });
/** A 201 whose JSON text is made already (a submit's answer, its payloads' text the one made for the store). */
export const createdJson = (json: string | Buffer): Reply => ({ status: 201, json });

/** A principal-less placeholder for public routes; their handlers must not use it. */
const NOBODY: Principal = Object.freeze({ clientId: "", role: "client" as const });

/** Where the prologue keeps, in res.locals, when it started (performance.now()). */
const STARTED = "gafferStartedAt";

export type { Principal } from "../auth/principal.js";

export interface MountParams {
  authenticator: Authenticator;
  maxPayloadBytes: number;
  maxBatchBytes: number;
  /** The body limit of a batch route for the `client` role (API.md §4): smaller than maxBatchBytes. */
  clientMaxBatchBytes?: number;
  /** Checks run on every authenticated request before its body is read (rate limits, modes). */
  guards?: ((req: Request, res: Response, principal: Principal, spec: Route["spec"]) => void | Promise<void>)[];
  /** Nesting depth allowed in a JSON body (deeper bodies get 400, never a stack overflow). */
  maxJsonDepth?: number;
  /** Called when each answer has gone out (metrics). */
  onResponse?: (spec: Route["spec"], status: number, durationS: number) => void;
}

const DEFAULT_MAX_JSON_DEPTH = 64;

/**
 * Whether a parsed JSON value holds an object or array `max` levels below the top (the top one
 * is level 0). Recursive, but never deeper than `max`: it stops there. It makes no array or pair
 * per value, as a walk with a stack of [value, depth] did (bench/README.md, "21:05–22:10").
 */
export function exceedsDepth(value: unknown, max: number): boolean {
  return value !== null && typeof value === "object" && deeper(value, max);
}

/** Whether this object or array, with `left` levels allowed from it, goes past them. */
function deeper(value: object, left: number): boolean {
  if (left <= 0) return true;
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index++) {
      const item: unknown = value[index];
      if (item !== null && typeof item === "object" && deeper(item, left - 1)) return true;
    }
    return false;
  }
  // for…in: JSON.parse makes plain objects, whose prototype has no enumerable keys (for…in would
  // walk those too), and an own "__proto__" key reads as its own value.
  for (const key in value) {
    const child = (value as Record<string, unknown>)[key];
    if (child !== null && typeof child === "object" && deeper(child, left - 1)) return true;
  }
  return false;
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers["content-length"];
  return (length !== undefined && length !== "0") || req.headers["transfer-encoding"] !== undefined;
}

function isJson(req: IncomingMessage): boolean {
  const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  return type === "application/json" || (type.startsWith("application/") && type.endsWith("+json"));
}

function parse<S extends z.ZodType>(schema: S, value: unknown, where: string): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) {
    throw badRequest(`the ${where} is not valid`, fieldErrors(result.error));
  }
  return result.data;
}

/** The paths workers and submitters hit thousands of times a second: matched first. */
const HOT_PATHS = [
  "/api/v1/nodes/:id/claim",
  "/api/v1/nodes/:id/results",
  "/api/v1/nodes/:id/heartbeat",
  "/api/v1/jobs",
  "/api/v1/jobs/batch",
  "/api/v1/jobs/:id/complete",
  "/api/v1/jobs/:id/fail",
];

function hotFirst(routes: Route[]): Route[] {
  const rank = (route: Route) => {
    const at = HOT_PATHS.indexOf(route.spec.path);
    return at === -1 ? HOT_PATHS.length : at;
  };
  return [...routes].sort((a, b) => rank(a) - rank(b));
}

/**
 * A batch route's body parser: a `client` role's body is held to the smaller limit, and
 * a refusal names the setting (the parser runs after authentication, so the role is known).
 */
function batchParser(large: RequestHandler, clientMaxBatchBytes: number | undefined, maxBatchBytes: number): RequestHandler {
  if (clientMaxBatchBytes === undefined || clientMaxBatchBytes >= maxBatchBytes) return large;
  const limit = clientMaxBatchBytes;
  const forClients = express.json({ limit, type: isJson, strict: false });
  return (req, res, next) => {
    if ((res.locals.principal as Principal | undefined)?.role !== "client") return large(req, res, next);
    forClients(req, res, (error?: unknown) => {
      if ((error as { type?: string } | undefined)?.type !== "entity.too.large") return next(error);
      next(new ProblemError("payload_too_large", `a batch from a client is at most ${limit} bytes (GAFFER_CLIENT_MAX_BATCH_BYTES): send fewer jobs at once`));
    });
  };
}

/**
 * A handler's input. Its abort signal is made only if the handler asks for it (most never
 * do); a class, so that a request makes no closures and no accessor of its own for it.
 */
class Input implements RouteInput<unknown, unknown> {
  private controller: AbortController | undefined;

  constructor(
    readonly body: undefined,
    readonly query: undefined,
    readonly params: Record<string, string>,
    readonly principal: Principal,
    readonly req: Request,
    readonly res: Response,
  ) {}

  get signal(): AbortSignal {
    if (!this.controller) {
      const made = new AbortController();
      this.controller = made;
      const res = this.res;
      if (res.writableFinished || res.destroyed) made.abort();
      res.on("close", () => {
        if (!res.writableFinished) made.abort();
      });
    }
    return this.controller.signal;
  }
}

export function mountRoutes(router: Router, routes: Route[], params: MountParams): void {
  const maxDepth = params.maxJsonDepth ?? DEFAULT_MAX_JSON_DEPTH;
  const parsers = {
    small: express.json({ limit: params.maxPayloadBytes + 64 * 1024, type: isJson, strict: false }),
    large: express.json({ limit: params.maxBatchBytes, type: isJson, strict: false }),
  };
  const batch = batchParser(parsers.large, params.clientMaxBatchBytes, params.maxBatchBytes);
  const onResponse = params.onResponse;
  for (const { spec, handler } of hotFirst(routes)) {
    const chain: (RequestHandler | ErrorRequestHandler)[] = [];
    // A request is timed from its prologue. A JSON answer is observed as it is written, any
    // other (a problem, a raw text) once it has gone out: no listener a request on the hot
    // routes' way. Each request is observed once (its start is taken when it is).
    const observe = (res: Response, status: number) => {
      const started = res.locals[STARTED] as number | undefined;
      if (!onResponse || started === undefined) return;
      res.locals[STARTED] = undefined;
      onResponse(spec, status, (performance.now() - started) / 1000);
    };
    const observeOnFinish = (res: Response) => {
      if (!onResponse || res.locals[STARTED] === undefined) return;
      if (res.writableFinished) observe(res, res.statusCode);
      else res.once("finish", () => observe(res, res.statusCode));
    };
    // One prologue: timing, authentication, role, guards, and the body's type, before the body is read.
    chain.push(async (req: Request, res: Response, next: NextFunction) => {
      if (onResponse) res.locals[STARTED] = performance.now();
      if (spec.auth !== "public") {
        const principal = await params.authenticator.authenticate(req);
        if (!spec.auth.includes(principal.role)) throw forbidden();
        res.locals.principal = principal;
        for (const guard of params.guards ?? []) await guard(req, res, principal, spec);
      }
      if (spec.body && hasBody(req) && !isJson(req)) {
        throw new ProblemError("unsupported_media_type", "send the body as application/json");
      }
      next();
    });
    if (spec.body) {
      const parser =
        spec.maxBodyBytes !== undefined
          ? express.json({ limit: spec.maxBodyBytes, type: isJson, strict: false })
          : spec.largeBody
            ? batch
            : parsers.small;
      chain.push(parser);
    }
    chain.push(async (req: Request, res: Response) => {
      let body: unknown;
      if (spec.body) {
        const raw: unknown = req.body === undefined ? {} : req.body;
        if (exceedsDepth(raw, maxDepth)) throw badRequest(`the body is nested deeper than ${maxDepth} levels`);
        body = parse(spec.body, raw, "body");
      }
      const query = spec.query ? parse(spec.query, { ...req.query }, "query") : undefined;
      const principal = (res.locals.principal as Principal | undefined) ?? NOBODY;
      const reply = await handler(new Input(body as undefined, query as undefined, req.params as Record<string, string>, principal, req, res));
      if (res.headersSent || res.destroyed) return observeOnFinish(res);
      if (reply.headers) for (const name in reply.headers) res.setHeader(name, reply.headers[name] as string);
      if (reply.raw) {
        observeOnFinish(res);
        res.status(reply.status).type(reply.raw.contentType).send(reply.raw.text);
      } else if (reply.body === undefined && reply.json === undefined) {
        observeOnFinish(res);
        res.status(reply.status).end();
      } else {
        // Straight to the socket: express's send() (negotiation, freshness, ETag) costs a sixth
        // of a submission's time, for answers that never need it.
        // A long answer is encoded once, not counted by Buffer.byteLength and then encoded
        // again by end(); a short one stays text, written with its headers in one write.
        const json = reply.json ?? JSON.stringify(reply.body);
        const body = typeof json === "string" && json.length > LONG_ANSWER_CHARS ? Buffer.from(json) : json;
        writeJsonHead(res, reply.status, typeof body === "string" ? Buffer.byteLength(body) : body.length);
        res.end(body);
        observe(res, reply.status);
      }
    });
    // Whatever failed on the way (the prologue, the body, the handler) is timed too, then
    // goes on to the problem handler.
    chain.push((error: unknown, _req: Request, res: Response, next: NextFunction) => {
      observeOnFinish(res);
      next(error);
    });
    router[spec.method](spec.path, ...chain);
  }
}
