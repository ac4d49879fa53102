// Operations over HTTP: metrics, state, modes (paused, read_only, and read_only by itself on a full disk).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MasterInternals } from "../../../master/index.js";
import type { DeadNodeSweeper } from "../../../master/sweepers/dead-nodes.js";
import { FakeClock } from "../../helpers/clock.js";
import { http, startTestMaster } from "../../helpers/master.js";
import { sqliteStoreOpener } from "../../helpers/store.js";
import { removeTempDirs } from "../../helpers/temp.js";

let master: MasterInternals;
const call = <T = Record<string, unknown>>(method: string, path: string, body?: unknown) => http<T>(master.url, method, path, body);

beforeAll(async () => {
  master = await startTestMaster();
});
afterAll(async () => {
  await master.close();
  removeTempDirs();
});

function metricValue(text: string, name: string, labels = ""): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ""} `));
  return line ? Number(line.split(" ").at(-1)) : Number.NaN;
}

describe("GET /metrics", () => {
  it("counts submissions, completions, failures, waits, runs, HTTP requests and queue gauges", async () => {
    const node = await call("POST", "/api/v1/nodes", { name: "metrics-node", labels: ["metrics"], capacity: 5 });
    const nodeId = String(node.body.id);
    await call("POST", "/api/v1/jobs/batch", { jobs: [{ type: "m", requires: ["metrics"] }, { type: "m", requires: ["metrics"], max_retries: 0 }] });
    await call("POST", "/api/v1/jobs", { type: "m", priority: "low", requires: ["metrics", "nowhere"] });
    const claimed = await call<{ items: { id: string; attempt: number }[] }>("POST", `/api/v1/nodes/${nodeId}/claim`, { max: 5 });
    const [a, b] = claimed.body.items;
    await call("POST", `/api/v1/nodes/${nodeId}/results`, {
      results: [
        { job_id: a?.id, attempt: a?.attempt, status: "completed" },
        { job_id: b?.id, attempt: b?.attempt, status: "failed", error: { message: "x" } },
      ],
    });
    const response = await fetch(`${master.url}/metrics`);
    expect(response.headers.get("content-type")).toMatch(/^text\/plain/);
    const text = await response.text();
    expect(metricValue(text, "gaffer_jobs_submitted_total", 'type="m",priority="medium"')).toBe(2);
    expect(metricValue(text, "gaffer_jobs_submitted_total", 'type="m",priority="low"')).toBe(1);
    expect(metricValue(text, "gaffer_jobs_completed_total", 'type="m",priority="medium"')).toBe(1);
    expect(metricValue(text, "gaffer_jobs_failed_total", 'type="m",priority="medium",reason="max_retries_exceeded"')).toBe(1);
    expect(metricValue(text, "gaffer_job_wait_seconds_count", 'priority="medium"')).toBe(2);
    expect(metricValue(text, "gaffer_job_run_seconds_count", 'type="m"')).toBe(2);
    expect(metricValue(text, "gaffer_jobs_pending", 'priority="low"')).toBe(1);
    expect(metricValue(text, "gaffer_nodes", 'status="online"')).toBe(1);
    expect(metricValue(text, "gaffer_http_request_duration_seconds_count", 'method="POST",route="/api/v1/jobs/batch",status="201"')).toBe(1);
    expect(text).toMatch(/^gaffer_process_resident_memory_bytes \d+/m);
    for (const name of ["gaffer_jobs_retried_total", "gaffer_jobs_reassigned_total", "gaffer_nodes_dead_total", "gaffer_tokens_issued_total", "gaffer_invalid_tokens_total", "gaffer_rate_limited_total", "gaffer_jobs_running", "gaffer_oldest_pending_age_seconds"]) {
      expect(text).toContain(`# TYPE ${name}`);
    }
  });
});

describe("GET /metrics: HTTP requests answered with a problem", () => {
  it("times each refusal once, whether the prologue, the body parser or the handler refused it", async () => {
    const count = async (route: string, status: number) => {
      const text = await (await fetch(`${master.url}/metrics`)).text();
      const value = metricValue(text, "gaffer_http_request_duration_seconds_count", `method="POST",route="${route}",status="${status}"`);
      return Number.isNaN(value) ? 0 : value;
    };
    const before = {
      media: await count("/api/v1/jobs", 415),
      invalid: await count("/api/v1/jobs", 400),
      unknown: await count("/api/v1/jobs/:id/cancel", 404),
    };
    // Refused by the prologue (not JSON), by body-parser (malformed JSON), by the schema, by the handler.
    expect((await http(master.url, "POST", "/api/v1/jobs", "type=x", { "content-type": "text/plain" })).status).toBe(415);
    expect((await call("POST", "/api/v1/jobs", "{not json")).status).toBe(400);
    expect((await call("POST", "/api/v1/jobs", { type: 42 })).status).toBe(400);
    expect((await call("POST", "/api/v1/jobs/00000000000000000000000000/cancel")).status).toBe(404);
    // Observed when the answer has gone out: the client may read it a moment before.
    await expect.poll(() => count("/api/v1/jobs", 415)).toBe(before.media + 1);
    await expect.poll(() => count("/api/v1/jobs", 400)).toBe(before.invalid + 2);
    await expect.poll(() => count("/api/v1/jobs/:id/cancel", 404)).toBe(before.unknown + 1);
    // Once each: no second observation comes later.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await count("/api/v1/jobs", 400)).toBe(before.invalid + 2);
  });
});

describe("GET /metrics with clients' job types", () => {
  it("gives the first GAFFER_METRICS_MAX_TYPES types their own series and counts the rest under type=\"other\"", async () => {
    const bounded = await startTestMaster({ metricsMaxTypes: 2 });
    try {
      const jobs = ["a", "b", "c", "a", "d", "e"].map((type) => ({ type }));
      expect((await http(bounded.url, "POST", "/api/v1/jobs/batch", { jobs })).status).toBe(201);
      expect((await http(bounded.url, "POST", "/api/v1/jobs", { type: "f" })).status).toBe(201);
      const text = await (await fetch(`${bounded.url}/metrics`)).text();
      expect(metricValue(text, "gaffer_jobs_submitted_total", 'type="a",priority="medium"')).toBe(2);
      expect(metricValue(text, "gaffer_jobs_submitted_total", 'type="b",priority="medium"')).toBe(1);
      expect(metricValue(text, "gaffer_jobs_submitted_total", 'type="other",priority="medium"')).toBe(4);
      expect(text).not.toMatch(/type="[cdef]"/);
    } finally {
      await bounded.close();
    }
  });
});

describe("GET /api/v1/state", () => {
  it("tells mode, version, uptime, database, sweepers and counts", async () => {
    const state = await call<Record<string, Record<string, unknown>>>("GET", "/api/v1/state");
    expect(state.body).toMatchObject({ mode: "normal", version: expect.any(String), uptime_s: expect.any(Number) });
    expect(state.body.db).toMatchObject({ dialect: "sqlite", journal_mode: "wal", synchronous: "full" });
    expect(Object.keys(state.body.sweepers ?? {})).toEqual(expect.arrayContaining(["dead_nodes", "stalled_jobs", "promoter", "aging", "token_cleanup"]));
    expect(state.body.counts).toMatchObject({ jobs: expect.any(Object), nodes: expect.any(Object), waiting_claims: expect.any(Number) });
  });
});

describe("modes", () => {
  it("paused: hands out nothing until normal again, then the waiting claim gets its job", async () => {
    const node = await call("POST", "/api/v1/nodes", { name: "paused-node", labels: ["paused"] });
    const nodeId = String(node.body.id);
    expect((await call("PUT", "/api/v1/state/mode", { mode: "paused" })).body).toMatchObject({ mode: "paused" });
    const job = await call("POST", "/api/v1/jobs", { type: "p", requires: ["paused"] });
    expect(job.status).toBe(201);
    expect((await call("POST", `/api/v1/nodes/${nodeId}/claim`, { max: 1 })).body).toEqual({ items: [] });
    const waiting = call<{ items: { id: string }[] }>("POST", `/api/v1/nodes/${nodeId}/claim`, { max: 1, wait_s: 10 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    await call("PUT", "/api/v1/state/mode", { mode: "normal" });
    expect((await waiting).body.items.map((j) => j.id)).toEqual([job.body.id]);
  });

  it("read_only: refuses writes with 503, keeps reads, says so in /ready, and leaves on normal", async () => {
    const before = await call("POST", "/api/v1/jobs", { type: "ro" });
    await call("PUT", "/api/v1/state/mode", { mode: "read_only" });
    const refused = await call("POST", "/api/v1/jobs", { type: "ro" });
    expect(refused.status).toBe(503);
    expect(refused.body).toMatchObject({ code: "unavailable" });
    expect((await call("GET", `/api/v1/jobs/${String(before.body.id)}`)).status).toBe(200);
    expect((await call("GET", "/ready")).status).toBe(503);
    expect((await call("PUT", "/api/v1/state/mode", { mode: "normal" })).status).toBe(200);
    expect((await call("POST", "/api/v1/jobs", { type: "ro" })).status).toBe(201);
    const events = await master.store.audit.list({ limit: 10, eventType: "mode.changed" });
    expect(events.items.map((e) => e.details.to)).toEqual(expect.arrayContaining(["read_only", "normal", "paused"]));
  });

  it("declares no node dead for silence while read-only, nor within a node timeout after it", async () => {
    const clock = new FakeClock(new Date().toISOString());
    const own = await startTestMaster({ clock, env: { GAFFER_NODE_TIMEOUT_S: "10", GAFFER_SWEEP_INTERVAL_S: "3600" } });
    try {
      const sweeper = own.services.find((service) => service.name === "dead_nodes") as DeadNodeSweeper;
      const node = await http(own.url, "POST", "/api/v1/nodes", { name: "quiet", capacity: 1 });
      clock.advanceSeconds(11); // past the start's grace
      await http(own.url, "POST", `/api/v1/nodes/${String(node.body.id)}/heartbeat`, { running: [] });
      await http(own.url, "PUT", "/api/v1/state/mode", { mode: "read_only" });
      clock.advanceSeconds(60); // heartbeats are refused all this while
      expect((await sweeper.runOnce()).skipped).toBe(true);
      await http(own.url, "PUT", "/api/v1/state/mode", { mode: "normal" });
      clock.advanceSeconds(5);
      expect((await sweeper.runOnce()).skipped).toBe(true);
      clock.advanceSeconds(6); // a node timeout after read-only ended, still silent: dead
      expect((await sweeper.runOnce()).dead.map((dead) => dead.nodeId)).toEqual([node.body.id]);
    } finally {
      await own.close();
    }
  });

  it("turns read_only by itself when the disk is full, keeps what it acknowledged, and recovers", async () => {
    const opener = sqliteStoreOpener();
    const own = await startTestMaster({}, { openStore: opener.open });
    try {
      const sqlite = opener.database!.sqlite;
      const acknowledged: string[] = [];
      const first = await http(own.url, "POST", "/api/v1/jobs", { type: "full" });
      acknowledged.push(String(first.body.id));
      // The disk "fills": the database may not grow past its current size.
      sqlite.pragma(`max_page_count = ${Number(sqlite.pragma("page_count", { simple: true }))}`);
      let status = 201;
      for (let i = 0; i < 200 && status === 201; i++) {
        const result = await http(own.url, "POST", "/api/v1/jobs", { type: "full", payload: { blob: "x".repeat(4000), i } });
        status = result.status;
        if (status === 201) acknowledged.push(String(result.body.id));
      }
      expect(status).toBe(503);
      const state = await http<{ mode: string; mode_reason: string }>(own.url, "GET", "/api/v1/state");
      expect(state.body.mode).toBe("read_only");
      expect(state.body.mode_reason).toMatch(/SQLITE_FULL/);
      expect((await http(own.url, "GET", "/ready")).status).toBe(503);
      expect((await http(own.url, "POST", "/api/v1/jobs", { type: "tiny" })).status).toBe(503);
      for (const id of acknowledged) expect((await http(own.url, "GET", `/api/v1/jobs/${id}`)).status).toBe(200);
      // Still full: asking for normal fails and stays read-only.
      const tooSoon = await http(own.url, "PUT", "/api/v1/state/mode", { mode: "normal" });
      expect(tooSoon.status).toBe(503);
      // Space returns.
      sqlite.pragma("max_page_count = 1073741823");
      expect((await http(own.url, "PUT", "/api/v1/state/mode", { mode: "normal" })).body).toMatchObject({ mode: "normal" });
      expect((await http(own.url, "POST", "/api/v1/jobs", { type: "after" })).status).toBe(201);
    } finally {
      await own.close();
    }
  });
});

describe("dashboard data", () => {
  it("counts jobs completed and failed per minute from the database", async () => {
    const node = await call("POST", "/api/v1/nodes", { name: "tp-node", labels: ["tp"], capacity: 5 });
    const nodeId = String(node.body.id);
    await call("POST", "/api/v1/jobs/batch", { jobs: [0, 1, 2].map(() => ({ type: "tp", requires: ["tp"], max_retries: 0 })) });
    const claimed = await call<{ items: { id: string; attempt: number; type: string }[] }>("POST", `/api/v1/nodes/${nodeId}/claim`, { max: 5 });
    claimed.body.items = claimed.body.items.filter((job) => job.type === "tp");
    const before = await call<{ minutes: { completed: number; failed: number }[] }>("GET", "/api/v1/queue/throughput");
    const sum = (rows: { completed: number; failed: number }[]) =>
      rows.reduce((total, row) => ({ completed: total.completed + row.completed, failed: total.failed + row.failed }), { completed: 0, failed: 0 });
    await call("POST", `/api/v1/nodes/${nodeId}/results`, {
      results: claimed.body.items.map((job, i) =>
        i < 2 ? { job_id: job.id, attempt: job.attempt, status: "completed" } : { job_id: job.id, attempt: job.attempt, status: "failed", error: { message: "x" } },
      ),
    });
    const after = await call<{ since: string; minutes: { minute: string; completed: number; failed: number }[] }>("GET", "/api/v1/queue/throughput?minutes=60");
    const delta = { completed: sum(after.body.minutes).completed - sum(before.body.minutes).completed, failed: sum(after.body.minutes).failed - sum(before.body.minutes).failed };
    expect(delta).toEqual({ completed: 2, failed: 1 });
    expect(after.body.minutes.at(-1)?.minute).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:00\.000Z$/);
    expect((await call("GET", "/api/v1/queue/throughput?minutes=0")).status).toBe(400);
  });

  it("lists the audit log with filters, and tells who the caller is", async () => {
    const job = await call("POST", "/api/v1/jobs", { type: "audited" });
    const page = await call<{ items: { event_type: string; entity_id: string }[] }>("GET", `/api/v1/audit?entity_id=${String(job.body.id)}`);
    expect(page.body.items.map((e) => e.event_type)).toEqual(["job.submitted"]);
    const byType = await call<{ items: { event_type: string }[] }>("GET", "/api/v1/audit?event_type=node.registered&limit=2");
    expect(byType.body.items.every((e) => e.event_type === "node.registered")).toBe(true);
    expect((await call("GET", "/api/v1/auth/me")).body).toEqual({ client_id: "dev", name: "dev", role: "admin", auth: "off" });
  });
});
