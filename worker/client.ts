// A typed client of the master's REST API, used by the worker and the CLI:
// access tokens fetched and refreshed before they expire, retries with backoff
// for calls that are safe to repeat, and a circuit breaker shared by all calls.
import http, { type IncomingHttpHeaders } from "node:http";
import https from "node:https";
import type { Logger } from "pino";
import type {
  AuditEntry,
  CancelNotice,
  ClaimedJob,
  Job,
  JobAttempt,
  JobError,
  JobEvent,
  JobTypeInfo,
  Node,
  Page,
  QueueStats,
} from "../master/store/types.js";
import type { WhyAnswer } from "../master/queue/why.js";
import {
  backoffDelayMs,
  CircuitBreaker,
  DEFAULT_BACKOFF,
  sleep,
  type BackoffParams,
  type CircuitOpenError,
} from "./resilience.js";

export type { AuditEntry, CancelNotice, ClaimedJob, Job, JobAttempt, JobError, JobEvent, Node, Page, QueueStats };

/** The master answered with a problem document (4xx, or a 5xx after the retries). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
    readonly errors: { path: string; message: string }[] = [],
  ) {
    // An error the detail already states is not said twice (a bad cron expression's message).
    const more = errors.filter((e) => !detail.includes(e.message));
    super(`${status} ${code}: ${detail}${more.length > 0 ? ` (${more.map((e) => `${e.path}: ${e.message}`).join("; ")})` : ""}`);
  }
}

/** The master refused to exchange the client id and secret for a token (wrong, or the client is disabled). */
export class CredentialsRefusedError extends ApiError {
  constructor(
    error: ApiError,
    readonly clientId: string,
  ) {
    super(error.status, error.code, error.detail, error.errors);
  }
}

/** The master wants credentials and the client was given none to send. */
export class NoCredentialsError extends ApiError {
  constructor(error: ApiError) {
    super(error.status, error.code, error.detail, error.errors);
  }
}

/** No answer from the master after every attempt. */
export class MasterUnreachableError extends Error {
  constructor(
    readonly url: string,
    override readonly cause: unknown,
  ) {
    super(`cannot reach the master at ${url}: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}

export interface ClientOptions {
  masterUrl: string;
  clientId?: string | undefined;
  clientSecret?: string | undefined;
  /** A ready access token (GAFFER_TOKEN); used as is, never refreshed. */
  token?: string | undefined;
  /** Keeps the token fetched with the client id and secret between processes (the CLI's cache file). */
  tokenCache?: TokenCache | undefined;
  log?: Logger | undefined;
  /** Attempts per safe call before giving up (default 4). */
  attempts?: number;
  backoff?: BackoffParams;
  breaker?: CircuitBreaker;
  /** Per-request timeout (long-poll claims add their wait). Default 30 s. */
  timeoutMs?: number;
  /**
   * Close a kept-alive connection after this long unused (default 4 s): before the
   * master's own idle limit (Node's 5 s), so that a call never goes out on a
   * connection the master is closing at that moment ("socket hang up").
   */
  idleConnectionMs?: number;
}

export interface RequestOptions {
  body?: unknown;
  query?: Record<string, string | number | undefined>;
  /** "safe": retried on network errors, 5xx and 429; "never": one attempt (a repeat could do the work twice). */
  retry?: "safe" | "never";
  timeoutMs?: number;
  signal?: AbortSignal | undefined;
  /** Go out even while the circuit is open, and let the answer close it (periodic calls like heartbeats are the probe). */
  probe?: boolean;
}

/** An access token and when to stop using it. */
export interface CachedToken {
  value: string;
  expiresAt: number;
  /** Fetch a new one from this time on (shortly before it expires). */
  refreshAt: number;
}

/** Where a client keeps its token between processes; a token the master refuses is replaced. */
export interface TokenCache {
  load(): CachedToken | undefined;
  save(token: CachedToken): void;
}

export interface TokenResponse {
  access_token: string;
  token_type: "Bearer";
  expires_in: number;
  expires_at: string;
}

export interface ReportItem {
  job_id: string;
  attempt: number;
  status: "completed" | "failed";
  result?: unknown;
  error?: JobError;
  log_tail?: string;
}

export interface HeartbeatReply {
  status: "online" | "draining";
  heartbeat_interval_s: number;
  cancel: CancelNotice[];
}

/** Refresh a token this long before it expires. */
const TOKEN_REFRESH_MARGIN_MS = 60_000;
const RETRYABLE_STATUS = new Set([429, 500, 502, 503, 504]);
const DEFAULT_IDLE_CONNECTION_MS = 4000;

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

/**
 * One HTTP exchange over a kept-alive connection, with node:http(s) rather than
 * fetch: for a claim's answer of 100 jobs fetch cost 1.3 ms of CPU a call here,
 * node:http 0.5 ms (its web streams and per-request objects), and a worker
 * shares the machine with the jobs it runs.
 */
function exchange(
  url: URL,
  agents: { http: http.Agent; https: https.Agent },
  init: { method: string; headers: Record<string, string>; body?: string; signal: AbortSignal },
): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    const secure = url.protocol === "https:";
    if (!secure && url.protocol !== "http:") return reject(new Error(`unsupported protocol ${url.protocol}`));
    const headers = init.body === undefined ? init.headers : { ...init.headers, "content-length": String(Buffer.byteLength(init.body)) };
    const options = { method: init.method, headers, signal: init.signal };
    const onResponse = (response: http.IncomingMessage) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("error", reject);
      response.on("close", () => {
        // Cut off before its end (the master went away, or the call was aborted): no answer.
        if (!response.complete) return reject(new Error("the connection closed before the whole answer arrived"));
        resolve({ status: response.statusCode ?? 0, headers: response.headers, text: Buffer.concat(chunks).toString("utf8") });
      });
    };
    const request = secure
      ? https.request(url, { ...options, agent: agents.https }, onResponse)
      : http.request(url, { ...options, agent: agents.http }, onResponse);
    request.on("error", reject);
    request.end(init.body);
  });
}

export class MasterClient {
  readonly baseUrl: string;
  readonly breaker: CircuitBreaker;
  private token: CachedToken | undefined;
  /** The cache is read once: after that, a token it gave and the master refused is not taken again. */
  private cacheRead = false;
  private refreshing: Promise<string> | undefined;
  /** Connections kept open between calls (idle ones do not keep the process alive). */
  private readonly agents: { http: http.Agent; https: https.Agent };

  constructor(private readonly options: ClientOptions) {
    this.baseUrl = options.masterUrl.replace(/\/+$/, "");
    this.breaker = options.breaker ?? new CircuitBreaker();
    // The agents' `timeout` applies to unused connections only; a long poll in flight is not cut.
    const agentOptions = { keepAlive: true, timeout: options.idleConnectionMs ?? DEFAULT_IDLE_CONNECTION_MS };
    this.agents = { http: new http.Agent(agentOptions), https: new https.Agent(agentOptions) };
  }

  /** One call to the master; throws ApiError for problem answers, MasterUnreachableError when it never answered. */
  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const attempts = options.retry === "never" ? 1 : (this.options.attempts ?? 4);
    let lastError: unknown;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (options.signal?.aborted) throw new MasterUnreachableError(this.baseUrl, new Error("aborted"));
      try {
        if (!options.probe) this.breaker.check();
      } catch (error) {
        lastError = error;
        if (attempt === attempts) break;
        await this.breaker.wait((error as CircuitOpenError).retryInMs, options.signal);
        continue;
      }
      try {
        return await this.attempt<T>(method, path, options, attempt === 1);
      } catch (error) {
        lastError = error;
        const retryable = !(error instanceof ApiError) || RETRYABLE_STATUS.has(error.status);
        if (!retryable || attempt === attempts) break;
        const delay =
          error instanceof RetryAfterError ? error.retryAfterMs : backoffDelayMs(attempt, this.options.backoff ?? DEFAULT_BACKOFF);
        this.options.log?.warn(
          { event: "master.retrying", method, path, attempt, delayMs: delay, err: error instanceof Error ? error.message : error },
          "retrying the master",
        );
        await sleep(delay, options.signal);
      }
    }
    // A token fetch that never got an answer already says so: not "cannot reach … cannot reach …".
    if (lastError instanceof ApiError || lastError instanceof MasterUnreachableError) throw lastError;
    throw new MasterUnreachableError(this.baseUrl, lastError);
  }

  private async attempt<T>(method: string, path: string, options: RequestOptions, mayRefresh: boolean): Promise<T> {
    const url = new URL(`${this.baseUrl}${path}`);
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const headers: Record<string, string> = { accept: "application/json" };
    const authorization = await this.authorization(path);
    if (authorization) headers.authorization = authorization;
    if (options.body !== undefined) headers["content-type"] = "application/json";
    const timeout = AbortSignal.timeout(options.timeoutMs ?? this.options.timeoutMs ?? 30_000);
    let response: Answer;
    try {
      response = await exchange(url, this.agents, {
        method,
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        signal: options.signal ? AbortSignal.any([options.signal, timeout]) : timeout,
      });
    } catch (error) {
      this.breaker.failed();
      throw error;
    }
    const { text } = response;
    if (response.status >= 500) this.breaker.failed();
    else this.breaker.succeeded();
    if (response.status >= 200 && response.status < 300) return (text === "" ? undefined : JSON.parse(text)) as T;
    const problem = parseProblem(text);
    if (response.status === 401 && mayRefresh && this.canRefresh() && !path.startsWith("/api/v1/auth/token")) {
      // The token expired or was revoked under us: one fresh token, one more try.
      this.token = undefined;
      return this.attempt<T>(method, path, options, false);
    }
    const answered = new ApiError(response.status, problem.code ?? `http_${response.status}`, problem.detail ?? text, problem.errors);
    const error = response.status === 401 && !authorization ? new NoCredentialsError(answered) : answered;
    const retryAfter = Number(response.headers["retry-after"]);
    if (response.status === 429 && Number.isFinite(retryAfter)) throw new RetryAfterError(error, retryAfter * 1000);
    throw error;
  }

  private canRefresh(): boolean {
    return this.options.token === undefined && this.options.clientId !== undefined && this.options.clientSecret !== undefined;
  }

  private async authorization(path: string): Promise<string | undefined> {
    if (this.options.token) return `Bearer ${this.options.token}`;
    if (!this.canRefresh() || path.startsWith("/api/v1/auth/token")) return undefined;
    return `Bearer ${(await this.accessToken()).value}`;
  }

  /** The token calls go out with: the one in hand or in the cache while it is fresh, else a new one. */
  async accessToken(): Promise<CachedToken> {
    if (!this.canRefresh()) throw new Error("an access token needs a client id and secret");
    if (!this.token && !this.cacheRead) {
      this.cacheRead = true;
      const cached = this.options.tokenCache?.load();
      if (cached && Date.now() < cached.refreshAt) this.token = cached;
    }
    if (!this.token || Date.now() >= this.token.refreshAt) {
      this.refreshing ??= this.fetchToken().finally(() => (this.refreshing = undefined));
      await this.refreshing;
    }
    if (!this.token) throw new Error("no access token");
    return this.token;
  }

  private async fetchToken(): Promise<string> {
    const clientId = this.options.clientId ?? "";
    const reply = await this.request<TokenResponse>("POST", "/api/v1/auth/token", {
      body: { client_id: clientId, client_secret: this.options.clientSecret },
    }).catch((error: unknown) => {
      throw error instanceof ApiError && error.status === 401 ? new CredentialsRefusedError(error, clientId) : error;
    });
    const lifetimeMs = reply.expires_in * 1000;
    // Refresh a minute early, or at 80 % of a short token's life.
    const margin = Math.min(TOKEN_REFRESH_MARGIN_MS, lifetimeMs * 0.2);
    const now = Date.now();
    this.token = { value: reply.access_token, expiresAt: now + lifetimeMs, refreshAt: now + lifetimeMs - margin };
    this.options.tokenCache?.save(this.token);
    this.options.log?.debug({ event: "auth.token_refreshed", expiresAt: reply.expires_at });
    return reply.access_token;
  }

  // ---- nodes ----

  /** One attempt, and a probe: the worker's connect loop is the retry. */
  registerNode(body: {
    name: string;
    labels: string[];
    capacity: number;
    /** The job types it runs (absent: any). */
    types?: string[];
    version?: string;
    hardware?: Record<string, unknown>;
  }) {
    return this.request<Node>("POST", "/api/v1/nodes", { body, retry: "never", probe: true });
  }

  /** One attempt: the heartbeat loop itself is the retry. */
  heartbeat(nodeId: string, running: { job_id: string; attempt: number; progress?: number; message?: string }[]) {
    return this.request<HeartbeatReply>("POST", `/api/v1/nodes/${encodeURIComponent(nodeId)}/heartbeat`, {
      body: { running },
      retry: "never",
      probe: true,
    });
  }

  /** A long-poll claim: never retried here (a repeat after a lost answer would take more jobs). */
  claim(nodeId: string, max: number, waitS: number, signal?: AbortSignal) {
    return this.request<{ items: ClaimedJob[] }>("POST", `/api/v1/nodes/${encodeURIComponent(nodeId)}/claim`, {
      body: { max, wait_s: waitS },
      retry: "never",
      timeoutMs: (waitS + 15) * 1000,
      signal,
    });
  }

  reportResults(nodeId: string, results: ReportItem[]) {
    return this.request<{ items: { job_id: string; accepted: boolean; reason?: string }[] }>(
      "POST",
      `/api/v1/nodes/${encodeURIComponent(nodeId)}/results`,
      { body: { results } },
    );
  }

  deregister(nodeId: string) {
    return this.request<Node>("POST", `/api/v1/nodes/${encodeURIComponent(nodeId)}/deregister`);
  }

  listNodes(query: { status?: string; limit?: number; cursor?: string } = {}) {
    return this.request<Page<Node>>("GET", "/api/v1/nodes", { query });
  }

  getNode(id: string) {
    return this.request<Node>("GET", `/api/v1/nodes/${encodeURIComponent(id)}`);
  }

  drainNode(id: string) {
    return this.request<Node>("POST", `/api/v1/nodes/${encodeURIComponent(id)}/drain`);
  }

  resumeNode(id: string) {
    return this.request<Node>("POST", `/api/v1/nodes/${encodeURIComponent(id)}/resume`);
  }

  // ---- jobs ----

  /** Retried only with an idempotency key, which makes a repeat harmless. */
  submitJob(body: Record<string, unknown>) {
    return this.request<Job>("POST", "/api/v1/jobs", { body, retry: body.idempotency_key ? "safe" : "never" });
  }

  submitBatch(jobs: Record<string, unknown>[]) {
    return this.request<{ items: Job[] }>("POST", "/api/v1/jobs/batch", { body: { jobs }, retry: "never" });
  }

  /** With `waitS`: answered once the job is final, or after that many seconds (GET ?wait_s=). */
  getJob(id: string, waitS?: number) {
    return this.request<Job>("GET", `/api/v1/jobs/${encodeURIComponent(id)}`, {
      query: { wait_s: waitS },
      ...(waitS === undefined ? {} : { timeoutMs: (waitS + 15) * 1000 }),
    });
  }

  listJobs(query: Record<string, string | number | undefined> = {}) {
    return this.request<Page<Job>>("GET", "/api/v1/jobs", { query });
  }

  jobEvents(id: string, query: { limit?: number; cursor?: string } = {}) {
    return this.request<Page<JobEvent>>("GET", `/api/v1/jobs/${encodeURIComponent(id)}/events`, { query });
  }

  listTypes() {
    return this.request<{ items: JobTypeInfo[] }>("GET", "/api/v1/types");
  }

  setType(type: string, body: { max_running?: number | null; paused?: boolean }) {
    return this.request<JobTypeInfo>("PUT", `/api/v1/types/${encodeURIComponent(type)}`, { body });
  }

  why(id: string) {
    return this.request<WhyAnswer>("GET", `/api/v1/jobs/${encodeURIComponent(id)}/why`);
  }

  jobAttempts(id: string) {
    return this.request<{ items: JobAttempt[] }>("GET", `/api/v1/jobs/${encodeURIComponent(id)}/attempts`);
  }

  cancelJob(id: string) {
    return this.request<Job>("POST", `/api/v1/jobs/${encodeURIComponent(id)}/cancel`);
  }

  retryJob(id: string) {
    return this.request<Job>("POST", `/api/v1/jobs/${encodeURIComponent(id)}/retry`);
  }

  setPriority(id: string, priority: string) {
    return this.request<Job>("PATCH", `/api/v1/jobs/${encodeURIComponent(id)}`, { body: { priority } });
  }

  queueStats() {
    return this.request<QueueStats>("GET", "/api/v1/queue/stats");
  }
}

/** A 429 with Retry-After: wait what the master asked, not our own backoff. */
class RetryAfterError extends ApiError {
  constructor(
    error: ApiError,
    readonly retryAfterMs: number,
  ) {
    super(error.status, error.code, error.detail, error.errors);
  }
}

function parseProblem(text: string): { code?: string; detail?: string; errors?: { path: string; message: string }[] } {
  try {
    const parsed = JSON.parse(text) as { code?: string; detail?: string; errors?: { path: string; message: string }[] };
    return typeof parsed === "object" && parsed !== null ? parsed : {};
  } catch {
    return {};
  }
}
