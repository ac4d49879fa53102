// The one HTTP core of gaffer's clients (the SDK, the worker, the CLI): access tokens fetched
// and refreshed, problem answers turned into GafferErrors, retries with backoff for the calls
// that are safe to repeat, per-request timeouts, AbortSignals, an optional circuit breaker.
import http, { type IncomingHttpHeaders } from "node:http";
import https from "node:https";
import { backoffDelayMs, DEFAULT_BACKOFF, sleep, type BackoffParams } from "./backoff.js";
import { CredentialsRefusedError, GafferConnectionError, GafferError, NoCredentialsError } from "./errors.js";

/** A circuit breaker (the worker's): `check()` throws an error with `retryInMs` while no request may go out. */
export interface Breaker {
  check(): void;
  wait(ms: number, signal?: AbortSignal): Promise<void>;
  succeeded(): void;
  failed(): void;
}

/** Where the client says it retries (pino's logger fits). */
export interface ClientLog {
  warn(event: object, message?: string): void;
  debug(event: object, message?: string): void;
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

export interface ClientOptions {
  /**
   * The master, e.g. http://127.0.0.1:8080; or several masters of one cluster (API.md §12),
   * comma-separated or as a list: calls go to one, and to the next when it stops answering.
   */
  masterUrl: string | readonly string[];
  clientId?: string | undefined;
  clientSecret?: string | undefined;
  /** A ready access token (GAFFER_TOKEN): used as is, never refreshed. */
  token?: string | undefined;
  /** Keeps the token fetched with the client id and secret between processes (the CLI's cache file). */
  tokenCache?: TokenCache | undefined;
  log?: ClientLog | undefined;
  /** Tries per retryable call before giving up (default 4). */
  attempts?: number;
  backoff?: BackoffParams;
  /** HTTP statuses a retryable call is tried again on (default 503; connection errors always). */
  retryStatuses?: readonly number[];
  breaker?: Breaker;
  /** Per-request timeout (a long poll adds its wait). Default 30 s. */
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
  query?: Record<string, string | number | boolean | undefined>;
  /**
   * "safe": tried again on connection errors and the retry statuses; "never": one try (a
   * repeat could do the work twice). Default: safe for GET, HEAD, PUT and DELETE.
   */
  retry?: "safe" | "never";
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
  /** Go out even while the circuit is open, and let the answer close it (periodic calls like heartbeats are the probe). */
  probe?: boolean;
}

interface TokenResponse {
  access_token: string;
  token_type: "Bearer";
  expires_in: number;
  expires_at: string;
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

const TOKEN_PATH = "/api/v1/auth/token";
/** Refresh a token this long before it expires. */
const TOKEN_REFRESH_MARGIN_MS = 60_000;
const IDEMPOTENT_METHODS = new Set(["GET", "HEAD", "PUT", "DELETE"]);
const DEFAULT_RETRY_STATUSES = [503];
const DEFAULT_ATTEMPTS = 4;
const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_IDLE_CONNECTION_MS = 4000;

/** What a call that ran past its timeout fails with (as AbortSignal.timeout's reason would say). */
function timedOut(ms: number): Error {
  return new DOMException(`the call took longer than ${ms} ms`, "TimeoutError");
}

/**
 * One HTTP exchange over a kept-alive connection, with node:http(s) rather than
 * fetch: fetch's web streams and per-request objects cost several times the CPU
 * of a call, and a worker shares the machine with the jobs it runs. The timeout is
 * a plain timer and the caller's signal a listener of our own, not
 * `AbortSignal.timeout` and `AbortSignal.any` passed as the request's `signal`:
 * those make three signals a call and node:http adds its own listener on them.
 */
function exchange(
  url: URL,
  agents: { http: http.Agent; https: https.Agent },
  init: { method: string; headers: Record<string, string>; body?: string | undefined; signal: AbortSignal | undefined; timeoutMs: number },
): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    const secure = url.protocol === "https:";
    if (!secure && url.protocol !== "http:") return reject(new Error(`unsupported protocol ${url.protocol}`));
    const { signal } = init;
    if (signal?.aborted) return reject(signal.reason);
    const headers = init.body === undefined ? init.headers : { ...init.headers, "content-length": String(Buffer.byteLength(init.body)) };
    let settled = false;
    const settle = (error: unknown, answer?: Answer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      if (answer) resolve(answer);
      else reject(error);
    };
    const onResponse = (response: http.IncomingMessage) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("error", settle);
      response.on("close", () => {
        // Cut off before its end (the master went away, or the call was aborted): no answer.
        if (!response.complete) return settle(new Error("the connection closed before the whole answer arrived"));
        settle(undefined, { status: response.statusCode ?? 0, headers: response.headers, text: Buffer.concat(chunks).toString("utf8") });
      });
    };
    const options = { method: init.method, headers };
    const request = secure
      ? https.request(url, { ...options, agent: agents.https }, onResponse)
      : http.request(url, { ...options, agent: agents.http }, onResponse);
    // Ended early, the request goes with its socket (a kept-alive one is not reused half-read).
    const end = (error: unknown) => {
      settle(error);
      request.destroy(error instanceof Error ? error : undefined);
    };
    const onAbort = () => end(signal?.reason);
    // Unref'd like AbortSignal.timeout's: the request's socket is what keeps the process alive.
    const timer = setTimeout(() => end(timedOut(init.timeoutMs)), init.timeoutMs).unref();
    signal?.addEventListener("abort", onAbort, { once: true });
    request.on("error", settle);
    request.end(init.body);
  });
}

/** A retryable answer that said how long to wait (Retry-After): that wait, not our backoff. */
class RetryAfterError extends GafferError {
  constructor(
    readonly answered: GafferError,
    readonly retryAfterMs: number,
  ) {
    super(answered.status, answered.code, answered.detail, answered.errors, { title: answered.title, type: answered.type });
  }
}

/** Answers that say this master cannot serve now; with several masters the next is tried. */
const UNAVAILABLE_STATUSES: ReadonlySet<number> = new Set([502, 503, 504]);

export class Transport {
  /** The masters this client may call, in the order it tries them. */
  readonly baseUrls: readonly string[];
  /** The one calls go to now (see failover). */
  private current = 0;
  private token: CachedToken | undefined;
  /** The cache is read once: after that, a token it gave and the master refused is not taken again. */
  private cacheRead = false;
  private refreshing: Promise<string> | undefined;
  private readonly retryStatuses: ReadonlySet<number>;
  /** Connections kept open between calls (idle ones do not keep the process alive). */
  private readonly agents: { http: http.Agent; https: https.Agent };

  constructor(protected readonly options: ClientOptions) {
    const urls = (typeof options.masterUrl === "string" ? options.masterUrl.split(",") : [...(options.masterUrl ?? [])])
      .map((url) => url.trim().replace(/\/+$/, ""))
      .filter((url) => url !== "");
    if (urls.length === 0) throw new TypeError("masterUrl is required");
    this.baseUrls = urls;
    this.retryStatuses = new Set(options.retryStatuses ?? DEFAULT_RETRY_STATUSES);
    // The agents' `timeout` applies to unused connections only; a long poll in flight is not cut.
    const agentOptions = { keepAlive: true, timeout: options.idleConnectionMs ?? DEFAULT_IDLE_CONNECTION_MS };
    this.agents = { http: new http.Agent(agentOptions), https: new https.Agent(agentOptions) };
  }

  /** The master calls go to now. */
  get baseUrl(): string {
    return this.baseUrls[this.current] ?? "";
  }

  /** The master did not answer: the next calls (and this call's retries) go to the next one. */
  private failover(from: string): void {
    if (this.baseUrls.length < 2 || this.baseUrl !== from) return;
    this.current = (this.current + 1) % this.baseUrls.length;
    this.options.log?.warn({ event: "master.failover", from, to: this.baseUrl }, `${from} does not answer: using ${this.baseUrl}`);
  }

  /**
   * One call to the master, for endpoints without a method of their own. Throws a GafferError
   * for a problem answer, a GafferConnectionError when the master never answered, and the
   * signal's reason when `signal` aborts it.
   */
  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const safe = options.retry === undefined ? IDEMPOTENT_METHODS.has(method) : options.retry === "safe";
    const attempts = safe ? Math.max(1, this.options.attempts ?? DEFAULT_ATTEMPTS) : 1;
    const breaker = this.options.breaker;
    let lastError: unknown;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      options.signal?.throwIfAborted();
      try {
        if (breaker && !options.probe) breaker.check();
      } catch (error) {
        lastError = error;
        if (attempt === attempts) break;
        await breaker?.wait((error as { retryInMs?: number }).retryInMs ?? 0, options.signal);
        continue;
      }
      try {
        return await this.attempt<T>(method, path, options, attempt === 1);
      } catch (error) {
        if (options.signal?.aborted) throw options.signal.reason;
        lastError = error;
        const retryable = !(error instanceof GafferError) || this.retryStatuses.has(error.status);
        if (!retryable || attempt === attempts) {
          // A master that answers only "unavailable" (cut off from its database, say): the
          // next calls try the next master.
          const answered = error instanceof RetryAfterError ? error.answered : error;
          if (answered instanceof GafferError && UNAVAILABLE_STATUSES.has(answered.status)) this.failover(this.baseUrl);
          break;
        }
        const delay = error instanceof RetryAfterError ? error.retryAfterMs : backoffDelayMs(attempt, this.options.backoff ?? DEFAULT_BACKOFF);
        this.options.log?.warn(
          { event: "master.retrying", method, path, attempt, delayMs: delay, err: error instanceof Error ? error.message : error },
          "retrying the master",
        );
        await sleep(delay, options.signal);
      }
    }
    options.signal?.throwIfAborted();
    if (lastError instanceof RetryAfterError) throw lastError.answered;
    // A token fetch that never got an answer already says so: not "cannot reach … cannot reach …".
    if (lastError instanceof GafferError) throw lastError;
    throw new GafferConnectionError(this.baseUrl, lastError);
  }

  private async attempt<T>(method: string, path: string, options: RequestOptions, mayRefresh: boolean): Promise<T> {
    const base = this.baseUrl;
    const url = new URL(`${base}${path}`);
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const headers: Record<string, string> = { accept: "application/json, application/problem+json" };
    const authorization = await this.authorization(path, options.signal);
    if (authorization) headers.authorization = authorization;
    if (options.body !== undefined) headers["content-type"] = "application/json";
    let response: Answer;
    try {
      response = await exchange(url, this.agents, {
        method,
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        signal: options.signal,
        timeoutMs: options.timeoutMs ?? this.options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      });
    } catch (error) {
      this.options.breaker?.failed();
      if (!options.signal?.aborted) this.failover(base);
      throw error;
    }
    const { status, text } = response;
    if (status >= 500) this.options.breaker?.failed();
    else this.options.breaker?.succeeded();
    if (status >= 200 && status < 300) return (text === "" ? undefined : JSON.parse(text)) as T;
    if (status === 401 && mayRefresh && this.canRefresh() && path !== TOKEN_PATH) {
      // The token expired or was revoked under us: one fresh token, one more try.
      this.token = undefined;
      return this.attempt<T>(method, path, options, false);
    }
    const answered = GafferError.fromAnswer(status, text);
    const error = status === 401 && !authorization ? new NoCredentialsError(answered) : answered;
    const retryAfterS = Number(response.headers["retry-after"]);
    if (this.retryStatuses.has(status) && response.headers["retry-after"] !== undefined && Number.isFinite(retryAfterS)) {
      throw new RetryAfterError(error, retryAfterS * 1000);
    }
    throw error;
  }

  private canRefresh(): boolean {
    return this.options.token === undefined && this.options.clientId !== undefined && this.options.clientSecret !== undefined;
  }

  private async authorization(path: string, signal: AbortSignal | undefined): Promise<string | undefined> {
    if (this.options.token) return `Bearer ${this.options.token}`;
    if (!this.canRefresh() || path === TOKEN_PATH) return undefined;
    return `Bearer ${(await this.accessToken(signal)).value}`;
  }

  /** The token calls go out with: the one in hand or in the cache while it is fresh, else a new one. */
  async accessToken(signal?: AbortSignal): Promise<CachedToken> {
    if (!this.canRefresh()) throw new TypeError("an access token needs a client id and secret");
    if (!this.token && !this.cacheRead) {
      this.cacheRead = true;
      const cached = this.options.tokenCache?.load();
      if (cached && Date.now() < cached.refreshAt) this.token = cached;
    }
    if (!this.token || Date.now() >= this.token.refreshAt) {
      // Calls that find the token stale at once share one fetch.
      this.refreshing ??= this.fetchToken().finally(() => (this.refreshing = undefined));
      await untilAborted(this.refreshing, signal);
    }
    if (!this.token) throw new Error("no access token");
    return this.token;
  }

  private async fetchToken(): Promise<string> {
    const clientId = this.options.clientId ?? "";
    const reply = await this.request<TokenResponse>("POST", TOKEN_PATH, {
      body: { client_id: clientId, client_secret: this.options.clientSecret },
      retry: "safe",
    }).catch((error: unknown) => {
      throw error instanceof GafferError && error.status === 401 ? new CredentialsRefusedError(error, clientId) : error;
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
}

/** The promise's outcome, or the signal's reason if it aborts first (another call may still want the promise). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
