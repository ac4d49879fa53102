// The master's API as the worker and the CLI use it: the SDK's Client (client/), which owns
// tokens, problem answers and retries, plus the node calls, the admin calls, and a circuit
// breaker shared by all calls.
import type { Job, JobEvent, JobFilter, JobTypeInfo, Page, PriorityName, QueueStats, SetJobTypeRequest, SubmitJobRequest } from "../client/types.js";
import { Client } from "../client/client.js";
import type { ClientOptions } from "../client/transport.js";
import type { AuditEntry, CancelNotice, ClaimedJob, JobAttempt, JobError, Node } from "../master/store/types.js";
import { CircuitBreaker } from "./resilience.js";

export type { AuditEntry, CancelNotice, ClaimedJob, Job, JobAttempt, JobError, JobEvent, JobTypeInfo, Node, Page, QueueStats };
export type { CachedToken, RequestOptions, TokenCache } from "../client/transport.js";
export {
  CredentialsRefusedError,
  GafferError as ApiError,
  GafferConnectionError as MasterUnreachableError,
  NoCredentialsError,
} from "../client/errors.js";

export interface MasterClientOptions extends ClientOptions {
  breaker?: CircuitBreaker;
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

/**
 * A worker rides out a master that restarts or sheds load: its safe calls are tried again on
 * any 5xx and on 429 (after its Retry-After), not only on 503 as the SDK's are.
 */
const WORKER_RETRY_STATUSES = [429, 500, 502, 503, 504];

const nodePath = (id: string, action = "") => `/api/v1/nodes/${encodeURIComponent(id)}${action}`;

export class MasterClient extends Client {
  readonly breaker: CircuitBreaker;

  constructor(options: MasterClientOptions) {
    const breaker = options.breaker ?? new CircuitBreaker();
    super({ retryStatuses: WORKER_RETRY_STATUSES, ...options, breaker });
    this.breaker = breaker;
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
    return this.request<HeartbeatReply>("POST", nodePath(nodeId, "/heartbeat"), { body: { running }, retry: "never", probe: true });
  }

  /** A long-poll claim: never retried here (a repeat after a lost answer would take more jobs). */
  claim(nodeId: string, max: number, waitS: number, signal?: AbortSignal) {
    return this.request<{ items: ClaimedJob[] }>("POST", nodePath(nodeId, "/claim"), {
      body: { max, wait_s: waitS },
      retry: "never",
      timeoutMs: (waitS + 15) * 1000,
      signal,
    });
  }

  /** Reports are idempotent (API.md §6): safe to send again after a lost answer. */
  reportResults(nodeId: string, results: ReportItem[]) {
    return this.request<{ items: { job_id: string; accepted: boolean; reason?: string }[] }>("POST", nodePath(nodeId, "/results"), {
      body: { results },
      retry: "safe",
    });
  }

  deregister(nodeId: string) {
    return this.request<Node>("POST", nodePath(nodeId, "/deregister"), { retry: "safe" });
  }

  listNodes(query: { status?: string | undefined; limit?: number; cursor?: string | undefined } = {}) {
    return this.request<Page<Node>>("GET", "/api/v1/nodes", { query });
  }

  getNode(id: string) {
    return this.request<Node>("GET", nodePath(id));
  }

  drainNode(id: string) {
    return this.request<Node>("POST", nodePath(id, "/drain"), { retry: "safe" });
  }

  resumeNode(id: string) {
    return this.request<Node>("POST", nodePath(id, "/resume"), { retry: "safe" });
  }

  setType(type: string, body: SetJobTypeRequest) {
    return this.request<JobTypeInfo>("PUT", `/api/v1/types/${encodeURIComponent(type)}`, { body });
  }

  // ---- the CLI's names for the SDK's job calls ----

  submitJob(body: Record<string, unknown>) {
    return this.submit(body as SubmitJobRequest);
  }

  /** With `waitS`: answered once the job is final, or after that many seconds (GET ?wait_s=). */
  getJob(id: string, waitS?: number) {
    return this.get(id, waitS === undefined ? {} : { waitS });
  }

  listJobs(query: Record<string, string | number | undefined> = {}) {
    return this.listPage(query as JobFilter);
  }

  jobEvents(id: string, query: { limit?: number; cursor?: string } = {}) {
    return this.request<Page<JobEvent>>("GET", `/api/v1/jobs/${encodeURIComponent(id)}/events`, { query });
  }

  async jobAttempts(id: string) {
    return { items: await this.attempts(id) };
  }

  listTypes() {
    return this.request<{ items: JobTypeInfo[] }>("GET", "/api/v1/types");
  }

  cancelJob(id: string) {
    return this.cancel(id);
  }

  retryJob(id: string) {
    return this.retry(id);
  }

  setPriority(id: string, priority: string) {
    return this.priority(id, priority as PriorityName);
  }

  queueStats() {
    return this.stats();
  }
}
