// GET /api/v1/types and PUT /api/v1/types/:type over real HTTP (API.md §5a), with auth on:
// everyone reads the counts, only admins change a type; why says a paused or full type.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MasterInternals } from "../../../master/index.js";
import { http, signedIn, startTestMaster } from "../../helpers/master.js";
import { removeTempDirs } from "../../helpers/temp.js";

let master: MasterInternals;
let headers: Record<string, Record<string, string>> = {};
const as = <T = Record<string, unknown>>(role: string, method: string, path: string, body?: unknown) => http<T>(master.url, method, path, body, headers[role]);

beforeAll(async () => {
  master = await startTestMaster({ auth: "on", rateLimitPerMinute: 100_000 });
  headers = await signedIn(master, { admin: "admin", client: "client", worker: "worker" });
});
afterAll(async () => {
  await master.close();
  removeTempDirs();
});

describe("/api/v1/types", () => {
  it("lists types with their counts, lets only an admin pause or limit one, and why says so", async () => {
    const job = await as("client", "POST", "/api/v1/jobs", { type: "thumbnail" });
    expect(job.status).toBe(201);
    const listed = await as<{ items: Record<string, unknown>[] }>("client", "GET", "/api/v1/types");
    expect(listed.body.items).toContainEqual({ type: "thumbnail", max_running: null, paused: false, pending: 1, running: 0, completed_1h: 0, failed_1h: 0 });

    expect((await as("client", "PUT", "/api/v1/types/thumbnail", { paused: true })).status).toBe(403);
    expect((await as("worker", "GET", "/api/v1/types")).status).toBe(403);
    for (const bad of [{}, { paused: "yes" }, { max_running: -1 }, { max_running: 1.5 }, { other: 1 }]) {
      const refused = await as("admin", "PUT", "/api/v1/types/thumbnail", bad);
      expect(refused.status).toBe(400);
      expect(refused.body).toMatchObject({ code: "invalid_request" });
    }
    expect((await as("admin", "PUT", "/api/v1/types/not%20a%20type", { paused: true })).status).toBe(400);

    const paused = await as("admin", "PUT", "/api/v1/types/thumbnail", { paused: true });
    expect(paused.body).toMatchObject({ type: "thumbnail", paused: true, max_running: null, pending: 1 });
    const why = await as<{ reasons: { code: string }[]; ready: boolean }>("client", "GET", `/api/v1/jobs/${String(job.body.id)}/why`);
    expect(why.body.reasons.map((reason) => reason.code)).toContain("type_paused");
    expect(why.body.ready).toBe(false);

    const limited = await as("admin", "PUT", "/api/v1/types/thumbnail", { paused: false, max_running: 0 });
    expect(limited.body).toMatchObject({ paused: false, max_running: 0 });
    const full = await as<{ reasons: { code: string; limit?: number }[] }>("client", "GET", `/api/v1/jobs/${String(job.body.id)}/why`);
    expect(full.body.reasons).toContainEqual(expect.objectContaining({ code: "type_limit", limit: 0, running: 0 }));

    // A type no job has yet may be set too.
    expect((await as("admin", "PUT", "/api/v1/types/future", { max_running: 5 })).body).toMatchObject({ type: "future", max_running: 5, pending: 0 });
  });
});
