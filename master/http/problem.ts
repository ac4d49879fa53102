// Errors are typed once: a ProblemError carries status, code and detail, and one
// express error handler turns it (and every other error) into an RFC 9457 document.
import type { ErrorRequestHandler, Response } from "express";
import { z } from "zod";
import type { Logger } from "../log.js";
import { AuthenticationError, RateLimitedError } from "../auth/principal.js";
import { InvalidCursorError, StorageUnavailableError, StorageUnreachableError, UnstorableValueError } from "../store/types.js";

export const PROBLEM_CODES = {
  invalid_request: { status: 400, title: "Invalid request" },
  unauthorized: { status: 401, title: "Unauthorized" },
  forbidden: { status: 403, title: "Forbidden" },
  not_found: { status: 404, title: "Not found" },
  conflict: { status: 409, title: "Conflict" },
  payload_too_large: { status: 413, title: "Payload too large" },
  unsupported_media_type: { status: 415, title: "Unsupported media type" },
  rate_limited: { status: 429, title: "Too many requests" },
  quota_exceeded: { status: 429, title: "Quota exceeded" },
  unavailable: { status: 503, title: "Service unavailable" },
  internal: { status: 500, title: "Internal server error" },
} as const;

export type ProblemCode = keyof typeof PROBLEM_CODES;

export interface FieldError {
  path: string;
  message: string;
}

export class ProblemError extends Error {
  readonly status: number;

  constructor(
    readonly code: ProblemCode,
    readonly detail: string,
    readonly errors?: FieldError[],
    readonly headers?: Record<string, string>,
  ) {
    super(detail);
    this.status = PROBLEM_CODES[code].status;
  }
}

export const badRequest = (detail: string, errors?: FieldError[]) => new ProblemError("invalid_request", detail, errors);
export const notFound = (what: string) => new ProblemError("not_found", `${what} not found`);
export const conflict = (detail: string) => new ProblemError("conflict", detail);
export const forbidden = (detail = "your role may not do this") => new ProblemError("forbidden", detail);
export const unauthorized = (detail: string) =>
  new ProblemError("unauthorized", detail, undefined, { "WWW-Authenticate": 'Bearer realm="gaffer"' });
export const unavailable = (detail: string) => new ProblemError("unavailable", detail);

export const problemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.int(),
    detail: z.string(),
    code: z.enum(Object.keys(PROBLEM_CODES) as [ProblemCode, ...ProblemCode[]]),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  })
  .meta({ id: "Problem" });

export function fieldErrors(error: z.ZodError, prefix: (string | number)[] = []): FieldError[] {
  const join = (path: PropertyKey[]) => [...prefix, ...path].map(String).join(".") || "(body)";
  return error.issues.flatMap((issue) =>
    issue.code === "unrecognized_keys"
      ? issue.keys.map((key) => ({ path: join([...issue.path, key]), message: "unknown field" }))
      : [{ path: join(issue.path), message: issue.message }],
  );
}

export function sendProblem(res: Response, problem: ProblemError): void {
  const spec = PROBLEM_CODES[problem.code];
  // Nothing set for the answer that failed goes with the problem (a dashboard file's year of
  // caching, its ETag or Content-Range on a refused range): the problem's own headers, and the
  // security and rate-limit headers every answer gets when it is written (headers.ts).
  for (const name of res.getHeaderNames()) res.removeHeader(name);
  for (const [name, value] of Object.entries(problem.headers ?? {})) res.setHeader(name, value);
  res
    .status(spec.status)
    .type("application/problem+json")
    .send(
      JSON.stringify({
        type: `urn:gaffer:problem:${problem.code}`,
        title: spec.title,
        status: spec.status,
        detail: problem.detail,
        code: problem.code,
        ...(problem.errors && problem.errors.length > 0 ? { errors: problem.errors } : {}),
      }),
    );
}

interface BodyParserError extends Error {
  type?: string;
  status?: number;
  limit?: number;
}

/** Turn anything thrown into a problem document; only the unexpected is a 500. */
export function toProblem(error: unknown): ProblemError | undefined {
  if (error instanceof ProblemError) return error;
  if (error instanceof z.ZodError) return badRequest("the request is not valid", fieldErrors(error));
  if (error instanceof InvalidCursorError) return badRequest(error.message, [{ path: "cursor", message: error.message }]);
  if (error instanceof AuthenticationError) return unauthorized(error.message);
  if (error instanceof StorageUnavailableError) {
    return unavailable("the database refuses writes; the master is read-only until an admin sets mode normal");
  }
  if (error instanceof StorageUnreachableError) {
    return new ProblemError("unavailable", "the database cannot be reached just now; try again", undefined, { "Retry-After": "1" });
  }
  if (error instanceof UnstorableValueError) {
    return new ProblemError("invalid_request", error.message);
  }
  if (error instanceof RateLimitedError) {
    return new ProblemError("rate_limited", error.message, undefined, { ...error.headers, "Retry-After": String(error.retryAfterS) });
  }
  const parserError = error as BodyParserError;
  switch (parserError?.type) {
    case "entity.parse.failed":
      return badRequest(`the body is not valid JSON: ${parserError.message}`);
    case "entity.too.large":
      return new ProblemError("payload_too_large", `the body is larger than ${parserError.limit ?? "the limit of"} bytes`);
    case "encoding.unsupported":
    case "charset.unsupported":
      return new ProblemError("unsupported_media_type", parserError.message);
    case "request.aborted":
    case "request.size.invalid":
    case "stream.encoding.set":
      return badRequest(parserError.message);
  }
  if (typeof parserError?.status === "number" && parserError.status >= 400 && parserError.status < 500) {
    return badRequest(parserError.message);
  }
  return undefined;
}

export function problemHandler(log: Logger, onError?: (error: unknown) => void): ErrorRequestHandler {
  return (error, req, res, _next) => {
    onError?.(error);
    let problem = toProblem(error);
    if (!problem) {
      log.error({ event: "http.error", err: error, method: req.method, path: req.path }, "unexpected error");
      problem = new ProblemError("internal", "the master failed to handle this request; it is logged");
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    sendProblem(res, problem);
  };
}
