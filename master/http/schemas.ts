// The zod schemas of the REST API: they validate requests, type the handlers and
// feed /openapi.json. Shapes are API.md's.
import { z } from "zod";
import {
  FAILURE_REASONS,
  JOB_STATUSES,
  NODE_STATUSES,
  PRIORITY_NAMES,
  ROLES,
  SCHEDULE_SKIP_REASONS,
  type PriorityName,
} from "../store/types.js";
import { isStorableText, UNSTORABLE_TEXT } from "./storable.js";

const NAME_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;

/** A string every store keeps as it was sent (no NUL, no unpaired surrogate): a client's text. */
export function storable<T extends z.ZodString>(schema: T): T {
  return schema.refine(isStorableText, UNSTORABLE_TEXT);
}

export const jobType = z.string().regex(NAME_PATTERN, "must be 1–64 of A-Z a-z 0-9 _ . : -");
export const label = z.string().regex(NAME_PATTERN, "must be 1–64 of A-Z a-z 0-9 _ . : -");
export const id = storable(z.string().min(1).max(64));
/** An id as a worker reports it: one no store could hold is answered as unknown, not refused with its batch. */
export const reportedId = z.string().min(1).max(64);
export const priority = z.enum(PRIORITY_NAMES as [PriorityName, ...PriorityName[]]);
export const timestamp = z.iso.datetime({ offset: true, message: "must be an ISO-8601 timestamp" });
const json = z.unknown();
const attempt = z.int().min(1).max(1_000_000_000);

/**
 * A record whose keys are kept as sent: zod's records drop a "__proto__" key (assigning it would
 * set the object's prototype), which would lose it silently, so it is refused. (A payload is not a
 * record: it keeps such a key.)
 */
function keptKeys<T extends z.ZodType>(schema: T) {
  return z.preprocess((value, ctx) => {
    if (value !== null && typeof value === "object" && Object.hasOwn(value, "__proto__")) {
      ctx.addIssue({ code: "custom", message: "__proto__ cannot be a key here", input: value });
    }
    return value;
  }, schema);
}

export const tagsSchema = keptKeys(
  z
    .record(z.string().regex(NAME_PATTERN, "tag keys must be 1–64 of A-Z a-z 0-9 _ . : -"), storable(z.string().max(256)))
    .refine((tags) => Object.keys(tags).length <= 32, "at most 32 tags"),
);

export const MAX_ERROR_MESSAGE_CHARS = 65_536;
export const MAX_ERROR_CODE_CHARS = 128;

export const jobErrorSchema = z
  .object({
    message: z.string().max(MAX_ERROR_MESSAGE_CHARS),
    code: z.string().max(MAX_ERROR_CODE_CHARS).optional(),
    retryable: z.boolean().optional(),
  })
  .strict();

/**
 * An error as a node reports it: what a handler threw, of any length. The master keeps the first
 * MAX_ERROR_MESSAGE_CHARS of its message and MAX_ERROR_CODE_CHARS of its code (routes/nodes.ts):
 * a report is never refused, with its whole batch, for what a handler said.
 */
export const reportedErrorSchema = z
  .object({
    message: z.string().describe(`kept: its first ${MAX_ERROR_MESSAGE_CHARS} characters`),
    code: z.string().describe(`kept: its first ${MAX_ERROR_CODE_CHARS} characters`).optional(),
    retryable: z.boolean().optional(),
  })
  .strict();

export const submitJobSchema = z
  .object({
    type: jobType,
    payload: json.optional(),
    priority: priority.default("medium"),
    max_retries: z.int().min(0).max(100).optional(),
    timeout_s: z.number().positive().max(30 * 86_400).optional(),
    run_at: timestamp.optional(),
    requires: z.array(label).max(32).default([]),
    depends_on: z.array(id).max(100).default([]),
    idempotency_key: storable(z.string().min(1).max(255)).optional(),
    tags: tagsSchema.default({}),
  })
  .strict();
export type SubmitJobBody = z.infer<typeof submitJobSchema>;

export const MAX_BATCH_JOBS = 1000;
export const submitBatchSchema = z.object({ jobs: z.array(submitJobSchema).min(1).max(MAX_BATCH_JOBS) }).strict();

export const jobSchema = z
  .object({
    id: z.string(),
    type: z.string(),
    payload: json,
    client_id: z.string(),
    priority,
    effective_priority: priority,
    status: z.enum(JOB_STATUSES),
    attempt: z.int(),
    retry_count: z.int(),
    max_retries: z.int(),
    node_id: z.string().nullable(),
    timeout_s: z.number(),
    run_at: z.string().nullable(),
    requires: z.array(z.string()),
    depends_on: z.array(z.string()),
    idempotency_key: z.string().nullable(),
    tags: z.record(z.string(), z.string()),
    progress: z.number().nullable(),
    progress_message: z.string().nullable(),
    result: json,
    error: z.object({ message: z.string(), code: z.string().optional(), retryable: z.boolean() }).nullable(),
    failure_reason: z.string().nullable(),
    cancel_requested: z.boolean(),
    created_at: z.string(),
    updated_at: z.string(),
    started_at: z.string().nullable(),
    finished_at: z.string().nullable(),
  })
  .meta({ id: "Job" });

/** The job object of API.md §5, as the store answers it and the clients read it. */
export type Job = z.infer<typeof jobSchema>;

export function pageSchema<T extends z.ZodType>(item: T) {
  return z.object({ items: z.array(item), next_cursor: z.string().nullable() });
}

/** A tag filter, `key:value`. */
export const tagFilter = storable(z.string().regex(/^[A-Za-z0-9_.:-]{1,64}:.{0,256}$/, "must be key:value"));

export const pageQuery = {
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: storable(z.string().max(64)).optional(),
};

export const listJobsQuery = z
  .object({
    ...pageQuery,
    status: z.enum(JOB_STATUSES).optional(),
    type: jobType.optional(),
    priority: priority.optional(),
    node_id: id.optional(),
    client_id: id.optional(),
    tag: tagFilter.optional(),
    failure_reason: z.enum(FAILURE_REASONS).optional(),
  })
  .strict();

export const pageOnlyQuery = z.object(pageQuery).strict();

/** GET /jobs/:id?wait_s=N: answer once the job is final, or after N seconds (API.md §5). */
export const MAX_JOB_WAIT_S = 60;
// Not strict: GET /jobs/:id took no query before, and a cache-busting ?_=… must not turn into a 400.
export const getJobQuery = z.object({ wait_s: z.coerce.number().int().min(0).max(MAX_JOB_WAIT_S).optional() });

export const idParams = z.object({ id });

export const setPriorityBody = z.object({ priority }).strict();

export const auditEntrySchema = z
  .object({
    id: z.int(),
    event_type: z.string(),
    entity_type: z.string(),
    entity_id: z.string(),
    client_id: z.string().nullable(),
    details: z.record(z.string(), json),
    created_at: z.string(),
  })
  .meta({ id: "AuditEntry" });

export const jobEventSchema = z
  .object({
    event_type: z.string(),
    created_at: z.string(),
    client_id: z.string().nullable(),
    node_id: z.string().optional(),
    attempt: z.int().optional(),
    details: z.record(z.string(), json),
  })
  .meta({ id: "JobEvent" });

/** One entry of a job's history (API.md §5, `GET /jobs/:id/events`). */
export type JobEvent = z.infer<typeof jobEventSchema>;

export const jobAttemptSchema = z
  .object({
    attempt: z.int(),
    node_id: z.string(),
    node_name: z.string().nullable(),
    started_at: z.string(),
    finished_at: z.string().nullable(),
    outcome: z.enum(["running", "completed", "failed", "reassigned", "stalled", "canceled"]),
    error: jobErrorSchema.nullable(),
    log_tail: z.string().nullable(),
  })
  .meta({ id: "JobAttempt" });

export const jobTypeSchema = z
  .object({
    type: z.string(),
    max_running: z.int().nullable(),
    paused: z.boolean(),
    pending: z.int(),
    running: z.int(),
    completed_1h: z.int(),
    failed_1h: z.int(),
  })
  .meta({ id: "JobType" });

export const setJobTypeSchema = z
  .object({ max_running: z.int().min(0).max(1_000_000).nullable().optional(), paused: z.boolean().optional() })
  .strict()
  .refine((body) => body.max_running !== undefined || body.paused !== undefined, "give max_running, paused, or both");

export const whySchema = z
  .object({
    status: z.enum(JOB_STATUSES),
    reasons: z.array(z.object({ code: z.string(), message: z.string() }).catchall(json)),
    jobs_ahead: z.int().nullable(),
    eligible_nodes: z.int(),
    ready: z.boolean(),
  })
  .meta({ id: "Why" });

/** One hand-out of a job to a node (API.md §5, `GET /jobs/:id/attempts`). */
export type JobAttempt = z.infer<typeof jobAttemptSchema>;

export const queueStatsSchema = z.object({
  jobs: z.record(z.enum(JOB_STATUSES), z.int()),
  pending_by_priority: z.record(priority, z.int()),
  oldest_pending_age_s: z.number().nullable(),
  nodes: z.record(z.enum(NODE_STATUSES), z.int()),
});

// ---- nodes ----

export const registerNodeSchema = z
  .object({
    name: storable(z.string().min(1).max(128).regex(/^[^\s/]+$/, "must have no spaces or slashes")),
    labels: z.array(label).max(64).default([]),
    capacity: z.int().min(1).max(10_000).default(1),
    types: z.array(jobType).max(1000).optional().describe("the job types it runs (absent: any type)"),
    version: storable(z.string().max(64)).optional(),
    hardware: keptKeys(z.record(z.string().max(64), json)).default({}),
  })
  .strict();

export const nodeSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    client_id: z.string(),
    status: z.enum(NODE_STATUSES),
    labels: z.array(z.string()),
    capacity: z.int(),
    types: z.array(z.string()).nullable(),
    running: z.int(),
    hardware: z.record(z.string(), json),
    version: z.string().nullable(),
    registered_at: z.string(),
    last_heartbeat: z.string(),
  })
  .meta({ id: "Node" });

export const listNodesQuery = z.object({ ...pageQuery, status: z.enum(NODE_STATUSES).optional() }).strict();

export const heartbeatSchema = z
  .object({
    running: z
      .array(
        z
          .object({
            job_id: reportedId,
            attempt,
            // null: what JSON makes of a handler's NaN; taken as no progress, not refused with the heartbeat.
            progress: z.number().min(0).max(100).nullable().optional(),
            message: z.string().max(1024).optional(),
          })
          .strict(),
      )
      .max(10_000)
      .default([]),
  })
  .strict();

export const heartbeatReplySchema = z.object({
  status: z.enum(["online", "draining"]),
  heartbeat_interval_s: z.number(),
  cancel: z.array(
    z.object({ job_id: z.string(), attempt: z.int(), reason: z.enum(["canceled", "reassigned", "stalled", "unknown"]) }),
  ),
});

export const MAX_WAIT_S = 30;
export const claimSchema = z
  .object({
    max: z.int().min(1).max(100).default(1),
    wait_s: z.number().min(0).max(MAX_WAIT_S).default(0),
  })
  .strict();

export const claimedJobSchema = z.object({
  id: z.string(),
  type: z.string(),
  payload: json,
  attempt: z.int(),
  priority,
  timeout_s: z.number(),
  created_at: z.string(),
});

/** The end of the handler's stdout and stderr; the master keeps its last GAFFER_LOG_TAIL_BYTES. */
const logTail = z.string().optional();

export const completeSchema = z.object({ node_id: id, attempt, result: json.optional(), log_tail: logTail }).strict();
export const failSchema = z.object({ node_id: id, attempt, error: reportedErrorSchema, log_tail: logTail }).strict();

export const MAX_RESULTS = 1000;
export const resultsSchema = z
  .object({
    results: z
      .array(
        z
          .object({
            job_id: reportedId,
            attempt,
            status: z.enum(["completed", "failed"]),
            result: json.optional(),
            error: reportedErrorSchema.optional(),
            log_tail: logTail,
          })
          .strict(),
      )
      .min(1)
      .max(MAX_RESULTS),
  })
  .strict();

export const resultsReplySchema = z.object({
  items: z.array(z.object({ job_id: z.string(), accepted: z.boolean(), reason: z.string().optional() })),
});

export const healthSchema = z.object({ status: z.string(), auth: z.enum(["on", "off"]) });

export const throughputQuery = z.object({ minutes: z.coerce.number().int().min(1).max(1440).default(60) }).strict();

export const throughputSchema = z.object({
  since: z.string(),
  minutes: z.array(z.object({ minute: z.string(), completed: z.int(), failed: z.int() })),
});

export const listAuditQuery = z
  .object({
    ...pageQuery,
    event_type: storable(z.string().max(64)).optional(),
    entity_type: storable(z.string().max(32)).optional(),
    entity_id: storable(z.string().max(128)).optional(),
    client_id: storable(z.string().max(128)).optional(),
  })
  .strict();

// ---- schedules ----

export const scheduledJobSchema = submitJobSchema
  .omit({ run_at: true, depends_on: true, idempotency_key: true })
  .refine((job) => !("schedule" in job.tags), { message: "the tag schedule is set by the schedule itself", path: ["tags", "schedule"] });

export const createScheduleSchema = z
  .object({
    name: storable(z.string().min(1).max(128)),
    cron: storable(z.string().min(1).max(128)),
    timezone: storable(z.string().min(1).max(64)).default("UTC"),
    job: scheduledJobSchema,
    enabled: z.boolean().default(true),
  })
  .strict();

export const updateScheduleSchema = z
  .object({
    name: storable(z.string().min(1).max(128)).optional(),
    cron: storable(z.string().min(1).max(128)).optional(),
    timezone: storable(z.string().min(1).max(64)).optional(),
    job: scheduledJobSchema.optional(),
    enabled: z.boolean().optional(),
  })
  .strict();

export const scheduleSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    client_id: z.string(),
    cron: z.string(),
    timezone: z.string(),
    job: z.record(z.string(), z.unknown()),
    enabled: z.boolean(),
    next_run_at: z.string().nullable(),
    last_run_at: z.string().nullable(),
    last_skipped_at: z.string().nullable().describe("The last tick that submitted no job (kept after later ticks fire: compare with last_run_at)"),
    last_skip_reason: z.enum(SCHEDULE_SKIP_REASONS).nullable().describe("Why: invalid_cron and invalid_timezone disable the schedule until it is changed"),
    last_skip_message: z.string().nullable(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .meta({ id: "Schedule" });

// ---- auth, clients, tokens ----

export const tokenRequestSchema = z
  .object({ client_id: storable(z.string().min(1).max(128)), client_secret: z.string().min(1).max(512) })
  .strict();

export const tokenResponseSchema = z.object({
  access_token: z.string(),
  token_type: z.literal("Bearer"),
  expires_in: z.int(),
  expires_at: z.string(),
});

export const createClientSchema = z
  .object({ name: storable(z.string().min(1).max(128)), role: z.enum(ROLES) })
  .strict();

export const clientSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    role: z.enum(ROLES),
    created_at: z.string(),
    disabled_at: z.string().nullable(),
  })
  .meta({ id: "Client" });

export const newClientSchema = clientSchema.extend({ client_secret: z.string() });

export const listClientsQuery = z
  .object({ ...pageQuery, include_disabled: z.enum(["true", "false"]).optional() })
  .strict();

export const tokenSchema = z
  .object({
    id: z.string(),
    client_id: z.string(),
    expires_at: z.string(),
    created_at: z.string(),
    last_used_at: z.string().nullable(),
    revoked_at: z.string().nullable(),
  })
  .meta({ id: "Token" });

export const meSchema = z.object({
  client_id: z.string(),
  name: z.string(),
  role: z.enum(ROLES),
  auth: z.enum(["on", "off"]),
});

export const listTokensQuery = z.object({ ...pageQuery, client_id: id.optional() }).strict();
