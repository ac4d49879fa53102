// The worker's settings from flags and environment (API.md §9), and its handlers file (§10).
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { dirname, isAbsolute, resolve } from "node:path";
import { z } from "zod";
import { CredentialsError, plainHttpWarnings, resolveClientSecret, type ResolvedSecret } from "./credentials.js";
import type { CommandHandler } from "./runner.js";

export const DEFAULT_MASTER_URL = "http://127.0.0.1:8080";

const handlerSchema = z
  .object({
    command: z.array(z.string().min(1)).min(1, "command must name a program"),
    timeout_s: z.number().positive().optional(),
    env: z.record(z.string(), z.string()).optional(),
    cwd: z.string().min(1).optional(),
  })
  .strict();

const handlersFileSchema = z.record(z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, "job types are 1–64 of A-Z a-z 0-9 _ . : -"), handlerSchema);

export class WorkerConfigError extends Error {}

/** Read a handlers file; relative `cwd`s are taken from the file's own folder. */
export function loadHandlers(path: string): Record<string, CommandHandler> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new WorkerConfigError(`handlers file ${path}: ${(error as Error).message}`);
  }
  const result = handlersFileSchema.safeParse(parsed);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`);
    throw new WorkerConfigError(`handlers file ${path}:\n  ${problems.join("\n  ")}`);
  }
  const base = dirname(resolve(path));
  return Object.fromEntries(
    Object.entries(result.data).map(([type, handler]) => [
      type,
      { ...handler, ...(handler.cwd !== undefined ? { cwd: isAbsolute(handler.cwd) ? handler.cwd : resolve(base, handler.cwd) } : {}) },
    ]),
  );
}

export interface WorkerFlags {
  master?: string | undefined;
  clientId?: string | undefined;
  clientSecret?: string | undefined;
  clientSecretFile?: string | undefined;
  name?: string | undefined;
  labels?: string | undefined;
  capacity?: string | undefined;
  handlers?: string | undefined;
  stateDir?: string | undefined;
  graceS?: string | undefined;
  maxConnectAttempts?: string | undefined;
}

export interface WorkerConfig {
  masterUrl: string;
  clientId: string | undefined;
  clientSecret: string | undefined;
  token: string | undefined;
  name: string;
  labels: string[];
  capacity: number;
  handlersFile: string | undefined;
  stateDir: string;
  graceS: number;
  maxConnectAttempts: number | undefined;
  /** GAFFER_LOG_TAIL_BYTES: the end of each handler's output sent with its result (0: none). */
  logTailBytes: number | undefined;
  logLevel: string;
  /** What the daemon should tell the user on stderr before it starts (a secret in argv, plain http to another host). */
  warnings: string[];
}

function positive(value: string | undefined, what: string, integer: boolean): number | undefined {
  if (value === undefined || value === "") return undefined;
  const number = Number(value);
  if (!Number.isFinite(number) || number <= 0 || (integer && !Number.isInteger(number))) {
    throw new WorkerConfigError(`${what} must be a positive ${integer ? "whole " : ""}number, not ${value}`);
  }
  return number;
}

/** The worker's secrets (and where its secret's file is), taken out of the environment once read (API.md §10). */
const SECRET_VARIABLES = ["GAFFER_CLIENT_SECRET", "GAFFER_CLIENT_SECRET_FILE", "GAFFER_TOKEN"] as const;

function clientSecretOf(flags: WorkerFlags, env: NodeJS.ProcessEnv): ResolvedSecret {
  try {
    return resolveClientSecret(flags, env);
  } catch (error) {
    if (error instanceof CredentialsError) throw new WorkerConfigError(error.message);
    throw error;
  }
}

/**
 * Flags win over the environment; the CLI passes process.env. The secrets are deleted
 * from `env` as they are read, so that function handlers and any process the worker
 * starts cannot find them there.
 */
export function loadWorkerConfig(flags: WorkerFlags, env: NodeJS.ProcessEnv): WorkerConfig {
  const token = env.GAFFER_TOKEN;
  let secret: ResolvedSecret;
  try {
    secret = clientSecretOf(flags, env);
  } finally {
    for (const name of SECRET_VARIABLES) delete env[name];
  }
  const labels = (flags.labels ?? env.GAFFER_WORKER_LABELS ?? "")
    .split(",")
    .map((label) => label.trim())
    .filter((label) => label !== "");
  const bad = labels.find((label) => !/^[A-Za-z0-9_.:-]{1,64}$/.test(label));
  if (bad !== undefined) throw new WorkerConfigError(`label ${bad}: labels are 1–64 of A-Z a-z 0-9 _ . : -`);
  const masterUrl = flags.master ?? env.GAFFER_MASTER_URL ?? DEFAULT_MASTER_URL;
  // Several masters of one cluster, comma-separated: the worker moves to the next when one stops answering.
  for (const url of masterUrl.split(",")) {
    if (!/^https?:\/\/[^/]+/.test(url.trim())) throw new WorkerConfigError(`--master must be an http(s) URL (or several, comma-separated), not ${url}`);
  }
  return {
    masterUrl,
    clientId: flags.clientId ?? env.GAFFER_CLIENT_ID,
    clientSecret: secret.secret,
    token,
    name: flags.name ?? env.GAFFER_WORKER_NAME ?? hostname(),
    labels,
    capacity: positive(flags.capacity ?? env.GAFFER_WORKER_CAPACITY, "--capacity (GAFFER_WORKER_CAPACITY)", true) ?? 1,
    handlersFile: flags.handlers ?? env.GAFFER_HANDLERS,
    stateDir: flags.stateDir ?? env.GAFFER_STATE_DIR ?? "./gaffer-worker",
    graceS: positive(flags.graceS ?? env.GAFFER_WORKER_GRACE_S, "--grace-s", false) ?? 30,
    maxConnectAttempts: positive(flags.maxConnectAttempts, "--max-connect-attempts", true),
    logTailBytes: env.GAFFER_LOG_TAIL_BYTES === "0" ? 0 : positive(env.GAFFER_LOG_TAIL_BYTES, "GAFFER_LOG_TAIL_BYTES", true),
    logLevel: env.GAFFER_LOG_LEVEL ?? "info",
    warnings: [...secret.warnings, ...plainHttpWarnings(masterUrl)],
  };
}
