// The jobs API over real HTTP: submission, validation and problem documents, lists, actions.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MasterInternals } from "../../../master/index.js";
import { http, startTestMaster } from "../../helpers/master.js";
import { removeTempDirs } from "../../helpers/temp.js";

let master: MasterInternals;
const call = <T = Record<string, unknown>>(method: string, path: string, body?: unknown, headers?: Record<string, string>) =>
  http<T>(master.url, method, path, body, headers);

beforeAll(async () => {
  master = await startTestMaster({ maxPayloadBytes: 2048, maxBatchBytes: 1_000_000 });
});
afterAll(async () => {
  await master.close();
  removeTempDirs();
});

function expectProblem(result: { status: number; body: unknown; headers: Headers }, status: number, code: string) {
  expect(result.status).toBe(status);
  expect(result.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  expect(result.body).toMatchObject({ status, code, type: `urn:gaffer:problem:${code}` });
  expect(typeof (result.body as { title: unknown }).title).toBe("string");
  expect(typeof (result.body as { detail: unknown }).detail).toBe("string");
}

describe("POST /api/v1/jobs", () => {
  it("answers 201 with the job, defaults filled in", async () => {
    const result = await call("POST", "/api/v1/jobs", { type: "transcode", payload: { input: "a.mp4" } });
    expect(result.status).toBe(201);
    expect(result.body).toMatchObject({
      type: "transcode",
      payload: { input: "a.mp4" },
      client_id: "dev",
      priority: "medium",
      effective_priority: "medium",
      status: "pending",
      attempt: 0,
      retry_count: 0,
      max_retries: 3,
      timeout_s: 3600,
      node_id: null,
      requires: [],
      depends_on: [],
      tags: {},
      cancel_requested: false,
    });
    expect(result.body.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it("answers the same idempotency key again with 200 and the same job", async () => {
    const first = await call("POST", "/api/v1/jobs", { type: "a", idempotency_key: "order-42" });
    const again = await call("POST", "/api/v1/jobs", { type: "a", idempotency_key: "order-42" });
    expect(first.status).toBe(201);
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
  });

  it("says which fields are wrong", async () => {
    const result = await call("POST", "/api/v1/jobs", {
      type: "bad type!",
      priority: "urgent",
      max_retries: 101,
      run_at: "tomorrow",
      requires: ["ok", "not ok"],
      tags: { k: 1 },
      extra: true,
    });
    expectProblem(result, 400, "invalid_request");
    const paths = (result.body as unknown as { errors: { path: string }[] }).errors.map((e) => e.path).sort();
    expect(paths).toEqual(["extra", "max_retries", "priority", "requires.1", "run_at", "tags.k", "type"]);
  });

  it("answers 400 to a body that is not JSON and 415 to one that is not sent as JSON", async () => {
    expectProblem(await call("POST", "/api/v1/jobs", "{not json"), 400, "invalid_request");
    expectProblem(await call("POST", "/api/v1/jobs", "type=a", { "content-type": "application/x-www-form-urlencoded" }), 415, "unsupported_media_type");
    expectProblem(await call("POST", "/api/v1/jobs", "[1,2]"), 400, "invalid_request");
    expectProblem(await call("POST", "/api/v1/jobs", "null"), 400, "invalid_request");
    expectProblem(await call("POST", "/api/v1/jobs"), 400, "invalid_request");
  });

  it("answers 413 to a payload over GAFFER_MAX_PAYLOAD_BYTES and to an oversized body", async () => {
    const payload = { blob: "x".repeat(3000) };
    expectProblem(await call("POST", "/api/v1/jobs", { type: "a", payload }), 413, "payload_too_large");
    expectProblem(await call("POST", "/api/v1/jobs", { type: "a", payload: "y".repeat(200_000) }), 413, "payload_too_large");
  });

  it("measures a payload in bytes of UTF-8: one at the limit is stored, one byte over is refused, single or in a batch", async () => {
    // JSON text "é…é": 2 bytes a character and its 2 quotes; the limit is 2048.
    const atLimit = "é".repeat(1023);
    const stored = await call<{ id: string }>("POST", "/api/v1/jobs", { type: "utf8", payload: atLimit });
    expect(stored.status).toBe(201);
    expect((await call<{ payload: unknown }>("GET", `/api/v1/jobs/${stored.body.id}`)).body.payload).toBe(atLimit);
    const over = await call("POST", "/api/v1/jobs", { type: "utf8", payload: `${atLimit}é` });
    expectProblem(over, 413, "payload_too_large");
    expect(over.body.detail).toContain("the payload is 2050 bytes; the limit is 2048");
    const batch = await call("POST", "/api/v1/jobs/batch", { jobs: [{ type: "utf8", payload: atLimit }, { type: "utf8", payload: `${atLimit}é` }] });
    expectProblem(batch, 413, "payload_too_large");
    expect(batch.body.errors).toEqual([{ path: "jobs.1.payload", message: "at most 2048 bytes" }]);
    // 3 bytes a character: 682 of them and the quotes are the limit, one ASCII character more is one byte over.
    const euros = "€".repeat(682);
    expect((await call("POST", "/api/v1/jobs", { type: "utf8", payload: euros })).status).toBe(201);
    const oneOver = await call("POST", "/api/v1/jobs", { type: "utf8", payload: `${euros}x` });
    expectProblem(oneOver, 413, "payload_too_large");
    expect(oneOver.body.detail).toContain("the payload is 2049 bytes; the limit is 2048");
  });

  it("stores a null payload as null, and a payload not given as {}", async () => {
    const nulled = await call<{ id: string; payload: unknown }>("POST", "/api/v1/jobs", { type: "nulls", payload: null });
    const absent = await call<{ id: string; payload: unknown }>("POST", "/api/v1/jobs", { type: "nulls" });
    expect([nulled.status, nulled.body.payload, absent.status, absent.body.payload]).toEqual([201, null, 201, {}]);
    expect((await call<{ payload: unknown }>("GET", `/api/v1/jobs/${nulled.body.id}`)).body.payload).toBeNull();
    expect((await call<{ payload: unknown }>("GET", `/api/v1/jobs/${absent.body.id}`)).body.payload).toEqual({});
  });

  it("answers 400, not a crash, to a deeply nested payload", async () => {
    const deep = `{"type":"a","payload":${"[".repeat(5000)}${"]".repeat(5000)}}`;
    expectProblem(await call("POST", "/api/v1/jobs", deep), 400, "invalid_request");
    expect((await call("GET", "/health")).status).toBe(200);
  });

  it("takes a body nested 64 levels deep and refuses one of 65", async () => {
    // The body is level 0: a payload of 63 nested arrays (or objects) reaches level 63; of 64, level 64.
    const nested = (levels: number, open: string, close: string) => `{"type":"a","payload":${open.repeat(levels)}1${close.repeat(levels)}}`;
    expect((await call("POST", "/api/v1/jobs", nested(63, "[", "]"))).status).toBe(201);
    expect((await call("POST", "/api/v1/jobs", nested(63, '{"__proto__":', "}"))).status).toBe(201);
    const deep = await call("POST", "/api/v1/jobs", nested(64, "[", "]"));
    expectProblem(deep, 400, "invalid_request");
    expect(deep.body.detail).toContain("nested deeper than 64 levels");
    expectProblem(await call("POST", "/api/v1/jobs", nested(64, '{"__proto__":', "}")), 400, "invalid_request");
    expectProblem(await call("POST", "/api/v1/jobs/batch", `{"jobs":[{"type":"a"},${nested(63, "[", "]")}]}`), 400, "invalid_request");
  });

  it("answers 400 for an unknown dependency", async () => {
    const result = await call("POST", "/api/v1/jobs", { type: "a", depends_on: ["no-such-job"] });
    expectProblem(result, 400, "invalid_request");
    expect(result.body.errors).toEqual([{ path: "depends_on", message: expect.stringContaining("no-such-job") }]);
  });
});

describe("POST /api/v1/jobs/batch", () => {
  it("answers 201 with the jobs in order", async () => {
    const result = await call<{ items: { type: string; status: string }[] }>("POST", "/api/v1/jobs/batch", {
      jobs: [{ type: "b1" }, { type: "b2", priority: "live" }, { type: "b3", run_at: "2099-01-01T00:00:00Z" }],
    });
    expect(result.status).toBe(201);
    expect(result.body.items.map((j) => [j.type, j.status])).toEqual([
      ["b1", "pending"],
      ["b2", "pending"],
      ["b3", "scheduled"],
    ]);
  });

  it("rejects the whole batch for one bad job, naming it, and stores nothing", async () => {
    const before = await call<{ items: unknown[] }>("GET", "/api/v1/jobs?type=atomic");
    const invalid = await call("POST", "/api/v1/jobs/batch", { jobs: [{ type: "atomic" }, { type: "atomic" }, { type: "atomic", priority: "x" }] });
    expectProblem(invalid, 400, "invalid_request");
    expect(invalid.body.errors).toEqual([{ path: "jobs.2.priority", message: expect.any(String) }]);
    const unknown = await call("POST", "/api/v1/jobs/batch", { jobs: [{ type: "atomic" }, { type: "atomic", depends_on: ["nope"] }] });
    expectProblem(unknown, 400, "invalid_request");
    expect(unknown.body.errors).toEqual([{ path: "jobs.1.depends_on", message: expect.any(String) }]);
    const after = await call<{ items: unknown[] }>("GET", "/api/v1/jobs?type=atomic");
    expect(after.body.items).toHaveLength(before.body.items.length);
  });

  it("refuses an empty batch and one over 1000 jobs", async () => {
    expectProblem(await call("POST", "/api/v1/jobs/batch", { jobs: [] }), 400, "invalid_request");
    const jobs = Array.from({ length: 1001 }, () => ({ type: "x" }));
    expectProblem(await call("POST", "/api/v1/jobs/batch", { jobs }), 400, "invalid_request");
  });
});

describe("reading jobs", () => {
  it("pages through a filtered list with next_cursor", async () => {
    const outcome = await call<{ items: { id: string }[] }>("POST", "/api/v1/jobs/batch", {
      jobs: Array.from({ length: 5 }, (_, i) => ({ type: "paged", tags: { i: String(i) } })),
    });
    const ids = outcome.body.items.map((j) => j.id).reverse();
    const first = await call<{ items: { id: string }[]; next_cursor: string }>("GET", "/api/v1/jobs?type=paged&limit=2");
    const second = await call<{ items: { id: string }[]; next_cursor: string }>("GET", `/api/v1/jobs?type=paged&limit=2&cursor=${first.body.next_cursor}`);
    const third = await call<{ items: { id: string }[]; next_cursor: string | null }>("GET", `/api/v1/jobs?type=paged&limit=2&cursor=${second.body.next_cursor}`);
    expect([...first.body.items, ...second.body.items, ...third.body.items].map((j) => j.id)).toEqual(ids);
    expect(third.body.next_cursor).toBeNull();
    const tagged = await call<{ items: { id: string }[] }>("GET", "/api/v1/jobs?tag=i:3");
    expect(tagged.body.items.map((j) => j.id)).toEqual([ids[1]]);
  });

  it("answers 400 to a bad limit, status or cursor", async () => {
    expectProblem(await call("GET", "/api/v1/jobs?limit=0"), 400, "invalid_request");
    expectProblem(await call("GET", "/api/v1/jobs?limit=501"), 400, "invalid_request");
    expectProblem(await call("GET", "/api/v1/jobs?status=done"), 400, "invalid_request");
    expectProblem(await call("GET", "/api/v1/jobs?cursor=%27%3B--"), 400, "invalid_request");
    expectProblem(await call("GET", "/api/v1/jobs?status=pending&status=failed"), 400, "invalid_request");
  });

  it("answers 404 for a job or route that does not exist", async () => {
    expectProblem(await call("GET", "/api/v1/jobs/does-not-exist"), 404, "not_found");
    expectProblem(await call("GET", "/api/v1/nope"), 404, "not_found");
  });

  it("shows a job's events oldest first and the queue stats", async () => {
    const job = await call("POST", "/api/v1/jobs", { type: "evented", priority: "batch" });
    await call("PATCH", `/api/v1/jobs/${String(job.body.id)}`, { priority: "low" });
    await call("POST", `/api/v1/jobs/${String(job.body.id)}/cancel`);
    const events = await call<{ items: { event_type: string }[] }>("GET", `/api/v1/jobs/${String(job.body.id)}/events`);
    expect(events.body.items.map((e) => e.event_type)).toEqual(["job.submitted", "job.priority_changed", "job.canceled"]);
    const stats = await call("GET", "/api/v1/queue/stats");
    expect(stats.status).toBe(200);
    expect(Object.keys(stats.body)).toEqual(["jobs", "pending_by_priority", "oldest_pending_age_s", "nodes"]);
    expect(Object.keys(stats.body.jobs as object)).toEqual(["blocked", "scheduled", "pending", "running", "completed", "failed", "canceled"]);
  });
});

describe("acting on jobs", () => {
  it("cancels, refuses to cancel twice, retries, and refuses to retry a pending job", async () => {
    const job = await call("POST", "/api/v1/jobs", { type: "act" });
    const id = String(job.body.id);
    const canceled = await call("POST", `/api/v1/jobs/${id}/cancel`);
    expect(canceled.body).toMatchObject({ status: "canceled" });
    expectProblem(await call("POST", `/api/v1/jobs/${id}/cancel`), 409, "conflict");
    const retried = await call("POST", `/api/v1/jobs/${id}/retry`);
    expect(retried.body).toMatchObject({ id, status: "pending", retry_count: 0 });
    expectProblem(await call("POST", `/api/v1/jobs/${id}/retry`), 409, "conflict");
    const patched = await call("PATCH", `/api/v1/jobs/${id}`, { priority: "live" });
    expect(patched.body).toMatchObject({ priority: "live", effective_priority: "live" });
    expectProblem(await call("PATCH", `/api/v1/jobs/${id}`, { priority: "nope" }), 400, "invalid_request");
  });
});

describe("operations", () => {
  it("answers /health and /ready", async () => {
    expect((await call("GET", "/health")).body).toEqual({ status: "ok", auth: "off" });
    expect((await call("GET", "/ready")).status).toBe(200);
  });

  it("serves an OpenAPI document with every route", async () => {
    const doc = await call<{ openapi: string; paths: Record<string, Record<string, unknown>> }>("GET", "/openapi.json");
    expect(doc.body.openapi).toBe("3.1.0");
    for (const route of master.routes) {
      const path = route.spec.path.replace(/:([a-z_]+)/g, "{$1}");
      expect(doc.body.paths[path]?.[route.spec.method], `${route.spec.method} ${path}`).toBeDefined();
    }
  });
});
