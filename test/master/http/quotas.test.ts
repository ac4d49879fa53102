// Quotas of the client role over HTTP (API.md §4): jobs not yet finished, schedules and how
// often they fire, and the body of a batch. Admins are not held to them.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MasterInternals } from "../../../master/index.js";
import { http, signedIn, startTestMaster } from "../../helpers/master.js";
import { removeTempDirs } from "../../helpers/temp.js";

let master: MasterInternals;
let headers: Record<string, Record<string, string>>;
const call = <T = Record<string, unknown>>(who: string, method: string, path: string, body?: unknown) =>
  http<T>(master.url, method, path, body, headers[who]);
const jobsOf = async (who: string) => (await call<{ items: unknown[] }>(who, "GET", "/api/v1/jobs?limit=500")).body.items.length;

beforeAll(async () => {
  master = await startTestMaster({ auth: "on", clientMaxQueued: 3, clientMaxSchedules: 2, clientMaxBatchBytes: 2048 });
  headers = await signedIn(master, { client: "client", other: "client", admin: "admin" });
});
afterAll(async () => {
  await master.close();
  removeTempDirs();
});

describe("client quotas", () => {
  it("refuses a submit or a batch past GAFFER_CLIENT_MAX_QUEUED with 429 quota_exceeded, storing nothing", async () => {
    expect((await call("client", "POST", "/api/v1/jobs/batch", { jobs: [{ type: "a" }, { type: "a" }] })).status).toBe(201);
    const batch = await call("client", "POST", "/api/v1/jobs/batch", { jobs: [{ type: "a" }, { type: "a" }] });
    expect(batch.status).toBe(429);
    expect(batch.headers.get("content-type")).toMatch(/application\/problem\+json/);
    expect(batch.body).toMatchObject({ status: 429, code: "quota_exceeded", detail: expect.stringMatching(/2 jobs not yet finished.*at most 3/) });
    expect(batch.headers.get("retry-after")).toBeNull();
    expect(await jobsOf("client")).toBe(2);
    const third = await call<{ id: string }>("client", "POST", "/api/v1/jobs", { type: "a" });
    expect(third.status).toBe(201);
    expect((await call("client", "POST", "/api/v1/jobs", { type: "a" })).body).toMatchObject({ code: "quota_exceeded" });
    expect(await jobsOf("client")).toBe(3);
    // Another client has its own count; an admin has none.
    expect((await call("other", "POST", "/api/v1/jobs", { type: "a" })).status).toBe(201);
    for (let i = 0; i < 4; i++) expect((await call("admin", "POST", "/api/v1/jobs", { type: "a" })).status).toBe(201);
    // A canceled job frees its place.
    expect((await call("client", "POST", `/api/v1/jobs/${third.body.id}/cancel`)).status).toBe(200);
    expect((await call("client", "POST", "/api/v1/jobs", { type: "a" })).status).toBe(201);
  });

  it("holds a client's batch body to GAFFER_CLIENT_MAX_BATCH_BYTES, an admin's to GAFFER_MAX_BATCH_BYTES", async () => {
    const jobs = Array.from({ length: 30 }, (_, i) => ({ type: "big", payload: { text: "x".repeat(60), i } }));
    expect(JSON.stringify({ jobs }).length).toBeGreaterThan(2048);
    const refused = await call("other", "POST", "/api/v1/jobs/batch", { jobs });
    expect(refused.status).toBe(413);
    expect(refused.body).toMatchObject({ code: "payload_too_large", detail: expect.stringMatching(/GAFFER_CLIENT_MAX_BATCH_BYTES/) });
    expect((await call("admin", "POST", "/api/v1/jobs/batch", { jobs })).status).toBe(201);
  });

  it("refuses a client's schedule past GAFFER_CLIENT_MAX_SCHEDULES with 429 quota_exceeded", async () => {
    const create = (who: string, name: string, cron = "0 3 * * *") => call(who, "POST", "/api/v1/schedules", { name, cron, job: { type: "report" } });
    expect((await create("client", "one")).status).toBe(201);
    expect((await create("client", "two")).status).toBe(201);
    const third = await create("client", "three");
    expect(third.status).toBe(429);
    expect(third.body).toMatchObject({ code: "quota_exceeded", detail: expect.stringMatching(/GAFFER_CLIENT_MAX_SCHEDULES/) });
    expect((await call<{ items: unknown[] }>("client", "GET", "/api/v1/schedules")).body.items).toHaveLength(2);
    for (const name of ["a", "b", "c"]) expect((await create("admin", name)).status).toBe(201);
  });

  it("refuses a client's cron that fires more than once a minute, on create and on update; an admin's is taken", async () => {
    for (const cron of ["* * * * * *", "0,30 * * * * *", "*/10 * * * * *"]) {
      const refused = await call("other", "POST", "/api/v1/schedules", { name: "fast", cron, job: { type: "tick" } });
      expect(refused.status).toBe(400);
      expect(refused.body).toMatchObject({ code: "invalid_request", errors: [{ path: "cron", message: expect.stringMatching(/once a minute/) }] });
    }
    const minutely = await call<{ id: string }>("other", "POST", "/api/v1/schedules", { name: "minutely", cron: "30 * * * * *", job: { type: "tick" } });
    expect(minutely.status).toBe(201);
    const faster = await call("other", "PATCH", `/api/v1/schedules/${minutely.body.id}`, { cron: "*/5 * * * * *" });
    expect(faster.status).toBe(400);
    expect(faster.body).toMatchObject({ errors: [{ path: "cron" }] });
    // Disabled, a schedule never fires, whatever its cron.
    expect((await call("other", "PATCH", `/api/v1/schedules/${minutely.body.id}`, { cron: "*/5 * * * * *", enabled: false })).status).toBe(200);
    expect((await call("other", "PATCH", `/api/v1/schedules/${minutely.body.id}`, { enabled: true })).status).toBe(400);
    expect((await call("admin", "POST", "/api/v1/schedules", { name: "fast", cron: "* * * * * *", job: { type: "tick" } })).status).toBe(201);
  });
});
