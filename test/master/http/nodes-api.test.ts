// The nodes API over real HTTP: register, heartbeat, long-poll claims, results, leave, drain.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MasterInternals } from "../../../master/index.js";
import { heldFlushes } from "../../helpers/flushes.js";
import { http, startTestMaster } from "../../helpers/master.js";
import { eventually } from "../../helpers/processes.js";
import { sqliteStoreOpener } from "../../helpers/store.js";
import { removeTempDirs } from "../../helpers/temp.js";

let master: MasterInternals;
const call = <T = Record<string, unknown>>(method: string, path: string, body?: unknown) =>
  http<T>(master.url, method, path, body);

interface Claimed {
  items: { id: string; attempt: number; type: string; payload: unknown }[];
}

beforeAll(async () => {
  master = await startTestMaster();
});
afterAll(async () => {
  await master.close();
  removeTempDirs();
});

let nodeCount = 0;
async function newNode(labels: string[] = [], capacity = 4): Promise<string> {
  nodeCount += 1;
  const result = await call("POST", "/api/v1/nodes", { name: `node-${nodeCount}`, labels, capacity, version: "1.0" });
  expect(result.status).toBe(201);
  return String(result.body.id);
}

describe("registration", () => {
  it("answers 201, then 200 with the same id for the same name", async () => {
    const first = await call("POST", "/api/v1/nodes", { name: "twice", labels: ["gpu"], capacity: 2, hardware: { gpus: 1 } });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ name: "twice", status: "online", labels: ["gpu"], capacity: 2, running: 0, hardware: { gpus: 1 } });
    const again = await call("POST", "/api/v1/nodes", { name: "twice", capacity: 3 });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    expect((await call("GET", `/api/v1/nodes/${String(first.body.id)}`)).body).toMatchObject({ capacity: 3 });
  });

  it("keeps the job types a node runs, and updates them when it registers again", async () => {
    const first = await call("POST", "/api/v1/nodes", { name: "typed", types: ["resize", "echo", "echo"] });
    expect(first.status).toBe(201);
    expect(first.body.types).toEqual(["echo", "resize"]);
    const again = await call("POST", "/api/v1/nodes", { name: "typed", types: ["transcode"] });
    expect(again.body).toMatchObject({ id: first.body.id, types: ["transcode"] });
    const any = await call("POST", "/api/v1/nodes", { name: "typed" });
    expect(any.body).toMatchObject({ id: first.body.id, types: null });
  });

  it("refuses a bad name, capacity, label or type", async () => {
    const bad = [{ name: "" }, { name: "a b" }, { name: "n", capacity: 0 }, { name: "n", labels: ["a,b"] }, { name: "n", types: ["a b"] }, { name: "n", types: "echo" }];
    for (const body of bad) {
      expect((await call("POST", "/api/v1/nodes", body)).status).toBe(400);
    }
  });
});

describe("claiming", () => {
  it("answers a waiting claim within milliseconds of a matching submission", async () => {
    const node = await newNode(["latency"]);
    const waiting = call<Claimed>("POST", `/api/v1/nodes/${node}/claim`, { max: 1, wait_s: 10 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const submitted = await call("POST", "/api/v1/jobs", { type: "quick", requires: ["latency"] });
    const answeredAt = performance.now();
    const claimed = await waiting;
    // Far under the 10 s wait, wide for a loaded CI machine; the benchmark measures the real figure.
    expect(performance.now() - answeredAt).toBeLessThan(1000);
    expect(claimed.body.items.map((j) => j.id)).toEqual([submitted.body.id]);
    expect(claimed.body.items[0]).toMatchObject({ attempt: 1, type: "quick", priority: "medium", timeout_s: 3600 });
  });

  it("refuses a waiting claim past the node's capacity with 429 and Retry-After, at once", async () => {
    const registered = await call("POST", "/api/v1/nodes", { name: "one-slot", capacity: 1, types: ["nothing-of-this-type"] });
    const node = String(registered.body.id);
    const waiting = call<Claimed>("POST", `/api/v1/nodes/${node}/claim`, { max: 1, wait_s: 2 });
    await eventually(async () => master.dispatcher.waiting === 1, 5000, "the claim to wait");
    const started = performance.now();
    const extra = await call("POST", `/api/v1/nodes/${node}/claim`, { max: 1, wait_s: 2 });
    expect(performance.now() - started).toBeLessThan(1000);
    expect(extra.status).toBe(429);
    expect(extra.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(extra.headers.get("retry-after")).toBe("1");
    expect(extra.body).toMatchObject({ status: 429, code: "rate_limited" });
    // A claim that does not wait still answers at once.
    expect(await call("POST", `/api/v1/nodes/${node}/claim`, { max: 1, wait_s: 0 })).toMatchObject({ status: 200, body: { items: [] } });
    expect(await waiting).toMatchObject({ status: 200, body: { items: [] } });
    expect(master.dispatcher.waiting).toBe(0);
  });

  it("answers a claim waiting on a full node as soon as a result frees a slot", async () => {
    const node = await newNode(["full"], 1);
    await call("POST", "/api/v1/jobs/batch", { jobs: [{ type: "a", requires: ["full"] }, { type: "b", requires: ["full"] }] });
    const first = await call<Claimed>("POST", `/api/v1/nodes/${node}/claim`, { max: 1 });
    const running = first.body.items[0];
    if (!running) throw new Error("nothing claimed");
    // The worker claims again before its result lands: the node is full, so the claim waits...
    const waiting = call<Claimed>("POST", `/api/v1/nodes/${node}/claim`, { max: 1, wait_s: 20 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const reported = performance.now();
    await call("POST", `/api/v1/nodes/${node}/results`, { results: [{ job_id: running.id, attempt: running.attempt, status: "completed" }] });
    // ...and is answered when the result frees the slot, not when its 20 s run out.
    const next = await waiting;
    expect(performance.now() - reported).toBeLessThan(1000);
    expect(next.body.items.map((j) => j.type)).toEqual(["b"]);
  });

  /**
   * With WAL flushes held: `write` is sent while a claim waits; both must be answered
   * after the one flush of the write's group commit. What the claim got is returned.
   */
  async function claimWithWrite(
    setup: (url: string, node: string) => Promise<void>,
    write: (url: string, node: string) => Promise<unknown>,
  ): Promise<Claimed | undefined> {
    const flushes = heldFlushes(false);
    const held = await startTestMaster({}, { openStore: sqliteStoreOpener(flushes.fdatasync).open });
    try {
      const node = String((await http(held.url, "POST", "/api/v1/nodes", { name: "same-commit", capacity: 1 })).body.id);
      await setup(held.url, node);
      const waiting = http<Claimed>(held.url, "POST", `/api/v1/nodes/${node}/claim`, { max: 1, wait_s: 10 });
      await eventually(async () => held.dispatcher.waiting === 1, 5000, "the claim to wait");
      flushes.hold(true);
      const written = write(held.url, node);
      await eventually(async () => flushes.calls.length > 0, 5000, "a flush");
      flushes.calls[0]?.resolve();
      await written;
      // Had the claim committed on its own, it would wait for a second (held) flush.
      const claimed = await Promise.race([waiting, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 1000))]);
      expect(flushes.calls).toHaveLength(1);
      return claimed?.body;
    } finally {
      flushes.releaseAll();
      await held.close();
    }
  }

  it("hands a job to a waiting claim in the submission's commit: one WAL flush answers both", async () => {
    const claimed = await claimWithWrite(
      async () => undefined,
      async (url) => expect((await http(url, "POST", "/api/v1/jobs", { type: "handed-over" })).status).toBe(201),
    );
    expect(claimed?.items.map((j) => j.type)).toEqual(["handed-over"]);
  });

  it("gives a full node its next job in the commit of the result that freed its slot", async () => {
    let running = { id: "", attempt: 0 };
    const claimed = await claimWithWrite(
      async (url, node) => {
        await http(url, "POST", "/api/v1/jobs/batch", { jobs: [{ type: "first" }, { type: "second" }] });
        const first = await http<Claimed>(url, "POST", `/api/v1/nodes/${node}/claim`, { max: 1 });
        running = first.body.items[0] ?? running;
      },
      async (url, node) => {
        const results = [{ job_id: running.id, attempt: running.attempt, status: "completed" }];
        expect((await http(url, "POST", `/api/v1/nodes/${node}/results`, { results })).status).toBe(200);
      },
    );
    expect(claimed?.items.map((j) => j.type)).toEqual(["second"]);
  });

  it("answers an empty list when wait_s passes", async () => {
    const node = await newNode(["idle"]);
    await call("POST", `/api/v1/nodes/${node}/drain`);
    const result = await call<Claimed>("POST", `/api/v1/nodes/${node}/claim`, { max: 5, wait_s: 0.2 });
    expect(result.body).toEqual({ items: [] });
  });

  it("refuses max over 100, wait_s over 30, and unknown nodes", async () => {
    const node = await newNode();
    expect((await call("POST", `/api/v1/nodes/${node}/claim`, { max: 101 })).status).toBe(400);
    expect((await call("POST", `/api/v1/nodes/${node}/claim`, { wait_s: 31 })).status).toBe(400);
    expect((await call("POST", "/api/v1/nodes/nope/claim", { max: 1 })).status).toBe(404);
  });
});

describe("results", () => {
  it("completes one job, answers a repeat with 200, another report of that attempt with 409, another node with 404", async () => {
    const node = await newNode(["single"]);
    const job = await call("POST", "/api/v1/jobs", { type: "one", requires: ["single"] });
    const claimed = await call<Claimed>("POST", `/api/v1/nodes/${node}/claim`, { max: 1 });
    const attempt = claimed.body.items[0]?.attempt;
    const done = await call("POST", `/api/v1/jobs/${String(job.body.id)}/complete`, { node_id: node, attempt, result: { ok: true } });
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ status: "completed", result: { ok: true } });
    const repeat = await call("POST", `/api/v1/jobs/${String(job.body.id)}/complete`, { node_id: node, attempt, result: { ok: true } });
    expect(repeat.status).toBe(200);
    const stale = await call("POST", `/api/v1/jobs/${String(job.body.id)}/fail`, { node_id: node, attempt, error: { message: "late" } });
    expect(stale.status).toBe(409);
    expect(stale.body).toMatchObject({ code: "conflict" });
    // Another node, or an attempt never handed out: 404, and nothing of the job in the answer.
    const other = await newNode(["single"]);
    for (const [nodeId, n] of [[other, attempt], [node, 5]] as const) {
      const foreign = await call("POST", `/api/v1/jobs/${String(job.body.id)}/complete`, { node_id: nodeId, attempt: n, result: { ok: true } });
      expect(foreign.status).toBe(404);
      expect(JSON.stringify(foreign.body)).not.toContain('"ok"');
      expect(foreign.body).not.toHaveProperty("status", "completed");
    }
  });

  it("fails one job with a retry scheduled", async () => {
    const node = await newNode(["failing"]);
    const job = await call("POST", "/api/v1/jobs", { type: "one", requires: ["failing"], max_retries: 2 });
    await call("POST", `/api/v1/nodes/${node}/claim`, { max: 1 });
    const failed = await call("POST", `/api/v1/jobs/${String(job.body.id)}/fail`, {
      node_id: node,
      attempt: 1,
      error: { message: "exit 1", code: "exit_1" },
    });
    expect(failed.body).toMatchObject({ status: "scheduled", retry_count: 1, error: { message: "exit 1", code: "exit_1", retryable: true } });
  });

  it("reports a batch of results with one verdict each", async () => {
    const node = await newNode(["batch"], 10);
    await call("POST", "/api/v1/jobs/batch", { jobs: Array.from({ length: 3 }, () => ({ type: "many", requires: ["batch"] })) });
    const claimed = await call<Claimed>("POST", `/api/v1/nodes/${node}/claim`, { max: 10 });
    const [a, b, c] = claimed.body.items;
    if (!a || !b || !c) throw new Error("claimed fewer than 3");
    const result = await call("POST", `/api/v1/nodes/${node}/results`, {
      results: [
        { job_id: a.id, attempt: a.attempt, status: "completed", result: 1 },
        { job_id: b.id, attempt: b.attempt, status: "failed", error: { message: "x", retryable: false } },
        { job_id: c.id, attempt: 99, status: "completed" },
        { job_id: a.id, attempt: a.attempt, status: "completed", result: 1 },
        { job_id: "missing", attempt: 1, status: "completed" },
      ],
    });
    expect(result.body.items).toEqual([
      { job_id: a.id, accepted: true },
      { job_id: b.id, accepted: true },
      { job_id: c.id, accepted: false, reason: "not_found" },
      { job_id: a.id, accepted: true, reason: "duplicate" },
      { job_id: "missing", accepted: false, reason: "not_found" },
    ]);
    expect((await call("GET", `/api/v1/jobs/${b.id}`)).body).toMatchObject({ status: "failed", failure_reason: "non_retryable" });
  });
});

describe("heartbeats and leaving", () => {
  it("answers the heartbeat interval and the jobs to stop", async () => {
    const node = await newNode(["beat"]);
    const job = await call("POST", "/api/v1/jobs", { type: "long", requires: ["beat"] });
    await call("POST", `/api/v1/nodes/${node}/claim`, { max: 1 });
    await call("POST", `/api/v1/jobs/${String(job.body.id)}/cancel`);
    const beat = await call("POST", `/api/v1/nodes/${node}/heartbeat`, {
      running: [{ job_id: job.body.id, attempt: 1, progress: 10, message: "started" }],
    });
    expect(beat.body).toEqual({
      status: "online",
      heartbeat_interval_s: master.config.heartbeatIntervalS,
      cancel: [{ job_id: job.body.id, attempt: 1, reason: "canceled" }],
    });
    expect((await call("POST", `/api/v1/nodes/${node}/heartbeat`, { running: [{ job_id: "x", attempt: 0 }] })).status).toBe(400);
  });

  it("deregisters: offline, jobs back in the queue, and 409 for its later heartbeats", async () => {
    const node = await newNode(["leaving"]);
    const job = await call("POST", "/api/v1/jobs", { type: "long", requires: ["leaving"] });
    await call("POST", `/api/v1/nodes/${node}/claim`, { max: 1 });
    const left = await call("POST", `/api/v1/nodes/${node}/deregister`);
    expect(left.body).toMatchObject({ status: "offline" });
    expect((await call("GET", `/api/v1/jobs/${String(job.body.id)}`)).body).toMatchObject({ status: "pending", retry_count: 1 });
    expect((await call("POST", `/api/v1/nodes/${node}/heartbeat`, { running: [] })).status).toBe(409);
    expect((await call("POST", `/api/v1/nodes/${node}/claim`, {})).status).toBe(409);
  });

  it("drains and resumes, and lists nodes by status", async () => {
    const node = await newNode();
    expect((await call("POST", `/api/v1/nodes/${node}/drain`)).body).toMatchObject({ status: "draining" });
    const draining = await call<{ items: { id: string }[] }>("GET", "/api/v1/nodes?status=draining");
    expect(draining.body.items.map((n) => n.id)).toContain(node);
    expect((await call("POST", `/api/v1/nodes/${node}/heartbeat`, {})).body).toMatchObject({ status: "draining" });
    expect((await call("POST", `/api/v1/nodes/${node}/resume`)).body).toMatchObject({ status: "online" });
    expect((await call("POST", "/api/v1/nodes/nope/drain")).status).toBe(404);
  });
});

describe("shutdown", () => {
  it("answers open long-polls with an empty list and stops", async () => {
    const own = await startTestMaster();
    const node = await http(own.url, "POST", "/api/v1/nodes", { name: "last" });
    const waiting = http<Claimed>(own.url, "POST", `/api/v1/nodes/${String(node.body.id)}/claim`, { wait_s: 30 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = performance.now();
    await own.close();
    expect((await waiting).body).toEqual({ items: [] });
    expect(performance.now() - started).toBeLessThan(2000);
    await expect(fetch(`${own.url}/health`)).rejects.toThrow();
  });
});
