// Talking to the master from the browser: the access token lives in session storage only.
// The job, its attempts and history: the master's own zod-made types (type-only: nothing of zod is bundled).
export type { Job, JobAttempt, JobEvent } from "../../http/schemas.js";
export type { WhyAnswer } from "../../queue/why.js";

const TOKEN_KEY = "gaffer.token";

export interface Me {
  client_id: string;
  name: string;
  role: "admin" | "client" | "worker";
  auth: "on" | "off";
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface Node {
  id: string;
  name: string;
  status: string;
  labels: string[];
  capacity: number;
  running: number;
  version: string | null;
  last_heartbeat: string;
  registered_at: string;
}

export interface Stats {
  jobs: Record<string, number>;
  pending_by_priority: Record<string, number>;
  oldest_pending_age_s: number | null;
  nodes: Record<string, number>;
}

export interface Throughput {
  since: string;
  minutes: { minute: string; completed: number; failed: number }[];
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

/** A job type with its flow control and counts (GET /api/v1/types). */
export interface JobType {
  type: string;
  max_running: number | null;
  paused: boolean;
  pending: number;
  running: number;
  completed_1h: number;
  failed_1h: number;
}

/** What a bulk cancel or retry took and changed (POST /api/v1/jobs/cancel|retry). */
export interface BulkOutcome {
  matched: number;
  changed: number;
  more: boolean;
  dry_run: boolean;
}

export interface Schedule {
  id: string;
  name: string;
  cron: string;
  timezone: string;
  enabled: boolean;
  next_run_at: string | null;
  last_run_at: string | null;
  last_skipped_at: string | null;
  last_skip_reason: string | null;
  last_skip_message: string | null;
  job: { type: string; priority?: string };
}

/** The token is missing, expired or revoked: back to sign-in. */
export class Unauthorized extends Error {}
/** No answer from the master. */
export class Unreachable extends Error {}
/** The master answered with a problem document. */
export class Problem extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function forgetToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: "application/json" };
  const current = token();
  if (current) headers.authorization = `Bearer ${current}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  let response: Response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new Unreachable("cannot reach the master");
  }
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (response.ok) return parsed as T;
  const problem = (parsed ?? {}) as { code?: string; detail?: string };
  if (response.status === 401) throw new Unauthorized(problem.detail ?? "unauthorized");
  if (response.status >= 502) throw new Unreachable(problem.detail ?? `the master answered ${response.status}`);
  throw new Problem(response.status, problem.code ?? "error", problem.detail ?? `the master answered ${response.status}`);
}

export async function signIn(clientId: string, clientSecret: string): Promise<Me> {
  forgetToken();
  const issued = await api<{ access_token: string }>("POST", "/api/v1/auth/token", { client_id: clientId, client_secret: clientSecret });
  sessionStorage.setItem(TOKEN_KEY, issued.access_token);
  return api<Me>("GET", "/api/v1/auth/me");
}

export async function signOut(): Promise<void> {
  if (token()) await api("POST", "/api/v1/auth/revoke").catch(() => undefined);
  forgetToken();
}

export function query(params: Record<string, string | number | undefined | null>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
