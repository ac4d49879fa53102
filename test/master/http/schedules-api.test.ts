// /api/v1/schedules over HTTP: validation, ownership, update and delete.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "../../../master/auth/clients.js";
import type { MasterInternals } from "../../../master/index.js";
import { http, startTestMaster } from "../../helpers/master.js";
import { removeTempDirs } from "../../helpers/temp.js";

let master: MasterInternals;
const tokens: Record<string, string> = {};
const call = <T = Record<string, unknown>>(who: string, method: string, path: string, body?: unknown) =>
  http<T>(master.url, method, path, body, { authorization: `Bearer ${tokens[who] ?? ""}` });

beforeAll(async () => {
  master = await startTestMaster({ auth: "on" });
  for (const [name, role] of [["alice", "client"], ["bob", "client"], ["admin", "admin"], ["worker", "worker"]] as const) {
    const client = await createClient(master.store, { name, role, actor: null });
    const token = await http<{ access_token: string }>(master.url, "POST", "/api/v1/auth/token", {
      client_id: client.id,
      client_secret: client.client_secret,
    });
    tokens[name] = token.body.access_token;
  }
});
afterAll(async () => {
  await master.close();
  removeTempDirs();
});

describe("schedules API", () => {
  it("creates a schedule with its next run, and refuses bad cron, time zone, job and duplicates", async () => {
    const created = await call("alice", "POST", "/api/v1/schedules", {
      name: "nightly-report",
      cron: "0 3 * * *",
      timezone: "Europe/Berlin",
      job: { type: "report", payload: { day: "today" }, priority: "low" },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: "nightly-report", enabled: true, timezone: "Europe/Berlin", next_run_at: expect.any(String) });
    const badCron = await call("alice", "POST", "/api/v1/schedules", { name: "x", cron: "61 * * * *", job: { type: "t" } });
    expect(badCron.status).toBe(400);
    expect(badCron.body.errors).toEqual([{ path: "cron", message: expect.any(String) }]);
    const badZone = await call("alice", "POST", "/api/v1/schedules", { name: "x", cron: "* * * * *", timezone: "Mars/Base", job: { type: "t" } });
    expect(badZone.body.errors).toEqual([{ path: "timezone", message: expect.stringMatching(/time zone/) }]);
    const badJob = await call("alice", "POST", "/api/v1/schedules", { name: "x", cron: "* * * * *", job: { type: "t", depends_on: ["a"] } });
    expect(badJob.status).toBe(400);
    expect((await call("alice", "POST", "/api/v1/schedules", { name: "nightly-report", cron: "* * * * *", job: { type: "t" } })).status).toBe(409);
    expect((await call("bob", "POST", "/api/v1/schedules", { name: "nightly-report", cron: "* * * * *", job: { type: "t" } })).status).toBe(201);
    expect((await call("worker", "POST", "/api/v1/schedules", { name: "w", cron: "* * * * *", job: { type: "t" } })).status).toBe(403);
  });

  it("shows a client only its own schedules", async () => {
    const mine = await call<{ items: { name: string; client_id: string }[] }>("alice", "GET", "/api/v1/schedules");
    expect(mine.body.items.every((s) => s.name === "nightly-report")).toBe(true);
    expect(new Set(mine.body.items.map((s) => s.client_id)).size).toBe(1);
    const everyone = await call<{ items: unknown[] }>("admin", "GET", "/api/v1/schedules");
    expect(everyone.body.items.length).toBeGreaterThan(mine.body.items.length);
    const alices = mine.body.items[0] as unknown as { id: string };
    expect((await call("bob", "GET", `/api/v1/schedules/${alices.id}`)).status).toBe(404);
    expect((await call("bob", "DELETE", `/api/v1/schedules/${alices.id}`)).status).toBe(404);
  });

  it("updates (disabling clears next_run_at) and deletes", async () => {
    const created = await call("alice", "POST", "/api/v1/schedules", { name: "hourly", cron: "0 * * * *", job: { type: "t" } });
    const id = String(created.body.id);
    const disabled = await call("alice", "PATCH", `/api/v1/schedules/${id}`, { enabled: false });
    expect(disabled.body).toMatchObject({ enabled: false, next_run_at: null });
    const changed = await call("alice", "PATCH", `/api/v1/schedules/${id}`, { enabled: true, cron: "*/10 * * * *" });
    expect(changed.body).toMatchObject({ enabled: true, cron: "*/10 * * * *", next_run_at: expect.any(String) });
    expect((await call("alice", "DELETE", `/api/v1/schedules/${id}`)).status).toBe(200);
    expect((await call("alice", "GET", `/api/v1/schedules/${id}`)).status).toBe(404);
  });

  it("shows the last tick skipped and why; a schedule disabled for it fires again once changed", async () => {
    const created = await call("alice", "POST", "/api/v1/schedules", { name: "skipped", cron: "0 * * * *", job: { type: "t" } });
    const id = String(created.body.id);
    expect(created.body).toMatchObject({ last_skipped_at: null, last_skip_reason: null, last_skip_message: null });
    // What the scheduler does with a cron that no longer parses (the API refuses one).
    const tick = String(created.body.next_run_at);
    const message = "not a valid cron expression; the schedule is disabled until it is changed";
    expect(await master.store.schedules.skip({ scheduleId: id, dueAt: tick, nextRunAt: null, reason: "invalid_cron", message })).toEqual({ skipped: true });
    const shown = await call("alice", "GET", `/api/v1/schedules/${id}`);
    expect(shown.body).toMatchObject({ enabled: false, next_run_at: null, last_skipped_at: tick, last_skip_reason: "invalid_cron", last_skip_message: message });
    const listed = await call<{ items: Record<string, unknown>[] }>("alice", "GET", "/api/v1/schedules");
    expect(listed.body.items.find((item) => item.id === id)).toMatchObject({ last_skip_reason: "invalid_cron" });
    const enabled = await call("alice", "PATCH", `/api/v1/schedules/${id}`, { enabled: true, cron: "*/30 * * * *" });
    expect(enabled.body).toMatchObject({ enabled: true, next_run_at: expect.any(String), last_skip_reason: "invalid_cron" });
  });

  it("fires through the running master: a job appears with tags.schedule", async () => {
    // Every second: an admin's (a client's schedules fire at most once a minute, test/master/http/quotas.test.ts).
    const created = await call("admin", "POST", "/api/v1/schedules", { name: "every-second", cron: "* * * * * *", job: { type: "tick" } });
    const id = String(created.body.id);
    let found: unknown[] = [];
    for (let i = 0; i < 40 && found.length === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      found = (await call<{ items: unknown[] }>("admin", "GET", `/api/v1/jobs?tag=schedule:${id}`)).body.items;
    }
    expect(found.length).toBeGreaterThan(0);
    await call("admin", "DELETE", `/api/v1/schedules/${id}`);
  });
});
