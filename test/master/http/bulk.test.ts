// POST /api/v1/jobs/cancel and /api/v1/jobs/retry over real HTTP, with auth on (API.md §5,
// Bulk): the one-job rules for every job a filter matches, oldest first, at most max; a
// client's filter covers only its own jobs; one audit row; `failure_reason=` on the list.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MasterInternals } from "../../../master/index.js";
import { http, signedIn, startTestMaster } from "../../helpers/master.js";
import { removeTempDirs } from "../../helpers/temp.js";

type Body = Record<string, unknown>;
let master: MasterInternals;
let headers: Record<string, Record<string, string>> = {};
let nodeId = "";
const as = <T = Body>(role: string, method: string, path: string, body?: unknown) => http<T>(master.url, method, path, body, headers[role]);

beforeAll(async () => {
  master = await startTestMaster({ auth: "on", rateLimitPerMinute: 100_000 });
  headers = await signedIn(master, { admin: "admin", alice: "client", bob: "client", worker: "worker" });
  const node = await as("worker", "POST", "/api/v1/nodes", { name: "bulk-node", capacity: 100 });
  nodeId = String(node.body.id);
});
afterAll(async () => {
  await master.close();
  removeTempDirs();
});

async function submit(role: string, type: string, extra: Body = {}): Promise<string> {
  const made = await as(role, "POST", "/api/v1/jobs", { type, ...extra });
  expect(made.status).toBe(201);
  return String(made.body.id);
}

async function status(id: string): Promise<Body> {
  return (await as("admin", "GET", `/api/v1/jobs/${id}`)).body;
}

/** Hand every pending job of `type` to the node; answers their ids and attempts. */
async function claimAll(): Promise<{ id: string; attempt: number; type: string }[]> {
  const claimed = await as<{ items: { id: string; attempt: number; type: string }[] }>("worker", "POST", `/api/v1/nodes/${nodeId}/claim`, { max: 100 });
  expect(claimed.status).toBe(200);
  return claimed.body.items;
}

async function fail(job: { id: string; attempt: number }): Promise<void> {
  const failed = await as("worker", "POST", `/api/v1/jobs/${job.id}/fail`, { node_id: nodeId, attempt: job.attempt, error: { message: "boom", retryable: false } });
  expect(failed.status).toBe(200);
}

describe("bulk actions: what is refused", () => {
  it("refuses an empty filter, a bad max or field with 400, a worker with 403, another client's id to a client with 403", async () => {
    for (const action of ["cancel", "retry"]) {
      for (const bad of [{}, { filter: {} }, { filter: { type: "a" }, max: 0 }, { filter: { type: "a" }, max: 10_001 }, { filter: { colour: "red" } },
        { filter: { status: "lost" } }, { filter: { failure_reason: "bad luck" } }, { filter: { created_after: "yesterday" } }, { filter: { type: "a" }, extra: 1 }]) {
        const refused = await as("alice", "POST", `/api/v1/jobs/${action}`, bad);
        expect(refused.status, JSON.stringify(bad)).toBe(400);
        expect(refused.body).toMatchObject({ code: "invalid_request" });
      }
      expect((await as("worker", "POST", `/api/v1/jobs/${action}`, { filter: { type: "a" } })).status).toBe(403);
      expect((await as("alice", "POST", `/api/v1/jobs/${action}`, { filter: { client_id: "someone-else" } })).body).toMatchObject({ status: 403, code: "forbidden" });
    }
  });
});

describe("POST /api/v1/jobs/cancel", () => {
  it("cancels the oldest max of the caller's own matching jobs and says whether more match", async () => {
    const mine = [];
    for (let i = 0; i < 4; i++) mine.push(await submit("alice", "render"));
    const bobs = await submit("bob", "render");
    const first = await as("alice", "POST", "/api/v1/jobs/cancel", { filter: { type: "render", status: "pending" }, max: 3 });
    expect(first.body).toEqual({ matched: 3, changed: 3, more: true, dry_run: false });
    expect(await Promise.all(mine.map(async (id) => (await status(id)).status))).toEqual(["canceled", "canceled", "canceled", "pending"]);
    expect((await status(bobs)).status).toBe("pending");
    const rest = await as("alice", "POST", "/api/v1/jobs/cancel", { filter: { type: "render" } });
    // The three canceled ones match again but are not changed; Bob's job is not Alice's to see.
    expect(rest.body).toEqual({ matched: 4, changed: 1, more: false, dry_run: false });
    expect((await status(bobs)).status).toBe("pending");
  });

  it("asks a running job's node to stop it, as the one-job cancel does, and leaves a completed job as it is", async () => {
    const done = await submit("alice", "encode");
    const running = await submit("alice", "encode");
    const waiting = await submit("alice", "encode", { run_at: "2999-01-01T00:00:00.000Z" });
    const claimed = await claimAll();
    const first = claimed.find((job) => job.id === done);
    if (!first) throw new Error("not claimed");
    expect((await as("worker", "POST", `/api/v1/jobs/${done}/complete`, { node_id: nodeId, attempt: first.attempt, result: {} })).status).toBe(200);
    const outcome = await as("alice", "POST", "/api/v1/jobs/cancel", { filter: { type: "encode" } });
    expect(outcome.body).toEqual({ matched: 3, changed: 2, more: false, dry_run: false });
    expect(await status(done)).toMatchObject({ status: "completed" });
    expect(await status(running)).toMatchObject({ status: "running", cancel_requested: true });
    expect(await status(waiting)).toMatchObject({ status: "canceled" });
    const beat = await as<{ cancel: unknown[] }>("worker", "POST", `/api/v1/nodes/${nodeId}/heartbeat`, { running: [] });
    expect(beat.body.cancel).toContainEqual({ job_id: running, attempt: 1, reason: "canceled" });
    // The node reports: the job ends canceled.
    await as("worker", "POST", `/api/v1/jobs/${running}/complete`, { node_id: nodeId, attempt: 1, result: {} });
    expect((await status(running)).status).toBe("canceled");
  });

  it("writes one audit row with the filter and the counts, and a dry run changes nothing and writes none", async () => {
    const ids = [await submit("alice", "audit-me", { tags: { batch: "b1" } }), await submit("alice", "audit-me", { tags: { batch: "b1" } })];
    const dry = await as("alice", "POST", "/api/v1/jobs/cancel", { filter: { tag: "batch:b1" }, dry_run: true });
    expect(dry.body).toEqual({ matched: 2, changed: 2, more: false, dry_run: true });
    expect((await status(ids[0] as string)).status).toBe("pending");
    const before = await as<{ items: Body[] }>("admin", "GET", "/api/v1/audit?event_type=jobs.canceled&limit=500");
    await as("alice", "POST", "/api/v1/jobs/cancel", { filter: { tag: "batch:b1" } });
    const after = await as<{ items: Body[] }>("admin", "GET", "/api/v1/audit?event_type=jobs.canceled&limit=500");
    expect(after.body.items.length).toBe(before.body.items.length + 1);
    expect(after.body.items[0]).toMatchObject({
      event_type: "jobs.canceled",
      client_id: expect.any(String),
      details: { filter: { tag: "batch:b1" }, max: 1000, matched: 2, changed: 2, more: false, ids },
    });
  });

  it("lets an admin act on one client's jobs by client_id, and filters by creation time", async () => {
    const old = await submit("bob", "timed");
    const between = new Date(Date.now() + 5).toISOString();
    await new Promise((resolve) => setTimeout(resolve, 10));
    const young = await submit("bob", "timed");
    const bob = String((await status(young)).client_id);
    const outcome = await as("admin", "POST", "/api/v1/jobs/cancel", { filter: { client_id: bob, type: "timed", created_after: between } });
    expect(outcome.body).toMatchObject({ matched: 1, changed: 1 });
    expect((await status(young)).status).toBe("canceled");
    expect((await status(old)).status).toBe("pending");
    const older = await as("admin", "POST", "/api/v1/jobs/cancel", { filter: { client_id: bob, type: "timed", created_before: between } });
    expect(older.body).toMatchObject({ matched: 1, changed: 1 });
    expect((await status(old)).status).toBe("canceled");
  });
});

describe("POST /api/v1/jobs/retry and failure_reason", () => {
  it("lists failed jobs by failure_reason, retries them as the one-job retry does, and wakes a waiting claim", async () => {
    const ids = [await submit("alice", "flaky"), await submit("alice", "flaky")];
    for (const job of await claimAll()) if (ids.includes(job.id)) await fail(job);
    const stays = await submit("alice", "flaky");
    await as("alice", "POST", `/api/v1/jobs/${stays}/cancel`);
    const listed = await as<{ items: { id: string }[] }>("alice", "GET", "/api/v1/jobs?type=flaky&failure_reason=non_retryable");
    expect(listed.body.items.map((job) => job.id).sort()).toEqual([...ids].sort());
    expect((await as("alice", "GET", "/api/v1/jobs?failure_reason=unlucky")).status).toBe(400);

    // A claim waiting on an empty queue is answered by the retry's commit, not by its timeout.
    const started = Date.now();
    const waiting = as<{ items: { id: string }[] }>("worker", "POST", `/api/v1/nodes/${nodeId}/claim`, { max: 10, wait_s: 10 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const retried = await as("alice", "POST", "/api/v1/jobs/retry", { filter: { failure_reason: "non_retryable", type: "flaky" } });
    expect(retried.body).toEqual({ matched: 2, changed: 2, more: false, dry_run: false });
    const claimed = await waiting;
    expect(Date.now() - started).toBeLessThan(5000);
    expect(claimed.body.items.map((job) => job.id).sort()).toEqual([...ids].sort());
    const again = await status(ids[0] as string);
    expect(again).toMatchObject({ status: "running", retry_count: 0, failure_reason: null, error: null, attempt: 2 });
    expect((await status(stays)).status).toBe("canceled");

    const audit = await as<{ items: Body[] }>("admin", "GET", "/api/v1/audit?event_type=jobs.retried");
    expect(audit.body.items[0]).toMatchObject({ details: { filter: { failure_reason: "non_retryable", type: "flaky" }, matched: 2, changed: 2 } });
  });

  it("does not change a job that cannot be retried, nor one whose dependency failed", async () => {
    const root = await submit("alice", "chain");
    const child = await submit("alice", "chain", { depends_on: [root] });
    const job = (await claimAll()).find((claimed) => claimed.id === root);
    const pending = await submit("alice", "chain-other");
    if (!job) throw new Error("not claimed");
    await fail(job);
    expect(await status(child)).toMatchObject({ status: "failed", failure_reason: "dependency_failed" });
    // Oldest first: the root goes back to the queue, and its child waits for it again.
    const outcome = await as("alice", "POST", "/api/v1/jobs/retry", { filter: { type: "chain" } });
    expect(outcome.body).toMatchObject({ matched: 2, changed: 1 });
    expect((await status(root)).status).toBe("pending");
    expect((await status(child)).status).toBe("blocked");
    const none = await as("alice", "POST", "/api/v1/jobs/retry", { filter: { type: "chain-other" } });
    expect(none.body).toMatchObject({ matched: 1, changed: 0 });
    expect((await status(pending)).status).toBe("pending");
    await as("alice", "POST", "/api/v1/jobs/cancel", { filter: { type: "chain" } });
    await as("alice", "POST", "/api/v1/jobs/cancel", { filter: { type: "chain-other" } });
  });
});
