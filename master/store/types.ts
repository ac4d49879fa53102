// The store's interface: the domain's vocabulary and one set of verbs per aggregate.
// The HTTP layer, the queue and the sweepers see only this; each dialect
// (store/sqlite/, later store/postgres/) implements it and owns its SQL.
import type { RateLimiterAbstract } from "rate-limiter-flexible";
import type { Job, JobAttempt, JobEvent } from "../http/schemas.js";
import type { WhyFacts } from "../queue/why.js";
import type { FairShareMode } from "../queue/fair-share.js";

/** API.md §2: class names and their weights, highest first. */
export const PRIORITY_WEIGHTS = { live: 10, high: 3, medium: 2, low: 1, batch: 0 } as const;
export type PriorityName = keyof typeof PRIORITY_WEIGHTS;
export const PRIORITY_NAMES = Object.keys(PRIORITY_WEIGHTS) as PriorityName[];
/** Aging lifts a job one class per interval, never above this weight (`live` stays reserved). */
export const AGING_CEILING_WEIGHT = PRIORITY_WEIGHTS.high;

export const JOB_STATUSES = [
  "blocked",
  "scheduled",
  "pending",
  "running",
  "completed",
  "failed",
  "canceled",
] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
/** The statuses a job never leaves (its finished_at is set). */
export const FINAL_JOB_STATUSES: ReadonlySet<JobStatus> = new Set(["completed", "failed", "canceled"]);

export const NODE_STATUSES = ["online", "draining", "dead", "offline"] as const;
export type NodeStatus = (typeof NODE_STATUSES)[number];

export const ROLES = ["admin", "client", "worker"] as const;
export type Role = (typeof ROLES)[number];

/** Why a job ended `failed`. */
export const FAILURE_REASONS = ["max_retries_exceeded", "dependency_failed", "non_retryable"] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

/** How a hand-out of a job to a node ended (API.md §5, attempts). */
export type AttemptOutcome = "completed" | "failed" | "reassigned" | "stalled" | "canceled";

/** Why a node must stop running a job (the heartbeat's `cancel` list). */
export type CancelReason = "canceled" | "reassigned" | "stalled" | "unknown";

/** Why a lease ended without its node's report. */
export type LeaseEndReason = "node_dead" | "node_left" | "stalled" | "lease_expired";

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

export interface JobError {
  message: string;
  code?: string;
  retryable: boolean;
}

/** The job object of API.md §5, its attempts and history: defined once, by the API's zod schemas. */
export type { Job, JobAttempt, JobEvent };

/** What a claim hands to a node (API.md §6). */
export interface ClaimedJob {
  id: string;
  type: string;
  payload: unknown;
  attempt: number;
  priority: PriorityName;
  timeout_s: number;
  created_at: string;
}

/**
 * A job a claim took, as a store answers it: a ClaimedJob whose payload is the JSON text kept
 * at its submission, which the claim's answer carries as it is. A payload is encoded once, when
 * it is submitted, and never parsed and encoded again on its way to a node.
 */
export interface TakenJob extends Omit<ClaimedJob, "payload"> {
  payloadJson: string;
  /** Its stored payload was not JSON (its row edited by hand): `payloadJson` is the text `null` instead. */
  payloadUnreadable?: true;
}

/** The node object of API.md §6. */
export interface Node {
  id: string;
  name: string;
  client_id: string;
  status: NodeStatus;
  labels: string[];
  capacity: number;
  /** The job types it runs; null: any type. */
  types: string[] | null;
  running: number;
  hardware: Record<string, unknown>;
  version: string | null;
  registered_at: string;
  last_heartbeat: string;
}

export interface AuditEntry {
  id: number;
  event_type: string;
  entity_type: string;
  entity_id: string;
  client_id: string | null;
  details: Record<string, unknown>;
  created_at: string;
}

/**
 * The database refuses writes (disk full, I/O error, read-only file): the
 * master turns read-only until an admin sets it back. Stores translate their
 * driver's errors into this; the core never sees driver errors.
 */
export class StorageUnavailableError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

/**
 * The database could not be reached for this request (a connection refused or lost, a pool
 * that had no connection in time, a server restarting): a 503 for this request alone, the
 * master's mode unchanged; the next request tries again.
 */
export class StorageUnreachableError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

/** The database refused a value it cannot store (PostgreSQL: a NUL character, a lone surrogate): the request's fault. */
export class UnstorableValueError extends Error {}

/** The database file failed its integrity check at open. */
export class CorruptDatabaseError extends Error {}

/** A list cursor this store did not hand out. */
export class InvalidCursorError extends Error {
  constructor(readonly cursor: string) {
    super("the cursor is not one this server handed out");
  }
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface PageParams {
  limit: number;
  cursor?: string | undefined;
}

/** Queue rules the store applies inside its transactions (computed by master/queue). */
export interface QueuePolicy {
  /** Delay before retry number `retryCount` (1 for the first retry), jitter included. */
  retryDelayMs(retryCount: number): number;
  stallGraceMs: number;
  agingMs: number;
  /** How long a running job's lease lasts without a heartbeat that lists it (the node timeout). */
  leaseMs: number;
  /**
   * A heartbeat rewrites the node's last_heartbeat only once the stored one is older
   * than this, so last_heartbeat may lag by up to this much; the dead-node sweep
   * allows for it (a node is never declared dead sooner than the node timeout).
   */
  heartbeatWriteMs: number;
}

// ---- jobs ----------------------------------------------------------------

export interface SubmitJobParams {
  clientId: string;
  type: string;
  payload: unknown;
  /** `payload`'s JSON text, made once by the caller (submittedPayload): the store writes it as given. */
  payloadJson: string;
  priority: PriorityName;
  maxRetries: number;
  timeoutS: number;
  runAt: Date | null;
  requires: string[];
  dependsOn: string[];
  idempotencyKey: string | null;
  tags: Record<string, string>;
}

/** A payload and its JSON text, as a submit carries them (null stands for a payload not given). */
export function submittedPayload(payload: unknown): Pick<SubmitJobParams, "payload" | "payloadJson"> {
  return { payload, payloadJson: JSON.stringify(payload ?? null) };
}

export type SubmitOutcome =
  | { ok: true; items: { job: Job; created: boolean }[] }
  | { ok: false; reason: "unknown_dependency"; index: number; dependency: string }
  /** The client would pass its quota (API.md §4): `unfinished` of its jobs are not yet finished. */
  | { ok: false; reason: "quota_exceeded"; unfinished: number; limit: number };

export interface SubmitOptions {
  /** A POST /jobs/batch, audited as one jobs.submitted row however many jobs it has. */
  batch?: boolean;
  /** Refuse the whole submit if the client's jobs not yet finished would then pass this many. */
  maxUnfinished?: number;
}

/** Which jobs a list or a bulk action covers: every field given must match. */
export interface JobFilter {
  status?: JobStatus | undefined;
  type?: string | undefined;
  priority?: PriorityName | undefined;
  nodeId?: string | undefined;
  clientId?: string | undefined;
  tag?: { key: string; value: string } | undefined;
  failureReason?: FailureReason | undefined;
  /** created_at strictly after / before. */
  createdAfter?: Date | undefined;
  createdBefore?: Date | undefined;
}

export type ListJobsParams = PageParams & JobFilter;

/** A cancel or retry of every job a filter matches, oldest first (API.md §5, Bulk). */
export interface BulkActionParams {
  filter: JobFilter;
  /** At most this many jobs are taken. */
  max: number;
  actor: string | null;
  /** The filter as the caller wrote it, for the audit row. */
  shownFilter: Record<string, unknown>;
  /** Count what the action would take and change, change nothing, write no audit row. */
  dryRun?: boolean;
}

export interface BulkActionOutcome {
  /** Jobs taken (at most max). */
  matched: number;
  /** Those the action changed (the others: already final, already asked, a dependency failed). */
  changed: number;
  /** Whether more jobs than max match. */
  more: boolean;
}

export type ClaimOutcome =
  | { ok: true; items: TakenJob[]; /** How long each item waited since it became ready, aligned with items. */ waitedMs?: number[] }
  | { ok: false; reason: "not_found" | "offline" };

export interface JobReport {
  jobId: string;
  attempt: number;
  status: "completed" | "failed";
  result?: unknown;
  error?: JobError | undefined;
  /** The end of what the handler wrote, kept on the attempt (cut to GAFFER_LOG_TAIL_BYTES by the caller). */
  logTail?: string | undefined;
}

export type ReportVerdict = "accepted" | "duplicate" | "stale_attempt" | "not_found";

export interface ReportOutcome {
  jobId: string;
  verdict: ReportVerdict;
  /** For accepted reports: what became of the job, for metrics and logs. */
  effect?: {
    type: string;
    priority: PriorityName;
    status: JobStatus;
    failureReason: string | null;
    runMs: number | null;
  };
}

export interface ReportManyResult {
  items: ReportOutcome[];
}

export interface ActorParams {
  id: string;
  /** Who asks; recorded in the audit log. */
  actor: string | null;
}

export type JobActionOutcome =
  | { ok: true; job: Job }
  | { ok: false; reason: "not_found" | "conflict"; status?: JobStatus; detail?: string };

export interface RescuedJob {
  jobId: string;
  nodeId: string | null;
  outcome: "requeued" | "failed" | "canceled";
}

export interface QueueStats {
  jobs: Record<JobStatus, number>;
  pending_by_priority: Record<PriorityName, number>;
  oldest_pending_age_s: number | null;
  nodes: Record<NodeStatus, number>;
}

export interface JobStore {
  /** All or nothing: one unknown dependency stores none of them. */
  submit(jobs: SubmitJobParams[], options?: SubmitOptions): Promise<SubmitOutcome>;
  get(id: string): Promise<Job | undefined>;
  /** Of these jobs, the ones in a final state or gone (what waiters that may have missed a commit look up, in one query). */
  finalAmong(ids: readonly string[]): Promise<string[]>;
  list(params: ListJobsParams): Promise<Page<Job>>;
  /** The job's history, oldest first: its submission and attempts, and the audit rows about it. */
  events(params: PageParams & { jobId: string }): Promise<Page<JobEvent>>;
  /** One item per hand-out of the job to a node, oldest first. */
  attempts(jobId: string): Promise<JobAttempt[]>;
  /** What GET /jobs/:id/why reasons from (all but the master's mode); undefined: no such job. */
  whyFacts(jobId: string): Promise<Omit<WhyFacts, "paused"> | undefined>;
  /** The cluster's fair-share mode (API.md §5a), as the database holds it: what claims follow. */
  fairShare(): Promise<FairShareMode>;
  /**
   * Put the cluster in a fair-share mode, in one transaction (turning it on reads every
   * pending and running job once); answers the mode it was in. A change is told as a
   * settings change (each master's claims follow the database's mode).
   */
  setFairShare(mode: FairShareMode): Promise<{ from: FairShareMode }>;
  /** Hand up to `max` ready jobs to a node, within its free capacity and labels. */
  claim(params: { nodeId: string; max: number }): Promise<ClaimOutcome>;
  /**
   * Claims for many nodes, in order, in one transaction (a dispatcher's waiting claims):
   * the same as claim() for each, but once the jobs a node could take are gone, the
   * nodes after it that could take only those do not look again.
   */
  claimEach(claims: { nodeId: string; max: number }[]): Promise<ClaimOutcome[]>;
  /** Results from a node, guarded by each job's current lease (attempt). */
  report(params: { nodeId: string; reports: JobReport[] }): Promise<ReportManyResult>;
  cancel(params: ActorParams): Promise<JobActionOutcome>;
  retry(params: ActorParams): Promise<JobActionOutcome>;
  setPriority(params: ActorParams & { priority: PriorityName }): Promise<JobActionOutcome>;
  /** Cancel every job the filter matches, oldest first, each as cancel() would, in one transaction with one audit row. */
  cancelMatching(params: BulkActionParams): Promise<BulkActionOutcome>;
  /** Retry every job the filter matches, oldest first, each as retry() would, in one transaction with one audit row. */
  retryMatching(params: BulkActionParams): Promise<BulkActionOutcome>;
  /** Move scheduled jobs whose time came to pending; answers how many and when the next one is due. */
  promoteScheduled(): Promise<{ promoted: number; nextAt: Date | null }>;
  /** Aging (API.md §2): answers how many jobs rose a class. */
  age(params: { limit: number }): Promise<number>;
  /** Take back jobs running longer than 2 × timeout_s + the stall grace. */
  rescueStalled(params: { limit: number }): Promise<RescuedJob[]>;
  /** Take back running jobs whose node stopped listing them in its heartbeats. */
  expireLeases(params: { limit: number }): Promise<RescuedJob[]>;
  stats(): Promise<QueueStats>;
  /** Retention: delete up to `limit` jobs that finished before `before`; answers how many. */
  purgeFinished(params: { before: Date; limit: number }): Promise<number>;
  /** Jobs completed and failed per minute since `since` (from finished_at), oldest first, minutes with none left out. */
  throughput(params: { since: Date }): Promise<{ minute: string; completed: number; failed: number }[]>;
}

// ---- nodes ---------------------------------------------------------------

export interface RegisterNodeParams {
  clientId: string;
  name: string;
  labels: string[];
  capacity: number;
  /** The job types it runs; null: any type. */
  types: string[] | null;
  version: string | null;
  hardware: Record<string, unknown>;
}

export interface HeartbeatJob {
  jobId: string;
  attempt: number;
  progress?: number | undefined;
  message?: string | undefined;
}

export interface CancelNotice {
  job_id: string;
  attempt: number;
  reason: CancelReason;
}

export type HeartbeatOutcome =
  | { ok: true; status: NodeStatus; cancel: CancelNotice[] }
  | { ok: false; reason: "not_found" | "offline" };

export type NodeActionOutcome =
  /** `requeued`: the jobs a leaving node handed back to the queue. */
  | { ok: true; node: Node; requeued: number }
  | { ok: false; reason: "not_found" | "conflict"; status?: NodeStatus };

export interface DeadNode {
  nodeId: string;
  name: string;
  lastHeartbeat: string;
  jobs: RescuedJob[];
  /** Declared dead by an earlier sweep, which was cut short before it took back all its jobs (PostgreSQL). */
  earlier?: boolean;
}

export interface ListNodesParams extends PageParams {
  status?: NodeStatus | undefined;
  clientId?: string | undefined;
}

export interface NodeStore {
  /** The same name from the same client again: the same node, back `online`. */
  register(params: RegisterNodeParams): Promise<{ node: Node; created: boolean }>;
  get(id: string): Promise<Node | undefined>;
  list(params: ListNodesParams): Promise<Page<Node>>;
  heartbeat(params: { nodeId: string; running: HeartbeatJob[] }): Promise<HeartbeatOutcome>;
  /** Graceful leave: `offline`, its unfinished jobs back to the queue. */
  deregister(params: ActorParams): Promise<NodeActionOutcome>;
  drain(params: ActorParams): Promise<NodeActionOutcome>;
  resume(params: ActorParams): Promise<NodeActionOutcome>;
  /**
   * Nodes silent since before `cutoff` become `dead`; their jobs are re-queued or failed.
   * Only nodes known to be: last_heartbeat older than `cutoff` by more than heartbeatWriteMs.
   */
  markDead(params: { cutoff: Date; limit: number }): Promise<DeadNode[]>;
}

// ---- clients and tokens ----------------------------------------------------

/** An API client as the API shows it: never its secret. */
export interface Client {
  id: string;
  name: string;
  role: Role;
  created_at: string;
  disabled_at: string | null;
}

export interface ClientWithSecret extends Client {
  secret_hash: string | null;
}

/** An issued access token as the API shows it: never the token, only its id (the jti). */
export interface Token {
  id: string;
  client_id: string;
  expires_at: string;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

/** What authenticating a request needs to know of a token. */
export interface TokenGrant extends Token {
  role: Role;
  client_disabled_at: string | null;
}

export interface ClientStore {
  create(params: { id: string; name: string; role: Role; secretHash: string; actor: string | null }): Promise<Client>;
  get(id: string): Promise<ClientWithSecret | undefined>;
  list(params: PageParams & { includeDisabled?: boolean }): Promise<Page<Client>>;
  /** Disable a client and revoke its tokens; answers how many tokens were revoked. */
  disable(params: ActorParams): Promise<{ ok: true; client: Client; revoked: string[] } | { ok: false; reason: "not_found" }>;
  /** Any client of this role at all (to tell a newcomer how to make the first admin). */
  countByRole(role: Role): Promise<number>;
}

export interface TokenStore {
  issue(params: { id: string; clientId: string; tokenHash: string; expiresAt: Date }): Promise<Token>;
  /** The token with this SHA-256, with its client's role and state. */
  findByHash(tokenHash: string): Promise<TokenGrant | undefined>;
  /** Record use (the caller limits this to about once a minute per token). */
  touch(params: { id: string; at: Date }): Promise<void>;
  revoke(params: ActorParams): Promise<{ ok: true; token: Token } | { ok: false; reason: "not_found" }>;
  list(params: PageParams & { clientId?: string | undefined }): Promise<Page<Token>>;
  /** Delete tokens expired before `before`; answers how many. */
  deleteExpired(params: { before: Date; limit: number }): Promise<number>;
}

// ---- schedules ---------------------------------------------------------------

/** The job a schedule submits on each tick: a POST /jobs body without run_at, depends_on or idempotency_key. */
export interface ScheduledJobSpec {
  type: string;
  payload?: unknown;
  priority?: PriorityName;
  max_retries?: number;
  timeout_s?: number;
  requires?: string[];
  tags?: Record<string, string>;
}

/** A recurring schedule as the API shows it (API.md §5). */
export interface Schedule {
  id: string;
  name: string;
  client_id: string;
  cron: string;
  timezone: string;
  job: ScheduledJobSpec;
  enabled: boolean;
  next_run_at: string | null;
  last_run_at: string | null;
  /** The last tick that submitted no job (kept after later ticks fire: compare with last_run_at), why, and what was wrong. */
  last_skipped_at: string | null;
  last_skip_reason: ScheduleSkipReason | null;
  last_skip_message: string | null;
  created_at: string;
  updated_at: string;
}

/**
 * Why a tick submitted no job, audited schedule.skipped: its client was at its quota; its cron
 * or time zone no longer parses (the schedule is disabled); the database refused its job; its
 * job failed otherwise.
 */
export const SCHEDULE_SKIP_REASONS = ["quota_exceeded", "invalid_cron", "invalid_timezone", "unstorable_job", "submit_failed"] as const;
export type ScheduleSkipReason = (typeof SCHEDULE_SKIP_REASONS)[number];

export interface ScheduleFields {
  name: string;
  cron: string;
  timezone: string;
  job: ScheduledJobSpec;
  enabled: boolean;
  /** When it fires next (null while disabled). */
  nextRunAt: Date | null;
}

export interface ScheduleStore {
  /** `maxPerClient`: refused (quota_exceeded) if the client has that many schedules already. */
  create(
    params: ScheduleFields & { clientId: string; actor: string | null; maxPerClient?: number },
  ): Promise<{ ok: true; schedule: Schedule } | { ok: false; reason: "conflict" } | { ok: false; reason: "quota_exceeded"; limit: number }>;
  get(id: string): Promise<Schedule | undefined>;
  list(params: PageParams & { clientId?: string | undefined }): Promise<Page<Schedule>>;
  update(params: { id: string; fields: ScheduleFields; actor: string | null }): Promise<{ ok: true; schedule: Schedule } | { ok: false; reason: "not_found" | "conflict" }>;
  delete(params: ActorParams): Promise<boolean>;
  /** Enabled schedules whose next_run_at has come. */
  due(params: { now: Date; limit: number }): Promise<Schedule[]>;
  /** The earliest next_run_at of an enabled schedule. */
  nextDueAt(): Promise<Date | null>;
  /**
   * One tick: move next_run_at from `dueAt` to `nextRunAt` and submit the job, in
   * one transaction. Only one caller wins a tick, however many masters try.
   * `maxUnfinished`: the owner's quota; a tick past it is skipped (next_run_at still moves),
   * kept on the schedule as its last skip and audited schedule.skipped.
   */
  fire(params: {
    scheduleId: string;
    dueAt: string;
    nextRunAt: Date;
    job: SubmitJobParams;
    maxUnfinished?: number;
  }): Promise<{ fired: true; job: Job } | { fired: false; skipped?: "quota_exceeded" }>;
  /**
   * One tick that cannot fire, skipped: next_run_at moves from `dueAt` to `nextRunAt` (null: the
   * schedule cannot tick again and is disabled), the skip is kept on the schedule and audited
   * schedule.skipped, in one transaction, under the guard fire() uses: of a fire and skips of
   * one tick, however many masters try, one wins. `skipped: false`: the tick was gone.
   */
  skip(params: ScheduleSkipParams): Promise<{ skipped: boolean }>;
}

export interface ScheduleSkipParams {
  scheduleId: string;
  dueAt: string;
  nextRunAt: Date | null;
  reason: ScheduleSkipReason;
  /** What the schedule's owner sees (last_skip_message). */
  message: string;
  /** More for the audit row. */
  details?: Record<string, unknown>;
}

// ---- audit, settings -------------------------------------------------------

export interface ListAuditParams extends PageParams {
  entityType?: string | undefined;
  entityId?: string | undefined;
  eventType?: string | undefined;
  clientId?: string | undefined;
}

export interface AuditStore {
  /** Newest first. */
  list(params: ListAuditParams): Promise<Page<AuditEntry>>;
  record(entry: Omit<AuditEntry, "id" | "created_at">): Promise<void>;
  /** Retention: delete up to `limit` rows written before `before`; answers how many. */
  purge(params: { before: Date; limit: number }): Promise<number>;
}

export interface SettingsStore {
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string): Promise<void>;
  /** Store `value` unless the key has one; answers the value kept (of several masters starting at once, the first's). */
  setIfAbsent(key: string, value: string): Promise<string>;
}

/** The databases a store can run on (PostgreSQL: API.md §12, not built yet). */
export type Dialect = "sqlite" | "postgres";

/** A job type as GET /api/v1/types shows it (API.md §5a). */
export interface JobTypeInfo {
  type: string;
  max_running: number | null;
  paused: boolean;
  pending: number;
  running: number;
  completed_1h: number;
  failed_1h: number;
}

/** Flow control per job type: its limit of running jobs and its pause. */
export interface JobTypeStore {
  /** Every type that has jobs or a setting, with its counts; finished ones since `since`. */
  list(params: { since: Date }): Promise<JobTypeInfo[]>;
  /** Change a type's limit, pause, or both (audit `type.changed`); a type with no jobs yet too. */
  set(params: { type: string; maxRunning?: number | null; paused?: boolean; actor: string | null; since: Date }): Promise<JobTypeInfo>;
}

/** One rate limit: `points` per `durationS` seconds for each key, its keys under `keyPrefix`. */
export interface RateLimitParams {
  keyPrefix: string;
  points: number;
  durationS: number;
  /**
   * How the masters of a PostgreSQL cluster count together (SQLite counts in memory either way):
   * "exact" (default) adds each point in the database before answering; "synced" decides in
   * this master's memory at once and shares the counts about once a second, so that a burst
   * spread over N masters may pass up to about N times one master's share within one sync.
   */
  sharing?: "exact" | "synced";
}

/** What the master's limits use of a limiter (rate-limiter-flexible's). */
export type RateLimiter = Pick<RateLimiterAbstract, "consume" | "reward" | "delete">;

/** Where rate limits count (API.md §4, §12). */
export interface RateLimitStore {
  /**
   * A limiter: on SQLite (one master) in this process's memory; on PostgreSQL shared by every
   * master through the database (at once or about once a second, `sharing`), and in this
   * master's memory alone while it cannot reach it.
   */
  limiter(params: RateLimitParams): RateLimiter;
  /** Forget counters whose window ended before `before`, up to `limit`; answers how many (SQLite keeps none). */
  deleteExpired(params: { before: Date; limit: number }): Promise<number>;
}

export interface StoreDescription {
  dialect: Dialect;
  [key: string]: unknown;
}

/**
 * What a commit changed that the master's waiting parts care about (Store.onCommitted).
 * Raised after the commit, never for a write that was undone: SQLite's store from its
 * own transactions, a PostgreSQL store from LISTEN/NOTIFY, so that every master hears
 * what any of them committed.
 */
export interface Committed {
  /** Jobs became pending, or running jobs ended or a node may take work again: waiting claims look now. */
  claimable: boolean;
  /** Jobs were scheduled for later: the promoter looks at its timer. */
  scheduled: boolean;
  /** Schedules were created, changed or deleted: the scheduler looks at its timer. */
  schedules: boolean;
  /** Jobs that reached a final state (completed, failed, canceled): their waiters answer. */
  finished: readonly string[];
  /** Tokens were revoked or a client disabled: grants cached from before must be checked again. Absent: none were. */
  revoked?: true;
  /** A setting changed (the master's mode): each master reads them again. Absent: none did. */
  settings?: true;
  /**
   * Commits may have gone unheard (the PostgreSQL store's LISTEN connection was lost and made
   * again): whoever waits for a particular change looks again. Comes with every other flag set.
   */
  missed?: true;
}

export interface Store {
  readonly dialect: Dialect;
  /** Call `listener` after each commit that changed something in `Committed`; answers the unsubscribe. */
  onCommitted(listener: (change: Committed) => void): () => void;
  /**
   * Resolves once every write committed so far is on disk. The commit signal comes right
   * after COMMIT, before the group's flush: what answers a caller from it waits for this.
   */
  durable(): Promise<void>;
  /** What an operator wants to know of the database (GET /api/v1/state). */
  describe(): Promise<StoreDescription>;
  /** Whether a write goes through now (leaving read-only mode). */
  probeWrite(): Promise<void>;
  /**
   * Resolves if the database answers now (GET /ready): SQLite's file is this process's own,
   * so at once; PostgreSQL's server may be gone, and then it throws StorageUnreachableError.
   */
  ping(): Promise<void>;
  /**
   * Whether this master runs the cluster's sweepers and schedules now: always on SQLite (one
   * master); on PostgreSQL, the master that holds the cluster's advisory lock (API.md §12).
   */
  leads(): Promise<boolean>;
  readonly jobs: JobStore;
  readonly nodes: NodeStore;
  readonly audit: AuditStore;
  readonly settings: SettingsStore;
  readonly clients: ClientStore;
  readonly tokens: TokenStore;
  readonly schedules: ScheduleStore;
  readonly types: JobTypeStore;
  readonly rateLimits: RateLimitStore;
  close(): Promise<void>;
}
