// What a call to the master throws: every failure is a GafferError (API.md §1, §10).

/** One field's complaint in a problem document (`errors[]`). */
export interface FieldError {
  path: string;
  message: string;
}

/** The fields of an RFC 9457 problem document as the master writes them (API.md §1). */
export interface ProblemDocument {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  code?: string;
  errors?: FieldError[];
}

/**
 * The master answered with a problem document (`status` is its HTTP status and
 * `code` one of API.md §1's), or, for the subclasses below, gave no answer.
 */
export class GafferError extends Error {
  override name = "GafferError";
  readonly title: string;
  readonly type: string | undefined;

  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
    readonly errors: FieldError[] = [],
    problem: { title?: string | undefined; type?: string | undefined; cause?: unknown } = {},
  ) {
    // An error the detail already states is not said twice (a bad cron expression's message).
    const more = errors.filter((e) => !detail.includes(e.message));
    const fields = more.length > 0 ? ` (${more.map((e) => `${e.path}: ${e.message}`).join("; ")})` : "";
    // Status 0 is no answer at all: the detail says what happened.
    super(status === 0 ? detail : `${status} ${code}: ${detail}${fields}`, { cause: problem.cause });
    this.title = problem.title ?? code;
    this.type = problem.type;
  }

  /** From an answer's status and body (a problem document, or anything else the master or a proxy sent). */
  static fromAnswer(status: number, text: string): GafferError {
    const problem = parseProblem(text);
    return new GafferError(status, problem.code ?? `http_${status}`, problem.detail ?? (text || `HTTP ${status}`), problem.errors ?? [], {
      title: problem.title,
      type: problem.type,
    });
  }
}

/** No answer from the master after every try (refused, reset, cut off, timed out): `status` 0, the reason in `cause`. */
export class GafferConnectionError extends GafferError {
  override name = "GafferConnectionError";
  constructor(
    readonly url: string,
    cause: unknown,
  ) {
    super(0, "unreachable", `cannot reach the master at ${url}: ${cause instanceof Error ? cause.message : String(cause)}`, [], { cause });
  }
}

/** `wait()` ran out of time before the job reached a final state; `job` is how it was last seen. */
export class GafferWaitTimeoutError<TJob extends { id: string; status: string }> extends GafferError {
  override name = "GafferWaitTimeoutError";
  constructor(readonly job: TJob) {
    super(0, "wait_timeout", `job ${job.id} is still ${job.status}`);
  }
}

/** The master refused to exchange the client id and secret for a token (wrong, or the client is disabled). */
export class CredentialsRefusedError extends GafferError {
  override name = "CredentialsRefusedError";
  constructor(
    error: GafferError,
    readonly clientId: string,
  ) {
    super(error.status, error.code, error.detail, error.errors, { title: error.title, type: error.type });
  }
}

/** The master wants credentials and the client was given none to send. */
export class NoCredentialsError extends GafferError {
  override name = "NoCredentialsError";
  constructor(error: GafferError) {
    super(error.status, error.code, error.detail, error.errors, { title: error.title, type: error.type });
  }
}

function parseProblem(text: string): ProblemDocument {
  try {
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed !== "object" || parsed === null) return {};
    const problem = parsed as Record<string, unknown>;
    const text_ = (key: string) => (typeof problem[key] === "string" ? problem[key] : undefined);
    const errors = Array.isArray(problem.errors)
      ? problem.errors
          .filter((e): e is Record<string, unknown> => typeof e === "object" && e !== null)
          .map((e) => ({ path: String(e.path ?? ""), message: String(e.message ?? "") }))
      : undefined;
    return { type: text_("type"), title: text_("title"), detail: text_("detail"), code: text_("code"), ...(errors ? { errors } : {}) };
  } catch {
    return {};
  }
}
