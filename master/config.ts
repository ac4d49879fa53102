// The master's configuration: one typed object, validated once at start.
// Precedence: defaults < profile < --config FILE < environment < flags (API.md §9).
// In master/, only this file reads process.env (the CLI and the worker read their own variables).
import { readFileSync } from "node:fs";
import { z } from "zod";
import { ConfigError } from "./config-error.js";
import { isLoopbackName } from "./auth/loopback.js";
import { FAIR_SHARE_MODES } from "./queue/fair-share.js";

export const DEFAULT_DB_PATH = "./data/gaffer.db";
export const DEFAULT_HOST = "127.0.0.1";
export const DEFAULT_PORT = 8080;
export const DEFAULT_TOKEN_TTL_S = 3600;
export const DEFAULT_RATE_LIMIT_PER_MINUTE = 600;
export const DEFAULT_WORKER_RATE_LIMIT_PER_MINUTE = 60_000;
export const DEFAULT_NODE_TIMEOUT_S = 60;
export const DEFAULT_SWEEP_INTERVAL_S = 10;
export const DEFAULT_MAX_RETRIES = 3;
export const DEFAULT_RETRY_DELAY_S = 5;
export const DEFAULT_RETRY_MAX_DELAY_S = 300;
export const DEFAULT_JOB_TIMEOUT_S = 3600;
export const DEFAULT_STALL_GRACE_S = 300;
export const DEFAULT_AGING_S = 300;
export const DEFAULT_MAX_PAYLOAD_BYTES = 1_048_576;
export const DEFAULT_MAX_BATCH_BYTES = 64 * 1_048_576;
/**
 * The body of a `client` role's POST /jobs/batch (API.md §4): 1000 jobs of about 4 KiB each.
 * It is parsed on the event loop that serves everyone, so one client may not make it parse 64 MiB.
 */
export const DEFAULT_CLIENT_MAX_BATCH_BYTES = 4 * 1_048_576;
/** Quotas of a `client` role (API.md §4): jobs not yet finished, and schedules. */
export const DEFAULT_CLIENT_MAX_QUEUED = 1_000_000;
export const DEFAULT_CLIENT_MAX_SCHEDULES = 100;
/** The end of a handler's output kept on each attempt (API.md §5, §10); the worker has the same setting. */
export const DEFAULT_LOG_TAIL_BYTES = 65_536;
export const DEFAULT_RETENTION_DAYS = 30;
/** Job types with their own metric series; the rest count under type="other" (API.md §8). */
export const DEFAULT_METRICS_MAX_TYPES = 100;

const seconds = z.coerce.number().positive().max(10 * 365 * 86400);
const count = z.coerce.number().int().min(0);

const configSchema = z
  .object({
    profile: z.enum(["dev", "prod"]).optional(),
    db: z.string().min(1),
    databaseUrl: z
      .string()
      .regex(/^postgres(ql)?:\/\/\S+$/, "must be a PostgreSQL URL: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE")
      .optional(),
    dbSynchronous: z.enum(["full", "normal"]),
    // A serving master's SQLite store on a thread of its own, HTTP on the event loop (store/thread/).
    storeThread: z.enum(["on", "off"]),
    host: z.string().min(1),
    port: z.coerce.number().int().min(0).max(65535),
    auth: z.enum(["on", "off"]),
    jwtSecret: z.string().min(32, "must be at least 32 characters").optional(),
    // For one start: this master's key replaces the one the database's masters sign with.
    rotateJwtSecret: z.enum(["on", "off"]),
    tokenTtlS: seconds,
    rateLimitPerMinute: count.min(1),
    workerRateLimitPerMinute: count.min(1),
    nodeTimeoutS: seconds,
    sweepIntervalS: seconds,
    heartbeatIntervalS: seconds.optional(),
    maxRetries: count.max(100),
    retryDelayS: z.coerce.number().min(0),
    retryMaxDelayS: z.coerce.number().min(0),
    jobTimeoutS: seconds,
    stallGraceS: z.coerce.number().min(0),
    agingS: seconds,
    maxPayloadBytes: count.min(1024),
    maxBatchBytes: count.min(1024),
    clientMaxBatchBytes: count.min(1024),
    clientMaxQueued: count.min(1),
    clientMaxSchedules: count,
    logTailBytes: count.min(0),
    retentionDays: z.coerce.number().positive(),
    metricsMaxTypes: count.max(10_000),
    logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]),
    // Unset: this master follows the database's mode (a new database's is off), so that a
    // master started without it does not turn fair share off for the whole cluster.
    fairShare: z.enum(FAIR_SHARE_MODES, { message: "must be off (strict priority, then FIFO) or clients (fair share between clients, API.md §5a)" }).optional(),
  })
  .strict();

export type MasterConfig = z.infer<typeof configSchema> & { heartbeatIntervalS: number };
export type ConfigKey = keyof z.infer<typeof configSchema>;
export type ConfigValues = Partial<Record<ConfigKey, string | number | undefined>>;

/** Each setting's environment variable (API.md §9, plus our extensions). */
export const ENVIRONMENT: Record<Exclude<ConfigKey, "profile">, string> = {
  db: "GAFFER_DB",
  databaseUrl: "GAFFER_DATABASE_URL",
  dbSynchronous: "GAFFER_DB_SYNCHRONOUS",
  storeThread: "GAFFER_STORE_THREAD",
  host: "GAFFER_HOST",
  port: "GAFFER_PORT",
  auth: "GAFFER_AUTH",
  jwtSecret: "GAFFER_JWT_SECRET",
  rotateJwtSecret: "GAFFER_ROTATE_JWT_SECRET",
  tokenTtlS: "GAFFER_TOKEN_TTL_S",
  rateLimitPerMinute: "GAFFER_RATE_LIMIT_PER_MINUTE",
  workerRateLimitPerMinute: "GAFFER_WORKER_RATE_LIMIT_PER_MINUTE",
  nodeTimeoutS: "GAFFER_NODE_TIMEOUT_S",
  sweepIntervalS: "GAFFER_SWEEP_INTERVAL_S",
  heartbeatIntervalS: "GAFFER_HEARTBEAT_INTERVAL_S",
  maxRetries: "GAFFER_MAX_RETRIES",
  retryDelayS: "GAFFER_RETRY_DELAY_S",
  retryMaxDelayS: "GAFFER_RETRY_MAX_DELAY_S",
  jobTimeoutS: "GAFFER_JOB_TIMEOUT_S",
  stallGraceS: "GAFFER_STALL_GRACE_S",
  agingS: "GAFFER_AGING_S",
  maxPayloadBytes: "GAFFER_MAX_PAYLOAD_BYTES",
  maxBatchBytes: "GAFFER_MAX_BATCH_BYTES",
  clientMaxBatchBytes: "GAFFER_CLIENT_MAX_BATCH_BYTES",
  clientMaxQueued: "GAFFER_CLIENT_MAX_QUEUED",
  clientMaxSchedules: "GAFFER_CLIENT_MAX_SCHEDULES",
  logTailBytes: "GAFFER_LOG_TAIL_BYTES",
  retentionDays: "GAFFER_RETENTION_DAYS",
  metricsMaxTypes: "GAFFER_METRICS_MAX_TYPES",
  logLevel: "GAFFER_LOG_LEVEL",
  fairShare: "GAFFER_FAIR_SHARE",
};

const DEFAULTS: ConfigValues = {
  db: DEFAULT_DB_PATH,
  dbSynchronous: "full",
  storeThread: "off",
  host: DEFAULT_HOST,
  port: DEFAULT_PORT,
  auth: "on",
  rotateJwtSecret: "off",
  tokenTtlS: DEFAULT_TOKEN_TTL_S,
  rateLimitPerMinute: DEFAULT_RATE_LIMIT_PER_MINUTE,
  workerRateLimitPerMinute: DEFAULT_WORKER_RATE_LIMIT_PER_MINUTE,
  nodeTimeoutS: DEFAULT_NODE_TIMEOUT_S,
  sweepIntervalS: DEFAULT_SWEEP_INTERVAL_S,
  maxRetries: DEFAULT_MAX_RETRIES,
  retryDelayS: DEFAULT_RETRY_DELAY_S,
  retryMaxDelayS: DEFAULT_RETRY_MAX_DELAY_S,
  jobTimeoutS: DEFAULT_JOB_TIMEOUT_S,
  stallGraceS: DEFAULT_STALL_GRACE_S,
  agingS: DEFAULT_AGING_S,
  maxPayloadBytes: DEFAULT_MAX_PAYLOAD_BYTES,
  maxBatchBytes: DEFAULT_MAX_BATCH_BYTES,
  clientMaxBatchBytes: DEFAULT_CLIENT_MAX_BATCH_BYTES,
  clientMaxQueued: DEFAULT_CLIENT_MAX_QUEUED,
  clientMaxSchedules: DEFAULT_CLIENT_MAX_SCHEDULES,
  logTailBytes: DEFAULT_LOG_TAIL_BYTES,
  retentionDays: DEFAULT_RETENTION_DAYS,
  metricsMaxTypes: DEFAULT_METRICS_MAX_TYPES,
  logLevel: "info",
};

/** dev: auth off and patient timeouts for a laptop; prod: the seed's production values. */
export const PROFILES: Record<"dev" | "prod", ConfigValues> = {
  dev: { auth: "off", nodeTimeoutS: 120, stallGraceS: 600 },
  prod: { auth: "on", nodeTimeoutS: 60, sweepIntervalS: 10, maxRetries: 3 },
};

export { ConfigError };

export interface LoadConfigParams {
  /** Command-line flags (and startMaster options): the highest precedence. */
  flags?: ConfigValues;
  /** Defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** A JSON file of settings, keyed by name (`nodeTimeoutS`) or variable (`GAFFER_NODE_TIMEOUT_S`). */
  configFile?: string | undefined;
}

function fromEnvironment(env: NodeJS.ProcessEnv): ConfigValues {
  const values: ConfigValues = {};
  for (const [key, variable] of Object.entries(ENVIRONMENT)) {
    const value = env[variable];
    if (value !== undefined && value !== "") values[key as ConfigKey] = value;
  }
  if (env.GAFFER_PROFILE) values.profile = env.GAFFER_PROFILE;
  return values;
}

function fromFile(path: string): ConfigValues {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new ConfigError([`--config ${path}: ${(error as Error).message}`]);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError([`--config ${path}: must be a JSON object`]);
  }
  const byVariable = new Map(Object.entries(ENVIRONMENT).map(([key, variable]) => [variable, key]));
  const values: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(parsed)) values[byVariable.get(key) ?? key] = value;
  return values as ConfigValues;
}

function defined(values: ConfigValues | undefined): ConfigValues {
  return Object.fromEntries(Object.entries(values ?? {}).filter(([, value]) => value !== undefined));
}

/** Merge every source and validate; throws ConfigError listing every problem at once. */
export function loadConfig(params: LoadConfigParams = {}): MasterConfig {
  const env = defined(fromEnvironment(params.env ?? process.env));
  const flags = defined(params.flags);
  const file = params.configFile ? defined(fromFile(params.configFile)) : {};
  const profileName = flags.profile ?? env.profile ?? file.profile;
  if (profileName !== undefined && profileName !== "dev" && profileName !== "prod") {
    throw new ConfigError([`profile: must be dev or prod, not ${String(profileName)}`]);
  }
  const profile = profileName === undefined ? {} : PROFILES[profileName];
  const merged = { ...DEFAULTS, ...profile, ...file, ...env, ...flags };
  const parsed = configSchema.safeParse(merged);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const key = String(issue.path[0] ?? "");
        const variable = ENVIRONMENT[key as Exclude<ConfigKey, "profile">];
        return `${key}${variable ? ` (${variable})` : ""}: ${issue.message}`;
      }),
    );
  }
  const config = parsed.data;
  const problems: string[] = [];
  if (config.retryMaxDelayS < config.retryDelayS) {
    problems.push("retryMaxDelayS (GAFFER_RETRY_MAX_DELAY_S): must not be below GAFFER_RETRY_DELAY_S");
  }
  if (config.heartbeatIntervalS !== undefined && config.heartbeatIntervalS >= config.nodeTimeoutS) {
    problems.push("heartbeatIntervalS (GAFFER_HEARTBEAT_INTERVAL_S): must be below GAFFER_NODE_TIMEOUT_S");
  }
  if (config.auth === "off" && !isLoopbackName(config.host)) {
    problems.push(
      `host (GAFFER_HOST): with auth off (GAFFER_AUTH=off, or the dev profile) the master listens only on loopback ` +
        `(127.0.0.1, ::1 or localhost), not ${config.host}: anyone who can reach it would act as an admin. ` +
        `Turn auth on (GAFFER_AUTH=on) to listen there.`,
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    ...config,
    // Three heartbeats fit in one node timeout, so one lost heartbeat never kills a node.
    heartbeatIntervalS: config.heartbeatIntervalS ?? Math.min(10, config.nodeTimeoutS / 3),
  };
}
