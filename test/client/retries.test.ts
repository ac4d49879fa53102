// gaffer/client against a scripted server on 127.0.0.1: which calls are tried again (connection
// errors and 503, only when a repeat is harmless), the bulk actions' requests, problem fields.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { Client, GafferError } from "../../client/index.js";

interface Seen {
  method: string;
  url: string;
  body: unknown;
}
type Handler = (req: IncomingMessage, res: ServerResponse, call: number) => void;

let server: Server | undefined;

/** A server that answers each call with `handler`, and the calls it got. */
async function serve(handler: Handler): Promise<{ client: Client; seen: Seen[] }> {
  const seen: Seen[] = [];
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk: Buffer) => (body += chunk.toString()));
    req.on("end", () => {
      seen.push({ method: req.method ?? "", url: req.url ?? "", body: body === "" ? undefined : JSON.parse(body) });
      handler(req, res, seen.length);
    });
  });
  await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", resolve));
  const masterUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { client: new Client({ masterUrl, token: "t", backoff: { baseMs: 1, maxMs: 5 } }), seen };
}

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  server = undefined;
});

const reply = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { "content-type": status >= 400 ? "application/problem+json" : "application/json" });
  res.end(JSON.stringify(body));
};
const unavailable = (res: ServerResponse) =>
  reply(res, 503, { type: "about:blank", title: "Service Unavailable", status: 503, code: "unavailable", detail: "the master is read-only" });
const job = { id: "j1", status: "pending" };
/** 503 first, then `body`. */
const busyOnce = (body: unknown) => (_req: IncomingMessage, res: ServerResponse, call: number) => (call === 1 ? unavailable(res) : reply(res, 200, body));

describe("gaffer/client retries", () => {
  it("does not repeat a submit without an idempotency key after a 503", async () => {
    const { client, seen } = await serve(busyOnce(job));
    const error = await client.submit({ type: "t" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GafferError);
    expect(error).toMatchObject({ status: 503, code: "unavailable", title: "Service Unavailable", detail: "the master is read-only" });
    expect(seen).toHaveLength(1);
  });

  it("repeats a submit that has an idempotency key after a 503", async () => {
    const { client, seen } = await serve(busyOnce(job));
    expect(await client.submit({ type: "t", idempotency_key: "k" })).toEqual(job);
    expect(seen.map((call) => call.body)).toEqual([
      { type: "t", idempotency_key: "k" },
      { type: "t", idempotency_key: "k" },
    ]);
  });

  it("repeats a batch only when every job has an idempotency key", async () => {
    const partial = await serve(busyOnce({ items: [job] }));
    expect(await partial.client.submitBatch([{ type: "t", idempotency_key: "a" }, { type: "t" }]).catch((e: unknown) => e)).toMatchObject({ status: 503 });
    expect(partial.seen).toHaveLength(1);
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    const keyed = await serve(busyOnce({ items: [job, job] }));
    expect(await keyed.client.submitBatch([{ type: "t", idempotency_key: "a" }, { type: "t", idempotency_key: "b" }])).toEqual([job, job]);
    expect(keyed.seen).toHaveLength(2);
  });

  it("repeats reads and the one-job actions after a 503 and after a dropped connection", async () => {
    const { client, seen } = await serve((req, res, call) => {
      if (call % 2 === 1) return req.url?.includes("stats") ? req.socket.destroy() : unavailable(res);
      reply(res, 200, req.url?.includes("stats") ? { jobs: {} } : job);
    });
    expect(await client.get("j1")).toEqual(job);
    expect(await client.cancel("j1")).toEqual(job);
    expect(await client.retry("j1")).toEqual(job);
    expect(await client.priority("j1", "high")).toEqual(job);
    expect(await client.stats()).toEqual({ jobs: {} });
    expect(seen.map((call) => `${call.method} ${call.url}`)).toEqual([
      "GET /api/v1/jobs/j1",
      "GET /api/v1/jobs/j1",
      "POST /api/v1/jobs/j1/cancel",
      "POST /api/v1/jobs/j1/cancel",
      "POST /api/v1/jobs/j1/retry",
      "POST /api/v1/jobs/j1/retry",
      "PATCH /api/v1/jobs/j1",
      "PATCH /api/v1/jobs/j1",
      "GET /api/v1/queue/stats",
      "GET /api/v1/queue/stats",
    ]);
  });

  it("does not repeat a read after an answer other than 503 (a 500 is not a busy master)", async () => {
    const { client, seen } = await serve((_req, res) => reply(res, 500, { code: "internal", detail: "boom" }));
    expect(await client.get("j1").catch((e: unknown) => e)).toMatchObject({ status: 500, code: "internal" });
    expect(seen).toHaveLength(1);
  });

  it("gives up after `attempts` tries with the last answer", async () => {
    const { client, seen } = await serve((_req, res) => unavailable(res));
    expect(await client.get("j1").catch((e: unknown) => e)).toMatchObject({ status: 503 });
    expect(seen).toHaveLength(4);
  });

  it("sends the bulk actions as API.md §5 says, once each", async () => {
    const { client, seen } = await serve((_req, res, call) => (call === 2 ? unavailable(res) : reply(res, 200, { matched: 3, changed: 2, more: false })));
    expect(await client.bulkCancel({ status: "pending", tag: "customer:acme" }, { max: 10 })).toEqual({ matched: 3, changed: 2, more: false });
    expect(await client.bulkRetry({ failure_reason: "max_retries_exceeded" }, { dryRun: true }).catch((e: unknown) => e)).toMatchObject({ status: 503 });
    expect(seen).toEqual([
      { method: "POST", url: "/api/v1/jobs/cancel", body: { filter: { status: "pending", tag: "customer:acme" }, max: 10 } },
      { method: "POST", url: "/api/v1/jobs/retry", body: { filter: { failure_reason: "max_retries_exceeded" }, dry_run: true } },
    ]);
  });

  it("long-polls a wait in steps of at most 60 s until the job is final", async () => {
    const { client, seen } = await serve((_req, res, call) => reply(res, 200, { ...job, status: call < 3 ? "running" : "completed" }));
    expect(await client.wait("j1", { timeoutMs: 90_000 })).toMatchObject({ status: "completed" });
    expect(seen.map((call) => call.url)).toEqual(["/api/v1/jobs/j1?wait_s=60", "/api/v1/jobs/j1?wait_s=60", "/api/v1/jobs/j1?wait_s=60"]);
  });

  it("fetches a new token once when the master refuses one, and then reports the 401", async () => {
    const { client: unused, seen } = await serve((req, res) =>
      req.url === "/api/v1/auth/token"
        ? reply(res, 200, { access_token: `t${seen.length}`, token_type: "Bearer", expires_in: 3600, expires_at: "" })
        : reply(res, 401, { code: "unauthorized", detail: "token revoked" }),
    );
    const client = new Client({ masterUrl: unused.baseUrl, clientId: "c", clientSecret: "s" });
    expect(await client.stats().catch((e: unknown) => e)).toMatchObject({ status: 401, code: "unauthorized", detail: "token revoked" });
    expect(seen.map((call) => call.url)).toEqual(["/api/v1/auth/token", "/api/v1/queue/stats", "/api/v1/auth/token", "/api/v1/queue/stats"]);
    expect(seen[0]?.body).toEqual({ client_id: "c", client_secret: "s" });
  });

  it("ends a call at its own timeout, and at once when its signal aborts", async () => {
    const { client } = await serve(() => undefined); // never answers
    const timedOut = await client.get("j1", { timeoutMs: 50 }).catch((e: unknown) => e);
    expect(timedOut).toMatchObject({ status: 0, code: "unreachable" });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 20);
    expect(await client.types({ signal: controller.signal }).catch((e: unknown) => e)).toMatchObject({ name: "AbortError" });
  });
});
