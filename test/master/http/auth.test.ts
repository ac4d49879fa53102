// Auth over real HTTP (API.md §3, §4): tokens, roles on every route, ownership, rate limits.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import jwt from "jsonwebtoken";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "../../../master/auth/clients.js";
import type { MasterInternals } from "../../../master/index.js";
import { ROLES, type Role } from "../../../master/store/types.js";
import { FakeClock } from "../../helpers/clock.js";
import { http, startTestMaster } from "../../helpers/master.js";
import { removeTempDirs, tempDir } from "../../helpers/temp.js";

interface Login {
  id: string;
  secret: string;
  token: string;
}

let master: MasterInternals;
let db: string;
const clock = new FakeClock(new Date().toISOString());
const logins: Record<string, Login> = {};

/** `from`: the caller's address, as a proxy on loopback tells it (X-Forwarded-For). */
async function login(base: string, id: string, secret: string, from?: string) {
  return http<{ access_token: string; expires_in: number; token_type: string; expires_at: string }>(
    base,
    "POST",
    "/api/v1/auth/token",
    { client_id: id, client_secret: secret },
    from === undefined ? {} : { "x-forwarded-for": from },
  );
}

async function newLogin(name: string, role: Role): Promise<Login> {
  const client = await createClient(master.store, { name, role, actor: null });
  const token = await login(master.url, client.id, client.client_secret);
  expect(token.status).toBe(200);
  return { id: client.id, secret: client.client_secret, token: token.body.access_token };
}

const as = (who: Login | string | undefined): Record<string, string> =>
  who === undefined ? {} : { authorization: `Bearer ${typeof who === "string" ? who : who.token}` };
const call = <T = Record<string, unknown>>(who: Login | string | undefined, method: string, path: string, body?: unknown) =>
  http<T>(master.url, method, path, body, as(who));

beforeAll(async () => {
  db = join(tempDir(), "auth.db");
  master = await startTestMaster({ db, auth: "on", clock, tokenTtlS: 600, rateLimitPerMinute: 1000 });
  for (const role of ROLES) logins[role] = await newLogin(`${role}-one`, role);
  logins.client2 = await newLogin("client-two", "client");
  logins.worker2 = await newLogin("worker-two", "worker");
});
afterAll(async () => {
  await master.close();
  removeTempDirs();
});

const admin = () => logins.admin as Login;
const client = () => logins.client as Login;
const client2 = () => logins.client2 as Login;
const worker = () => logins.worker as Login;
const worker2 = () => logins.worker2 as Login;

describe("POST /api/v1/auth/token", () => {
  it("issues an HS256 JWT with sub, role, jti and exp", async () => {
    const result = await login(master.url, client().id, client().secret);
    expect(result.body).toMatchObject({ token_type: "Bearer", expires_in: 600 });
    const claims = jwt.decode(result.body.access_token, { complete: true }) as jwt.Jwt;
    expect(claims.header.alg).toBe("HS256");
    expect(claims.payload).toMatchObject({ sub: client().id, role: "client", jti: expect.any(String), exp: expect.any(Number) });
  });

  it("answers 401 to a wrong secret, an unknown client and a disabled one, all alike", async () => {
    const wrong = await login(master.url, client().id, "gsk_wrong");
    const unknown = await login(master.url, "nobody", "whatever");
    expect(wrong.status).toBe(401);
    expect(unknown.status).toBe(401);
    expect(wrong.body).toEqual(unknown.body);
    const doomed = await newLogin("doomed", "client");
    expect((await call(admin(), "DELETE", `/api/v1/clients/${doomed.id}`)).body).toMatchObject({ disabled_at: expect.any(String) });
    expect((await login(master.url, doomed.id, doomed.secret)).status).toBe(401);
    expect((await call(doomed, "GET", "/api/v1/queue/stats")).status).toBe(401);
  });

  it("answers 413 with a problem document to a body over 4 KiB, and reads one just under it", async () => {
    const tooLarge = await login(master.url, client().id, "x".repeat(5000));
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(tooLarge.body).toMatchObject({ status: 413, code: "payload_too_large", detail: expect.stringMatching(/4096 bytes/) });
    const padded = JSON.stringify({ client_id: client().id, client_secret: client().secret }).padEnd(4000, " ");
    expect((await http(master.url, "POST", "/api/v1/auth/token", padded)).status).toBe(200);
  });
});

describe("tokens refused", () => {
  it("refuses no token, a malformed header, a tampered token, another key's token and alg none", async () => {
    expect((await call(undefined, "GET", "/api/v1/jobs")).status).toBe(401);
    expect((await http(master.url, "GET", "/api/v1/jobs", undefined, { authorization: "Basic abc" })).status).toBe(401);
    const [header, , signature] = client().token.split(".");
    const forged = Buffer.from(JSON.stringify({ ...(jwt.decode(client().token) as object), role: "admin" })).toString("base64url");
    expect((await call(`${header}.${forged}.${signature}`, "GET", "/api/v1/clients")).status).toBe(401);
    const otherKey = jwt.sign({ sub: admin().id, role: "admin", jti: "x" }, "another-key-of-at-least-32-characters!!", { expiresIn: 60 });
    expect((await call(otherKey, "GET", "/api/v1/clients")).status).toBe(401);
    const none = jwt.sign({ sub: admin().id, role: "admin", jti: "x" }, "", { algorithm: "none" });
    expect((await call(none, "GET", "/api/v1/clients")).status).toBe(401);
    const problem = await call(undefined, "GET", "/api/v1/jobs");
    expect(problem.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect(problem.body).toMatchObject({ code: "unauthorized", status: 401 });
  });

  it("refuses an expired token", async () => {
    const short = await newLogin("short-lived", "client");
    clock.advanceSeconds(601);
    const expired = await call(short, "GET", "/api/v1/queue/stats");
    expect(expired.status).toBe(401);
    expect(expired.body.detail).toMatch(/expired/);
    // Everyone else logs in again after the jump in time.
    for (const [key, who] of Object.entries(logins)) {
      logins[key] = { ...who, token: (await login(master.url, who.id, who.secret)).body.access_token };
    }
  });

  it("refuses a token revoked by its holder or by an admin, at once", async () => {
    const self = await newLogin("self-revoker", "client");
    expect((await call(self, "POST", "/api/v1/auth/revoke")).body).toMatchObject({ revoked_at: expect.any(String) });
    expect((await call(self, "GET", "/api/v1/queue/stats")).status).toBe(401);
    const other = await newLogin("revoked-by-admin", "worker");
    expect((await call(other, "POST", "/api/v1/nodes", { name: "n" })).status).toBe(201);
    const listed = await call<{ items: { id: string }[] }>(admin(), "GET", `/api/v1/tokens?client_id=${other.id}`);
    const [token] = listed.body.items;
    expect(Object.keys(token ?? {})).toEqual(["id", "client_id", "expires_at", "created_at", "last_used_at", "revoked_at"]);
    expect((await call(admin(), "DELETE", `/api/v1/tokens/${token?.id}`)).status).toBe(200);
    expect((await call(other, "POST", "/api/v1/nodes", { name: "n" })).status).toBe(401);
  });
});

describe("every route of the OpenAPI document", () => {
  const placeholder = (path: string) => path.replace(/:([a-z_]+)/g, "00000000-0000-0000-0000-000000000000");

  it("answers 401 with no token and with a bad token, except the public ones", async () => {
    const doc = await http<{ paths: Record<string, Record<string, { "x-gaffer-roles": unknown }>> }>(master.url, "GET", "/openapi.json");
    let checked = 0;
    for (const route of master.routes) {
      const openApiPath = route.spec.path.replace(/:([a-z_]+)/g, "{$1}");
      expect(doc.body.paths[openApiPath]?.[route.spec.method]?.["x-gaffer-roles"]).toEqual(route.spec.auth);
      if (route.spec.auth === "public") continue;
      const path = placeholder(route.spec.path);
      const method = route.spec.method.toUpperCase();
      const body = method === "GET" ? undefined : {};
      expect((await call(undefined, method, path, body)).status, `${method} ${path} with no token`).toBe(401);
      expect((await call("not.a.token", method, path, body)).status, `${method} ${path} with a bad token`).toBe(401);
      checked += 1;
    }
    expect(checked).toBeGreaterThan(25);
  });

  it("answers 403 to each role a route does not allow, before reading its body", async () => {
    let checked = 0;
    for (const route of master.routes) {
      if (route.spec.auth === "public") continue;
      const allowed = route.spec.auth;
      for (const role of ROLES.filter((r) => !allowed.includes(r))) {
        const method = route.spec.method.toUpperCase();
        const result = await call(logins[role], method, placeholder(route.spec.path), method === "GET" ? undefined : "not even json");
        expect(result.status, `${role} on ${route.spec.method} ${route.spec.path}`).toBe(403);
        checked += 1;
      }
    }
    expect(checked).toBeGreaterThan(20);
  });

  it("serves the public routes with no token", async () => {
    for (const path of ["/health", "/ready", "/openapi.json"]) expect((await call(undefined, "GET", path)).status).toBe(200);
  });
});

describe("ownership", () => {
  it("hides one client's jobs from another (404, not 403)", async () => {
    const job = await call(client(), "POST", "/api/v1/jobs", { type: "mine", tags: { owner: "one" } });
    const id = String(job.body.id);
    expect(job.body.client_id).toBe(client().id);
    for (const [method, path, body] of [
      ["GET", `/api/v1/jobs/${id}`],
      ["GET", `/api/v1/jobs/${id}/events`],
      ["POST", `/api/v1/jobs/${id}/cancel`],
      ["POST", `/api/v1/jobs/${id}/retry`],
      ["PATCH", `/api/v1/jobs/${id}`, { priority: "high" }],
    ] as const) {
      expect((await call(client2(), method, path, body)).status, `${method} ${path}`).toBe(404);
    }
    const theirs = await call<{ items: { id: string }[] }>(client2(), "GET", "/api/v1/jobs?limit=500");
    expect(theirs.body.items.map((j) => j.id)).not.toContain(id);
    const peeking = await call<{ items: unknown[] }>(client2(), "GET", `/api/v1/jobs?client_id=${client().id}`);
    expect(peeking.body.items).toEqual([]);
    expect((await call(client(), "GET", `/api/v1/jobs/${id}`)).status).toBe(200);
    expect((await call(admin(), "GET", `/api/v1/jobs/${id}`)).status).toBe(200);
    const foreignDependency = await call(client2(), "POST", "/api/v1/jobs", { type: "x", depends_on: [id] });
    expect(foreignDependency.status).toBe(400);
  });

  it("lets a worker act only for the nodes it registered", async () => {
    const node = await call(worker(), "POST", "/api/v1/nodes", { name: "owned", labels: ["owned"] });
    const nodeId = String(node.body.id);
    expect(node.body.client_id).toBe(worker().id);
    for (const [method, path, body] of [
      ["GET", `/api/v1/nodes/${nodeId}`],
      ["POST", `/api/v1/nodes/${nodeId}/heartbeat`, { running: [] }],
      ["POST", `/api/v1/nodes/${nodeId}/claim`, { max: 1 }],
      ["POST", `/api/v1/nodes/${nodeId}/results`, { results: [{ job_id: "x", attempt: 1, status: "completed" }] }],
      ["POST", `/api/v1/nodes/${nodeId}/deregister`],
    ] as const) {
      expect((await call(worker2(), method, path, body)).status, `${method} ${path}`).toBe(404);
    }
    const job = await call(client(), "POST", "/api/v1/jobs", { type: "owned-work", requires: ["owned"], priority: "live" });
    const claimed = await call<{ items: { id: string; attempt: number }[] }>(worker(), "POST", `/api/v1/nodes/${nodeId}/claim`, { max: 1 });
    expect(claimed.body.items.map((j) => j.id)).toEqual([job.body.id]);
    expect((await call(worker(), "GET", `/api/v1/jobs/${String(job.body.id)}`)).status).toBe(200);
    expect((await call(worker2(), "GET", `/api/v1/jobs/${String(job.body.id)}`)).status).toBe(404);
    const stolen = await call(worker2(), "POST", `/api/v1/jobs/${String(job.body.id)}/complete`, { node_id: nodeId, attempt: 1, result: {} });
    expect(stolen.status).toBe(404);
    const done = await call(worker(), "POST", `/api/v1/jobs/${String(job.body.id)}/complete`, { node_id: nodeId, attempt: 1, result: {} });
    expect(done.body).toMatchObject({ status: "completed" });
  });
});

describe("rate limits", () => {
  it("answers 429 with Retry-After and RateLimit headers past the per-minute limit", async () => {
    const limited = await startTestMaster({ auth: "on", rateLimitPerMinute: 5 });
    try {
      const who = await createClient(limited.store, { name: "busy", role: "client", actor: null });
      const token = (await login(limited.url, who.id, who.client_secret)).body.access_token;
      const statuses: number[] = [];
      let last;
      for (let i = 0; i < 6; i++) {
        last = await http(limited.url, "GET", "/api/v1/queue/stats", undefined, { authorization: `Bearer ${token}` });
        statuses.push(last.status);
      }
      expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
      expect(last?.body).toMatchObject({ code: "rate_limited" });
      expect(Number(last?.headers.get("retry-after"))).toBeGreaterThan(0);
      expect(last?.headers.get("ratelimit-limit")).toBe("5");
      expect(last?.headers.get("ratelimit-remaining")).toBe("0");
    } finally {
      await limited.close();
    }
  });

  it("locks out a client id after repeated failed logins, and keeps the audit log short", async () => {
    const target = await newLogin("targeted", "client");
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) statuses.push((await login(master.url, target.id, `gsk_guess_${i}`)).status);
    expect(statuses.slice(0, 10).every((s) => s === 401)).toBe(true);
    expect(statuses.slice(10).every((s) => s === 429)).toBe(true);
    const locked = await login(master.url, target.id, target.secret);
    expect(locked.status).toBe(429);
    expect(Number(locked.headers.get("retry-after"))).toBeGreaterThan(0);
    const audit = await master.store.audit.list({ limit: 100, eventType: "auth.failed", entityId: target.id });
    expect(audit.items.length).toBeLessThanOrEqual(2);
  });

  it("counts a failed login before checking its secret: of 40 bad logins at once, 10 are checked", async () => {
    const target = await newLogin("stormed", "worker");
    const statuses = await Promise.all(Array.from({ length: 40 }, (_, i) => login(master.url, target.id, `gsk_guess_${i}`, "198.51.100.40").then((r) => r.status)));
    expect(statuses.filter((s) => s === 401)).toHaveLength(10);
    expect(statuses.filter((s) => s === 429)).toHaveLength(30);
  });

  it("locks out a client id only for the address its failures came from", async () => {
    const target = await newLogin("known-id", "worker");
    for (let i = 0; i < 10; i++) expect((await login(master.url, target.id, `gsk_guess_${i}`, "198.51.100.66")).status).toBe(401);
    expect((await login(master.url, target.id, target.secret, "198.51.100.66")).status).toBe(429);
    // The worker, from its own address, still gets its tokens.
    expect((await login(master.url, target.id, target.secret, "192.0.2.10")).status).toBe(200);
  });
});

describe("the database holds no secret", () => {
  it("stores neither client secrets nor access tokens, in the file or its WAL", async () => {
    const fresh = await newLogin("scanned", "worker");
    await call(fresh, "POST", "/api/v1/nodes", { name: "scan" });
    const bytes = Buffer.concat([readFileSync(db), readFileSync(`${db}-wal`)]);
    for (const who of Object.values(logins).concat(fresh)) {
      expect(bytes.includes(Buffer.from(who.secret))).toBe(false);
      expect(bytes.includes(Buffer.from(who.token))).toBe(false);
      expect(bytes.includes(Buffer.from(who.token.split(".")[2] ?? "-"))).toBe(false);
    }
    expect(bytes.includes(Buffer.from("scrypt$"))).toBe(true);
  });
});

describe("token bookkeeping", () => {
  it("writes last_used_at at most about once a minute per token", async () => {
    const busy = await newLogin("busy-bee", "client");
    const lastUsed = async () => {
      const page = await call<{ items: { last_used_at: string | null }[] }>(admin(), "GET", `/api/v1/tokens?client_id=${busy.id}`);
      return page.body.items[0]?.last_used_at;
    };
    await call(busy, "GET", "/api/v1/queue/stats");
    const first = await lastUsed();
    expect(first).not.toBeNull();
    clock.advanceSeconds(10);
    for (let i = 0; i < 20; i++) await call(busy, "GET", "/api/v1/queue/stats");
    expect(await lastUsed()).toBe(first);
    clock.advanceSeconds(61);
    await call(busy, "GET", "/api/v1/queue/stats");
    expect(await lastUsed()).not.toBe(first);
  });

  it("deletes expired tokens in the cleanup run", async () => {
    const cleanup = master.services.find((service) => service.name === "token_cleanup");
    await newLogin("soon-gone", "client");
    clock.advanceSeconds(700);
    const deleted = (await cleanup?.runOnce()) as number;
    expect(deleted).toBeGreaterThan(0);
    const remaining = await master.store.tokens.list({ limit: 500 });
    expect(remaining.items.every((t) => new Date(t.expires_at) >= clock.now())).toBe(true);
  });
});
