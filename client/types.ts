// The SDK's request and answer types: inferred from the zod schemas the master validates with
// (master/http/schemas.ts), as types only, so the client loads no zod at run time.
import type { z } from "zod";
import type {
  jobAttemptSchema,
  jobEventSchema,
  jobSchema,
  jobTypeSchema,
  listJobsQuery,
  queueStatsSchema,
  setJobTypeSchema,
  submitJobSchema,
  whySchema,
} from "../master/http/schemas.js";

/** The body of `POST /api/v1/jobs` (API.md §5): what `submit` takes; `type` is the only required field. */
export type SubmitJobRequest = z.input<typeof submitJobSchema>;
/** The job object of API.md §5. */
export type Job = z.infer<typeof jobSchema>;
export type JobStatus = Job["status"];
export type PriorityName = Job["priority"];
/** One entry of a job's history (`GET /jobs/:id/events`). */
export type JobEvent = z.infer<typeof jobEventSchema>;
/** One hand-out of a job to a node (`GET /jobs/:id/attempts`). */
export type JobAttempt = z.infer<typeof jobAttemptSchema>;
/** Why a job is not running yet (`GET /jobs/:id/why`). */
export type WhyAnswer = z.infer<typeof whySchema>;
/** One job type with its flow control and counts (`GET /api/v1/types`, API.md §5a). */
export type JobTypeInfo = z.infer<typeof jobTypeSchema>;
export type SetJobTypeRequest = z.input<typeof setJobTypeSchema>;
export type QueueStats = z.infer<typeof queueStatsSchema>;

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

/** The filters of `GET /api/v1/jobs` (`limit` is the page size `list` asks for; it still follows every page). */
export type JobFilter = Partial<z.output<typeof listJobsQuery>>;

/**
 * The filter of the bulk actions `POST /api/v1/jobs/cancel|retry` (API.md §5). Written by hand
 * from the contract: the master's schema for it is not in master/http/schemas.ts yet.
 */
export interface BulkFilter {
  status?: JobStatus;
  type?: string;
  priority?: PriorityName;
  /** `key:value` */
  tag?: string;
  failure_reason?: string;
  /** Admin only: a client's filter covers its own jobs. */
  client_id?: string;
  created_after?: string;
  created_before?: string;
}

/** What a bulk action did: `matched` jobs taken (at most `max`), `changed` by it, `more` matching beyond `max`. */
export interface BulkResult {
  matched: number;
  changed: number;
  more: boolean;
  /** Present when the master knows dry runs: true when nothing was changed, only counted. */
  dry_run?: boolean;
}

export interface BulkOptions extends CallOptions {
  /** At most this many jobs (1–10,000; the master's default is 1,000). */
  max?: number;
  /** Count what would change without changing it (where the master supports it). */
  dryRun?: boolean;
}

/** Per call: an AbortSignal that ends it (the promise rejects with the signal's reason), and its own timeout. */
export interface CallOptions {
  signal?: AbortSignal | undefined;
  /** Time allowed for each HTTP request of the call (default: the client's `timeoutMs`). */
  timeoutMs?: number | undefined;
}

export interface WaitOptions {
  /** Give up after this long with a GafferWaitTimeoutError (default: wait as long as it takes). */
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
}
