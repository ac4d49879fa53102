// GET /jobs/:id?wait_s=N (API.md §5): answered the moment the job is final, woken by the
// store's commit signal, or with its current state once N seconds pass.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MasterInternals } from "../../../master/index.js";
import { JobWaiters } from "../../../master/queue/job-waiters.js";
import type { Job } from "../../../master/store/types.js";
import { http, startTestMaster } from "../../helpers/master.js";
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

async function pendingJob(label: string): Promise<string> {
  const made = await call("POST", "/api/v1/jobs", { type: "waited", requires: [label] });
  return String(made.body.id);
}

describe("GET /jobs/:id?wait_s=", () => {
  it("answers the moment the job completes, long before its wait ends", async () => {
    const id = await pendingJob("wait-complete");
    const node = String((await call("POST", "/api/v1/nodes", { name: "waiter-node", labels: ["wait-complete"], capacity: 1 })).body.id);
    const started = Date.now();
    const waiting = call<Job>("GET", `/api/v1/jobs/${id}?wait_s=30`);
    const claimed = await call<{ items: { attempt: number }[] }>("POST", `/api/v1/nodes/${node}/claim`, { max: 1 });
    await call("POST", `/api/v1/jobs/${id}/complete`, { node_id: node, attempt: claimed.body.items[0]?.attempt, result: { ok: true } });
    const answer = await waiting;
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ id, status: "completed", result: { ok: true } });
    // Woken by the commit, not by the end of its 30 s.
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it("answers a canceled job's waiter, and a final job at once", async () => {
    const id = await pendingJob("wait-cancel");
    const waiting = call<Job>("GET", `/api/v1/jobs/${id}?wait_s=30`);
    await call("POST", `/api/v1/jobs/${id}/cancel`);
    expect((await waiting).body.status).toBe("canceled");
    const again = await call<Job>("GET", `/api/v1/jobs/${id}?wait_s=30`);
    expect(again.body.status).toBe("canceled");
  });

  it("answers with the job as it is once the wait ends", async () => {
    const id = await pendingJob("wait-timeout");
    const answer = await call<Job>("GET", `/api/v1/jobs/${id}?wait_s=1`);
    expect(answer.status).toBe(200);
    expect(answer.body.status).toBe("pending");
  });

  it("refuses a wait over 60 s or not a whole number with a problem document", async () => {
    const id = await pendingJob("wait-bad");
    for (const bad of ["61", "-1", "1.5", "soon"]) {
      const answer = await call("GET", `/api/v1/jobs/${id}?wait_s=${bad}`);
      expect(answer.status).toBe(400);
      expect(answer.body).toMatchObject({ code: "invalid_request" });
    }
  });
});

describe("JobWaiters", () => {
  it("wakes only the waiters of finished jobs, and forgets a waiter that left", async () => {
    const waiters = new JobWaiters();
    const a = waiters.wait("a", 60_000);
    const b = waiters.wait("b", 60_000);
    const left = new AbortController();
    const c = waiters.wait("a", 60_000, left.signal);
    expect(waiters.size).toBe(3);
    left.abort();
    expect(await c.done).toBe("ended");
    waiters.finished(["a"]);
    expect(await a.done).toBe("finished");
    expect(waiters.size).toBe(1);
    waiters.close();
    expect(await b.done).toBe("ended");
    expect(waiters.size).toBe(0);
  });

  it("tells every waiter to look again when commits may have gone unheard", async () => {
    const waiters = new JobWaiters();
    const a = waiters.wait("a", 60_000);
    const b = waiters.wait("b", 60_000);
    waiters.recheck();
    expect(await Promise.all([a.done, b.done])).toEqual(["recheck", "recheck"]);
    expect(waiters.size).toBe(0);
  });
});
