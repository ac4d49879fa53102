// An in-process master on a temporary database and a random port, a worker for it, and a tiny HTTP client.
import { join } from "node:path";
import { pino } from "pino";
import { createClient } from "../../master/auth/clients.js";
import { createMaster, type MasterInternals, type MasterOptions, type MasterWiring } from "../../master/index.js";
import type { Role } from "../../master/store/types.js";
import { Worker, type WorkerOptions } from "../../worker/index.js";
import { tempDir } from "./temp.js";

export async function startTestMaster(options: MasterOptions = {}, wiring: MasterWiring = {}): Promise<MasterInternals> {
  const defaults: MasterOptions = {
    env: {},
    db: join(tempDir(), "gaffer.db"),
    port: 0,
    auth: "off",
    logger: pino({ level: process.env.GAFFER_TEST_LOG ?? "silent" }),
  };
  return createMaster({ ...defaults, ...options }, wiring);
}

export interface HttpResult<T = Record<string, unknown>> {
  status: number;
  body: T;
  headers: Headers;
}

export async function http<T = Record<string, unknown>>(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<HttpResult<T>> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)["content-type"] ??= "application/json";
  }
  const response = await fetch(`${base}${path}`, init);
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = text === "" ? undefined : JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: response.status, body: parsed as T, headers: response.headers };
}

/**
 * Clients made straight in the store, one per name with its role, each signed in: the
 * headers to call as each (for a master with auth on).
 */
export async function signedIn(master: MasterInternals, clients: Record<string, Role>): Promise<Record<string, Record<string, string>>> {
  const headers: Record<string, Record<string, string>> = {};
  for (const [name, role] of Object.entries(clients)) {
    const made = await createClient(master.store, { name, role, actor: null });
    const token = await http<{ access_token: string }>(master.url, "POST", "/api/v1/auth/token", { client_id: made.id, client_secret: made.client_secret });
    headers[name] = { authorization: `Bearer ${token.body.access_token}` };
  }
  return headers;
}

/** An in-process worker on `masterUrl` (state in a temp dir, claims long-polling 0.2 s, silent), started. */
export async function startTestWorker(
  masterUrl: string,
  options: Pick<WorkerOptions, "name" | "capacity" | "handlers">,
): Promise<Worker> {
  const worker = new Worker({ masterUrl, ...options, stateDir: tempDir(), claimWaitS: 0.2, logger: pino({ level: "silent" }) });
  await worker.start();
  return worker;
}
