// The worker's HTTP client against a scripted server on 127.0.0.1: answers, problem
// documents, kept-alive connections, answers cut off half-way, timeouts.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { ApiError, MasterClient, MasterUnreachableError } from "../../worker/client.js";
import { CircuitBreaker } from "../../worker/resilience.js";

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;

let server: Server | undefined;

async function serve(handler: Handler): Promise<{ url: string; connections: () => number }> {
  let connections = 0;
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk: Buffer) => (body += chunk.toString()));
    req.on("end", () => handler(req, body, res));
  });
  server.on("connection", () => (connections += 1));
  await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, connections: () => connections };
}

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  server = undefined;
});

const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
};

describe("master client", () => {
  it("sends JSON with the token and reads the answer, over one kept-alive connection", async () => {
    const seen: { auth: string | undefined; body: unknown }[] = [];
    const master = await serve((req, body, res) => {
      seen.push({ auth: req.headers.authorization, body: JSON.parse(body) });
      json(res, 200, { items: [{ job_id: "j1", accepted: true }] });
    });
    const client = new MasterClient({ masterUrl: master.url, token: "t0ken" });
    for (let i = 0; i < 3; i++) {
      const reply = await client.reportResults("n1", [{ job_id: "j1", attempt: 1, status: "completed", result: i }]);
      expect(reply.items).toEqual([{ job_id: "j1", accepted: true }]);
    }
    expect(seen).toHaveLength(3);
    expect(seen[2]).toEqual({ auth: "Bearer t0ken", body: { results: [{ job_id: "j1", attempt: 1, status: "completed", result: 2 }] } });
    expect(master.connections()).toBe(1);
  });

  it("opens a new connection after one sat unused past the idle limit, and still answers a longer call", async () => {
    const master = await serve((req, _body, res) => {
      if (req.url?.includes("slow")) setTimeout(() => json(res, 200, { items: [] }), 300);
      else json(res, 200, { items: [] });
    });
    const client = new MasterClient({ masterUrl: master.url, token: "t", idleConnectionMs: 100 });
    await client.reportResults("n1", []);
    await new Promise((resolve) => setTimeout(resolve, 250));
    await client.reportResults("n1", []);
    expect(master.connections()).toBe(2);
    // The idle limit is for unused connections only: an answer slower than it still arrives.
    expect(await client.reportResults("slow", [])).toEqual({ items: [] });
  });

  it("turns a problem document into an ApiError with its code, detail and field errors", async () => {
    const master = await serve((_req, _body, res) =>
      json(res, 400, { code: "validation_failed", detail: "the body is not valid", errors: [{ path: "max", message: "too big" }] }),
    );
    const client = new MasterClient({ masterUrl: master.url, token: "t" });
    const error = await client.claim("n1", 1000, 0).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 400, code: "validation_failed", errors: [{ path: "max", message: "too big" }] });
  });

  it("counts an answer cut off half-way as no answer: the master is unreachable, the breaker hears of it", async () => {
    const master = await serve((_req, _body, res) => {
      res.writeHead(200, { "content-type": "application/json", "content-length": "1000" });
      res.write('{"items": [');
      setTimeout(() => res.socket?.destroy(), 10);
    });
    const breaker = new CircuitBreaker({ failureThreshold: 1, openMs: 60_000 });
    const client = new MasterClient({ masterUrl: master.url, token: "t", breaker });
    const error = await client.claim("n1", 1, 0).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MasterUnreachableError);
    expect(breaker.state).toBe("open");
  });

  it("gives up on a call that outlives its timeout", async () => {
    const master = await serve(() => undefined); // never answers
    const client = new MasterClient({ masterUrl: master.url, token: "t", timeoutMs: 100, attempts: 1 });
    const started = Date.now();
    const error = await client.reportResults("n1", []).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MasterUnreachableError);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("waits what a 429's Retry-After asks, then tries again", async () => {
    let calls = 0;
    const master = await serve((_req, _body, res) => {
      calls += 1;
      if (calls === 1) return json(res, 429, { code: "rate_limited", detail: "slow down" }, { "retry-after": "0" });
      json(res, 200, { items: [] });
    });
    const client = new MasterClient({ masterUrl: master.url, token: "t" });
    expect(await client.reportResults("n1", [])).toEqual({ items: [] });
    expect(calls).toBe(2);
  });
});
