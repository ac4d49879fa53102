// GET /jobs/:id?wait_s=N (API.md §5): answered the moment the job is final, woken by the
// store's commit signal, or with its current state once N seconds pass.
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { MasterInternals } from "../../../master/index.js";
import { JobWaiters } from "../../../master/queue/job-waiters.js";
import { StorageUnreachableError, type Job } from "../../../master/store/types.js";
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

  it("lets its wait go when reading the job fails (503), leaving no waiter behind", async () => {
    const id = await pendingJob("wait-read-fails");
    const get = master.store.jobs.get.bind(master.store.jobs);
    let reads = 0;
    // The route's first read (is it there, may the caller see it) goes through; the one after the wait is registered fails.
    const spy = vi.spyOn(master.store.jobs, "get").mockImplementation(async (jobId) => {
      if (++reads === 2) throw new StorageUnreachableError("PostgreSQL: gone", "connection");
      return get(jobId);
    });
    try {
      const answer = await call("GET", `/api/v1/jobs/${id}?wait_s=30`);
      expect(answer.status).toBe(503);
      expect(master.waiters.size).toBe(0);
    } finally {
      spy.mockRestore();
    }
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
  const nothingFinal = async () => [];

  it("wakes only the waiters of finished jobs, and forgets a waiter that left", async () => {
    const waiters = new JobWaiters({ finalAmong: nothingFinal });
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

  it("looks up every waited job in one query when commits may have gone unheard: those final answer, the others wait on", async () => {
    const lookups: string[][] = [];
    const waiters = new JobWaiters({
      finalAmong: async (ids) => {
        lookups.push([...ids]);
        return ids.filter((id) => id !== "b");
      },
    });
    const a = waiters.wait("a", 60_000);
    const a2 = waiters.wait("a", 60_000);
    const b = waiters.wait("b", 60_000);
    await waiters.recheck();
    expect(lookups).toEqual([["a", "b"]]);
    expect(await Promise.all([a.done, a2.done])).toEqual(["finished", "finished"]);
    expect(waiters.size).toBe(1);
    b.cancel();
  });

  it("tries a failed lookup again while anyone waits", async () => {
    let calls = 0;
    const errors: unknown[] = [];
    const waiters = new JobWaiters({
      finalAmong: async (ids) => {
        if (++calls === 1) throw new Error("gone again");
        return [...ids];
      },
      onRecheckError: (error) => errors.push(error),
    });
    const a = waiters.wait("a", 60_000);
    await waiters.recheck();
    expect(errors).toHaveLength(1);
    expect(await a.done).toBe("finished");
    expect(calls).toBe(2);
    waiters.close();
  });
});
