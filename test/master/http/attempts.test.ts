// A job's attempts and history over real HTTP: one attempt per hand-out, each with its
// node, outcome, error and the end of the handler's output (GAFFER_LOG_TAIL_BYTES); the
// events built from the job, its attempts and its audit rows.
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MasterInternals } from "../../../master/index.js";
import type { JobAttempt, JobEvent } from "../../../master/store/types.js";
import { http, startTestMaster } from "../../helpers/master.js";
import { removeTempDirs } from "../../helpers/temp.js";

let master: MasterInternals;
const call = <T = Record<string, unknown>>(method: string, path: string, body?: unknown) => http<T>(master.url, method, path, body);

beforeAll(async () => {
  master = await startTestMaster({ env: { GAFFER_LOG_TAIL_BYTES: "16" }, retryDelayS: 0 });
});
afterAll(async () => {
  await master.close();
  removeTempDirs();
});

async function node(name: string, labels: string[]): Promise<string> {
  const made = await call("POST", "/api/v1/nodes", { name, labels, capacity: 2, version: "1" });
  return String(made.body.id);
}

async function claimOne(nodeId: string): Promise<{ id: string; attempt: number }> {
  const claimed = await call<{ items: { id: string; attempt: number }[] }>("POST", `/api/v1/nodes/${nodeId}/claim`, { max: 1 });
  const job = claimed.body.items[0];
  if (!job) throw new Error("nothing claimed");
  return job;
}

describe("attempts", () => {
  it("lists each hand-out with its node, outcome, error and log tail, and the history built from them", async () => {
    const first = await node("first", ["attempts"]);
    const second = await node("second", ["attempts"]);
    const submitted = await call("POST", "/api/v1/jobs", { type: "flaky", requires: ["attempts"], max_retries: 1 });
    const id = String(submitted.body.id);

    const one = await claimOne(first);
    const failed = await call("POST", `/api/v1/jobs/${id}/fail`, {
      node_id: first,
      attempt: one.attempt,
      error: { message: "boom", code: "exit_1" },
      log_tail: "starting\nsomething went wrong: é\n",
    });
    expect(failed.body).toMatchObject({ status: "pending", retry_count: 1 });
    const two = await claimOne(second);
    const done = await call("POST", `/api/v1/nodes/${second}/results`, {
      results: [{ job_id: id, attempt: two.attempt, status: "completed", result: { ok: 1 }, log_tail: "all good" }],
    });
    expect(done.body).toEqual({ items: [{ job_id: id, accepted: true }] });

    const attempts = await call<{ items: JobAttempt[] }>("GET", `/api/v1/jobs/${id}/attempts`);
    expect(attempts.status).toBe(200);
    expect(attempts.body.items).toEqual([
      {
        attempt: 1,
        node_id: first,
        node_name: "first",
        started_at: expect.any(String),
        finished_at: expect.any(String),
        outcome: "failed",
        error: { message: "boom", code: "exit_1", retryable: true },
        // The last 16 bytes (é is two of them).
        log_tail: " went wrong: é\n",
      },
      {
        attempt: 2,
        node_id: second,
        node_name: "second",
        started_at: expect.any(String),
        finished_at: expect.any(String),
        outcome: "completed",
        error: null,
        log_tail: "all good",
      },
    ]);
    expect(Buffer.byteLength(attempts.body.items[0]?.log_tail ?? "")).toBeLessThanOrEqual(16);

    const events = await call<{ items: JobEvent[] }>("GET", `/api/v1/jobs/${id}/events`);
    expect(events.body.items.map((event) => [event.event_type, event.node_id ?? null, event.attempt ?? null])).toEqual([
      ["job.submitted", null, null],
      ["job.assigned", first, 1],
      ["job.retry_scheduled", first, 1],
      ["job.assigned", second, 2],
      ["job.completed", second, 2],
    ]);

    // The same rows, readable with sqlite3 while the master runs (API.md §11).
    const db = new Database(master.config.db, { readonly: true });
    try {
      const rows = db.prepare("SELECT attempt, node_id, outcome, finished_at FROM job_attempts WHERE job_id = ? ORDER BY attempt").all(id);
      expect(rows).toEqual([
        { attempt: 1, node_id: first, outcome: "failed", finished_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) },
        { attempt: 2, node_id: second, outcome: "completed", finished_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) },
      ]);
      // A hand-out and a node's result are the job's own record, not audit rows.
      const audited = db.prepare("SELECT event_type FROM audit_log WHERE entity_id = ? ORDER BY id").all(id);
      expect(audited).toEqual([{ event_type: "job.submitted" }]);
    } finally {
      db.close();
    }
  });

  it("answers 404 for a job that does not exist", async () => {
    expect((await call("GET", "/api/v1/jobs/00000000-0000-4000-8000-000000000000/attempts")).status).toBe(404);
  });
});

describe("lastBytes", () => {
  it("keeps the last bytes of a tail and never half a character", async () => {
    const { lastBytes } = await import("../../../master/http/routes/nodes.js");
    expect(lastBytes("abc", 10)).toBe("abc");
    expect(lastBytes("abcdef", 3)).toBe("def");
    expect(lastBytes("aé", 2)).toBe("é");
    expect(lastBytes("aé", 1)).toBe("");
    expect(lastBytes(undefined, 1)).toBeUndefined();
  });
});
