// gaffer/client: submit jobs from code and follow them (API.md §5, §10), one method per endpoint.
import { GafferWaitTimeoutError } from "./errors.js";
import { Transport, type RequestOptions } from "./transport.js";
import type {
  BulkFilter,
  BulkOptions,
  BulkResult,
  CallOptions,
  Job,
  JobAttempt,
  JobEvent,
  JobFilter,
  JobTypeInfo,
  Page,
  PriorityName,
  QueueStats,
  SubmitJobRequest,
  WaitOptions,
  WhyAnswer,
} from "./types.js";

/** The longest `wait_s` the master takes (API.md §5): a longer wait is several long polls. */
export const MAX_WAIT_STEP_S = 60;
/** A long poll's request may take this much longer than its wait before it counts as lost. */
const LONG_POLL_SLACK_MS = 15_000;
const FINAL_STATUSES: ReadonlySet<string> = new Set(["completed", "failed", "canceled"]);

const jobPath = (id: string, action = "") => `/api/v1/jobs/${encodeURIComponent(id)}${action}`;

function call(options: CallOptions | undefined, more: RequestOptions = {}): RequestOptions {
  return { signal: options?.signal, timeoutMs: options?.timeoutMs, ...more };
}

/**
 * A client of one master. `new Client({ masterUrl, clientId, clientSecret })` fetches its
 * access token and a new one before it expires or when the master refuses it (once a call);
 * `new Client({ masterUrl, token })` uses the given token. Every failure is a GafferError.
 */
export class Client extends Transport {
  /**
   * Submit one job → the job (201), or the existing one (200) when its `idempotency_key` was
   * used before. Tried again after a lost answer only when it has an `idempotency_key`.
   */
  submit(job: SubmitJobRequest, options?: CallOptions): Promise<Job> {
    return this.request<Job>("POST", "/api/v1/jobs", call(options, { body: job, retry: job.idempotency_key ? "safe" : "never" }));
  }

  /** Submit up to 1,000 jobs at once, all or none → the jobs in order. Tried again only when every job has an `idempotency_key`. */
  async submitBatch(jobs: SubmitJobRequest[], options?: CallOptions): Promise<Job[]> {
    const safe = jobs.length > 0 && jobs.every((job) => job.idempotency_key);
    const reply = await this.request<Page<Job>>("POST", "/api/v1/jobs/batch", call(options, { body: { jobs }, retry: safe ? "safe" : "never" }));
    return reply.items;
  }

  /** A job as it is now; with `waitS`, once it is final or after that many seconds (0–60), whichever comes first. */
  get(id: string, options?: CallOptions & { waitS?: number }): Promise<Job> {
    const waitS = options?.waitS;
    const timeoutMs = options?.timeoutMs ?? (waitS === undefined ? undefined : waitS * 1000 + LONG_POLL_SLACK_MS);
    return this.request<Job>("GET", jobPath(id), { signal: options?.signal, timeoutMs, query: { wait_s: waitS } });
  }

  /**
   * The job once it is completed, failed or canceled: long polls of at most a minute each,
   * answered the moment it finishes. Throws GafferWaitTimeoutError (with the job as last seen)
   * after `timeoutMs`, and the signal's reason when `signal` aborts.
   */
  async wait(id: string, options: WaitOptions = {}): Promise<Job> {
    const deadline = options.timeoutMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + options.timeoutMs;
    for (;;) {
      const leftMs = deadline - Date.now();
      const waitS = Math.max(0, Math.min(MAX_WAIT_STEP_S, Math.ceil(leftMs / 1000)));
      const job = await this.get(id, { waitS, signal: options.signal });
      if (FINAL_STATUSES.has(job.status)) return job;
      if (Date.now() >= deadline) throw new GafferWaitTimeoutError(job);
    }
  }

  /** Cancel a job: at once unless it runs; a running job gets `cancel_requested` and ends when its node stops it. */
  cancel(id: string, options?: CallOptions): Promise<Job> {
    return this.request<Job>("POST", jobPath(id, "/cancel"), call(options, { retry: "safe" }));
  }

  /** Run a failed or canceled job again, now, under the same id. */
  retry(id: string, options?: CallOptions): Promise<Job> {
    return this.request<Job>("POST", jobPath(id, "/retry"), call(options, { retry: "safe" }));
  }

  /** Change the priority of a job that is not running yet. */
  priority(id: string, priority: PriorityName, options?: CallOptions): Promise<Job> {
    return this.request<Job>("PATCH", jobPath(id), call(options, { body: { priority }, retry: "safe" }));
  }

  /** Why a job is not running yet, in codes and words. */
  why(id: string, options?: CallOptions): Promise<WhyAnswer> {
    return this.request<WhyAnswer>("GET", jobPath(id, "/why"), call(options));
  }

  /** Each hand-out of the job to a node, oldest first, with its outcome and log tail. */
  async attempts(id: string, options?: CallOptions): Promise<JobAttempt[]> {
    return (await this.request<{ items: JobAttempt[] }>("GET", jobPath(id, "/attempts"), call(options))).items;
  }

  /** The job's whole history, oldest first (every page of `GET /jobs/:id/events`). */
  async events(id: string, options?: CallOptions): Promise<JobEvent[]> {
    const events: JobEvent[] = [];
    for await (const event of this.pages<JobEvent>(jobPath(id, "/events"), { limit: 500 }, options)) events.push(event);
    return events;
  }

  /** One page of jobs, newest first. */
  listPage(filter: JobFilter = {}, options?: CallOptions): Promise<Page<Job>> {
    return this.request<Page<Job>>("GET", "/api/v1/jobs", call(options, { query: filter }));
  }

  /** Every job that matches, newest first, page after page (`filter.limit` is the page size). */
  list(filter: JobFilter = {}, options?: CallOptions): AsyncGenerator<Job, void, undefined> {
    return this.pages<Job>("/api/v1/jobs", filter, options);
  }

  /** Cancel every job that matches (at most `max`, default 1000), in one transaction. Not tried again after a lost answer. */
  bulkCancel(filter: BulkFilter, options?: BulkOptions): Promise<BulkResult> {
    return this.bulk("cancel", filter, options);
  }

  /** Retry every failed or canceled job that matches (at most `max`, default 1000). Not tried again after a lost answer. */
  bulkRetry(filter: BulkFilter, options?: BulkOptions): Promise<BulkResult> {
    return this.bulk("retry", filter, options);
  }

  /** The job types known, with their limits, pauses and counts. */
  async types(options?: CallOptions): Promise<JobTypeInfo[]> {
    return (await this.request<{ items: JobTypeInfo[] }>("GET", "/api/v1/types", call(options))).items;
  }

  /** Jobs by status, pending jobs by priority, the oldest pending job's age, nodes by status. */
  stats(options?: CallOptions): Promise<QueueStats> {
    return this.request<QueueStats>("GET", "/api/v1/queue/stats", call(options));
  }

  private bulk(action: "cancel" | "retry", filter: BulkFilter, options: BulkOptions = {}): Promise<BulkResult> {
    const body = { filter, max: options.max, ...(options.dryRun === undefined ? {} : { dry_run: options.dryRun }) };
    return this.request<BulkResult>("POST", `/api/v1/jobs/${action}`, call(options, { body, retry: "never" }));
  }

  private async *pages<T>(path: string, query: Record<string, string | number | undefined>, options?: CallOptions): AsyncGenerator<T, void, undefined> {
    let cursor = typeof query.cursor === "string" ? query.cursor : undefined;
    do {
      const page = await this.request<Page<T>>("GET", path, call(options, { query: { ...query, cursor } }));
      yield* page.items;
      cursor = page.next_cursor ?? undefined;
    } while (cursor !== undefined);
  }
}
