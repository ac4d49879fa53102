// A master whose LISTEN connection was lost misses the other masters' notices meanwhile
// (API.md §12): once it listens again, a `?wait_s=` waiter whose job finished and a
// long-polling claim whose job arrived in that time answer, without waiting out their wait.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { MasterInternals } from "../../../master/index.js";
import type { Job } from "../../../master/store/types.js";
import { http, startTestMaster } from "../../helpers/master.js";
import { createTestDatabase, dropTestDatabase } from "../../helpers/postgres.js";
import { dialects } from "../../helpers/store.js";
import { startTcpProxy, type TcpProxy } from "../../helpers/tcp-proxy.js";

const havePostgres = dialects.some((dialect) => dialect.name === "postgres");
/** The name the cut-off master's connections give the server, to find its LISTEN connection. */
const APPLICATION = "gaffer-cut-off";

describe.runIf(havePostgres)("a master that lost its LISTEN connection", () => {
  let url: string;
  let proxy: TcpProxy;
  let a: MasterInternals;
  /** Reaches the database through the proxy, under APPLICATION. */
  let c: MasterInternals;

  beforeAll(async () => {
    url = await createTestDatabase();
    proxy = await startTcpProxy(url);
    const proxied = new URL(proxy.url);
    proxied.searchParams.set("application_name", APPLICATION);
    a = await startTestMaster({ databaseUrl: url });
    c = await startTestMaster({ databaseUrl: proxied.toString() });
  });

  afterAll(async () => {
    await Promise.allSettled([a?.close(), c?.close()]);
    await proxy?.close();
    if (url) await dropTestDatabase(url);
  });

  /** End the cut-off master's LISTEN session from the server's side; answers how many ended. */
  async function endListenSession(): Promise<number> {
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      const ended = await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN%'", [APPLICATION]);
      return ended.rowCount ?? 0;
    } finally {
      await admin.end();
    }
  }

  it("answers a waiter whose job finished, and a claim whose job arrived, while it was not listening", async () => {
    const first = await http<{ id: string }>(a.url, "POST", "/api/v1/nodes", { name: "first", labels: ["held"], capacity: 1 });
    const job = await http<{ id: string }>(a.url, "POST", "/api/v1/jobs", { type: "echo", requires: ["held"] });
    const claimed = await http<{ items: { id: string; attempt: number }[] }>(a.url, "POST", `/api/v1/nodes/${first.body.id}/claim`, { max: 1 });
    expect(claimed.body.items.map((item) => item.id)).toEqual([job.body.id]);
    const second = await http<{ id: string }>(c.url, "POST", "/api/v1/nodes", { name: "second", capacity: 1 });

    // Both wait on the cut-off master, as long as they may (60 s and 30 s).
    const waiting = http<Job>(c.url, "GET", `/api/v1/jobs/${job.body.id}?wait_s=60`);
    const claiming = http<{ items: { id: string }[] }>(c.url, "POST", `/api/v1/nodes/${second.body.id}/claim`, { max: 1, wait_s: 30 });
    await vi.waitFor(() => expect([c.waiters.size, c.dispatcher.waiting]).toEqual([1, 1]), { timeout: 5_000 });

    // Its LISTEN session ends, and the new one it makes is held half made: it hears nothing.
    proxy.holdNew();
    expect(await endListenSession()).toBe(1);
    await vi.waitFor(() => expect(proxy.held).toBeGreaterThan(0), { timeout: 5_000 });
    const done = await http(a.url, "POST", `/api/v1/jobs/${job.body.id}/complete`, { node_id: first.body.id, attempt: 1, result: { ok: true } });
    expect(done.status).toBe(200);
    const next = await http<{ id: string }>(a.url, "POST", "/api/v1/jobs", { type: "echo" });
    expect(next.status).toBe(201);

    // Listening again, it looks at everything it may have missed.
    proxy.release();
    const claim = await claiming;
    expect(claim.body.items.map((item) => item.id)).toEqual([next.body.id]);
    await vi.waitFor(() => expect(c.waiters.size).toBe(0), { timeout: 5_000 });
    const answer = await waiting;
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ id: job.body.id, status: "completed", result: { ok: true } });
  });
});
