// gaffer/client against an in-process master with auth on: every method, the error shape,
// tokens fetched, refreshed on expiry and on a 401, lists followed page by page, waits.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client, GafferConnectionError, GafferError, GafferWaitTimeoutError, type CachedToken, type Job } from "../../client/index.js";
import { createClient } from "../../master/auth/clients.js";
import type { MasterInternals } from "../../master/index.js";
import { http, startTestMaster } from "../helpers/master.js";
import { removeTempDirs } from "../helpers/temp.js";

let master: MasterInternals;
const credentials: Record<string, { clientId: string; clientSecret: string }> = {};

beforeAll(async () => {
  master = await startTestMaster({ auth: "on", tokenTtlS: 600, rateLimitPerMinute: 100_000, maxRetries: 0 });
  for (const [name, role] of [["sdk", "client"], ["other", "client"], ["worker", "worker"]] as const) {
    const made = await createClient(master.store, { name, role, actor: null });
    credentials[name] = { clientId: made.id, clientSecret: made.client_secret };
  }
});
afterAll(async () => {
  await master.close();
  removeTempDirs();
});

const client = (name = "sdk", more: object = {}) => new Client({ masterUrl: master.url, ...credentials[name], ...more });

/** A node of the worker client that runs only jobs of `type`, to take them and finish them. */
async function runner(type: string) {
  const worker = client("worker");
  const auth = { authorization: `Bearer ${(await worker.accessToken()).value}` };
  const node = await http<{ id: string }>(master.url, "POST", "/api/v1/nodes", { name: `n-${Math.random()}`, capacity: 10, types: [type] }, auth);
  return {
    async take(): Promise<{ id: string; attempt: number }[]> {
      const claimed = await http<{ items: { id: string; attempt: number }[] }>(master.url, "POST", `/api/v1/nodes/${node.body.id}/claim`, { max: 10 }, auth);
      return claimed.body.items;
    },
    async complete(job: { id: string; attempt: number }, result: unknown) {
      const done = await http(master.url, "POST", `/api/v1/jobs/${job.id}/complete`, { node_id: node.body.id, attempt: job.attempt, result }, auth);
      expect(done.status).toBe(200);
    },
    async fail(job: { id: string; attempt: number }) {
      const done = await http(master.url, "POST", `/api/v1/jobs/${job.id}/fail`, { node_id: node.body.id, attempt: job.attempt, error: { message: "broke", retryable: false } }, auth);
      expect(done.status).toBe(200);
    },
  };
}

describe("gaffer/client", () => {
  it("submits, reads and acts on a job with a token it fetched itself", async () => {
    const sdk = client();
    const job = await sdk.submit({ type: "sdk.act", payload: { n: 1 }, priority: "low", run_at: new Date(Date.now() + 3_600_000).toISOString() });
    expect(job).toMatchObject({ type: "sdk.act", status: "scheduled", priority: "low", payload: { n: 1 }, client_id: credentials.sdk?.clientId });
    expect(await sdk.get(job.id)).toMatchObject({ id: job.id, status: "scheduled" });
    expect((await sdk.why(job.id)).reasons.map((reason) => reason.code)).toContain("scheduled");
    expect((await sdk.priority(job.id, "high")).priority).toBe("high");
    expect((await sdk.cancel(job.id)).status).toBe("canceled");
    expect((await sdk.retry(job.id)).status).toBe("pending");
    expect(await sdk.attempts(job.id)).toEqual([]);
    const events = (await sdk.events(job.id)).map((event) => event.event_type);
    expect(events).toEqual(expect.arrayContaining(["job.submitted", "job.priority_changed", "job.canceled", "job.retried"]));
    expect((await sdk.types()).find((type) => type.type === "sdk.act")).toMatchObject({ pending: 1, paused: false });
    expect((await sdk.stats()).jobs.pending).toBeGreaterThanOrEqual(1);
  });

  it("submits a batch in order, and the same idempotency key twice as one job", async () => {
    const sdk = client();
    const jobs = await sdk.submitBatch([{ type: "sdk.batch", tags: { i: "0" } }, { type: "sdk.batch", tags: { i: "1" } }]);
    expect(jobs.map((job) => job.tags.i)).toEqual(["0", "1"]);
    const key = `order-${Math.random()}`;
    const first = await sdk.submit({ type: "sdk.once", idempotency_key: key });
    const again = await sdk.submit({ type: "sdk.once", idempotency_key: key });
    expect(again.id).toBe(first.id);
  });

  it("throws a GafferError with the problem document's status, code, title, detail and field errors", async () => {
    const sdk = client();
    const bad = await sdk.submit({ type: "sdk.bad", priority: "urgent" as "high" }).catch((error: unknown) => error);
    expect(bad).toBeInstanceOf(GafferError);
    expect(bad).toMatchObject({ status: 400, code: "invalid_request", errors: [expect.objectContaining({ path: "priority" })] });
    expect((bad as GafferError).title).toBeTruthy();
    expect((bad as GafferError).detail).toBeTruthy();
    const missing = await sdk.get("no-such-job").catch((error: unknown) => error);
    expect(missing).toMatchObject({ status: 404, code: "not_found" });
    const done = await sdk.submit({ type: "sdk.final" });
    await sdk.cancel(done.id);
    expect(await sdk.cancel(done.id).catch((error: unknown) => error)).toMatchObject({ status: 409, code: "conflict" });
  });

  it("never shows another client's job: 404", async () => {
    const mine = await client().submit({ type: "sdk.mine" });
    expect(await client("other").get(mine.id).catch((error: unknown) => error)).toMatchObject({ status: 404 });
    for await (const job of client("other").list({ type: "sdk.mine" })) expect(job.id).not.toBe(mine.id);
  });

  it("refuses wrong credentials with a 401 GafferError, and a client with none", async () => {
    const wrong = new Client({ masterUrl: master.url, clientId: credentials.sdk?.clientId, clientSecret: "not-it" });
    expect(await wrong.stats().catch((error: unknown) => error)).toMatchObject({ status: 401, code: "unauthorized" });
    const none = new Client({ masterUrl: master.url });
    expect(await none.stats().catch((error: unknown) => error)).toMatchObject({ status: 401 });
  });

  it("fetches a new token when the master refuses its own (revoked), once, and the call succeeds", async () => {
    const sdk = client();
    const before = (await sdk.accessToken()).value;
    const revoked = await http(master.url, "POST", "/api/v1/auth/revoke", undefined, { authorization: `Bearer ${before}` });
    expect(revoked.status).toBe(200);
    expect((await sdk.stats()).jobs).toBeDefined();
    expect((await sdk.accessToken()).value).not.toBe(before);
  });

  it("uses a given token as is: a refused one is a 401, not a refresh", async () => {
    const token = (await client().accessToken()).value;
    const given = new Client({ masterUrl: master.url, token });
    expect((await given.stats()).jobs).toBeDefined();
    await http(master.url, "POST", "/api/v1/auth/revoke", undefined, { authorization: `Bearer ${token}` });
    expect(await given.stats().catch((error: unknown) => error)).toMatchObject({ status: 401 });
  });

  it("fetches a new token when the one it has is past its refresh time", async () => {
    const stale: CachedToken = { value: (await client().accessToken()).value, expiresAt: Date.now() + 1000, refreshAt: Date.now() - 1 };
    const saved: CachedToken[] = [];
    const sdk = client("sdk", { tokenCache: { load: () => stale, save: (token: CachedToken) => saved.push(token) } });
    await sdk.stats();
    expect(saved).toHaveLength(1);
    expect(saved[0]?.value).not.toBe(stale.value);
  });

  it("lists every matching job, newest first, following next_cursor page by page", async () => {
    const sdk = client();
    const type = `sdk.pages.${Date.now()}`;
    const submitted = await sdk.submitBatch(Array.from({ length: 7 }, () => ({ type })));
    const seen: Job[] = [];
    for await (const job of sdk.list({ type, limit: 3 })) seen.push(job);
    expect(seen.map((job) => job.id)).toEqual(submitted.map((job) => job.id).reverse());
    const first = await sdk.listPage({ type, limit: 3 });
    expect(first.items).toHaveLength(3);
    expect(first.next_cursor).not.toBeNull();
  });

  it("waits for a job and answers the moment it completes", async () => {
    const sdk = client();
    const node = await runner("sdk.wait");
    const job = await sdk.submit({ type: "sdk.wait" });
    const waiting = sdk.wait(job.id, { timeoutMs: 5000 });
    const [taken] = await node.take();
    if (!taken) throw new Error("nothing claimed");
    const finishedAt = Date.now();
    await node.complete(taken, { ok: true });
    const done = await waiting;
    expect(Date.now() - finishedAt).toBeLessThan(1000);
    expect(done).toMatchObject({ id: job.id, status: "completed", result: { ok: true } });
    expect((await sdk.attempts(job.id))[0]).toMatchObject({ attempt: 1, outcome: "completed" });
  });

  it("answers a wait for a failed job with the failed job (a failure is final, not an error)", async () => {
    const sdk = client();
    const node = await runner("sdk.wait.fail");
    const job = await sdk.submit({ type: "sdk.wait.fail", max_retries: 0 });
    const [taken] = await node.take();
    if (!taken) throw new Error("nothing claimed");
    await node.fail(taken);
    expect(await sdk.wait(job.id, { timeoutMs: 5000 })).toMatchObject({ status: "failed", error: { message: "broke" } });
  });

  it("gives up a wait after timeoutMs with the job as last seen, and ends one at once when aborted", async () => {
    const sdk = client();
    const job = await sdk.submit({ type: "sdk.wait.never" });
    const late = await sdk.wait(job.id, { timeoutMs: 0 }).catch((error: unknown) => error);
    expect(late).toBeInstanceOf(GafferWaitTimeoutError);
    expect(late).toMatchObject({ job: { id: job.id, status: "pending" } });
    const controller = new AbortController();
    const started = Date.now();
    const waiting = sdk.wait(job.id, { signal: controller.signal }).catch((error: unknown) => error);
    setTimeout(() => controller.abort(), 50);
    expect(await waiting).toMatchObject({ name: "AbortError" });
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("throws a GafferConnectionError, with its cause, when no master answers", async () => {
    const closed = await startTestMaster();
    const url = closed.url;
    await closed.close();
    const sdk = new Client({ masterUrl: url, token: "t", attempts: 2, backoff: { baseMs: 1, maxMs: 2 } });
    const error = await sdk.stats().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GafferConnectionError);
    expect(error).toBeInstanceOf(GafferError);
    expect(error).toMatchObject({ status: 0, code: "unreachable" });
    expect((error as Error).cause).toBeInstanceOf(Error);
    expect((error as Error).message).toContain(url);
  });
});
