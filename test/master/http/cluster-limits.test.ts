// Rate limits shared by every master on one PostgreSQL database (API.md §4, §12): failed
// logins count together whichever master they reach, at once; a client's requests too, once
// the masters have synced their counts; and a master cut off from the database still limits,
// in its own memory, answering 503 rather than 500.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "../../../master/auth/clients.js";
import type { MasterInternals } from "../../../master/index.js";
import { PostgresRateLimitStore } from "../../../master/store/postgres/rate-limits.js";
import { http, startTestMaster } from "../../helpers/master.js";
import { createTestDatabase, dropTestDatabase } from "../../helpers/postgres.js";
import { dialects } from "../../helpers/store.js";
import { startTcpProxy, type TcpProxy } from "../../helpers/tcp-proxy.js";

const havePostgres = dialects.some((dialect) => dialect.name === "postgres");
const REQUESTS_PER_MINUTE = 6;

describe.runIf(havePostgres)("rate limits on several masters of one PostgreSQL database", () => {
  let url: string;
  let proxy: TcpProxy;
  let a: MasterInternals;
  let b: MasterInternals;
  /** A third master, reaching the database through a proxy the test can cut. */
  let c: MasterInternals;

  beforeAll(async () => {
    url = await createTestDatabase();
    proxy = await startTcpProxy(url);
    const options = { auth: "on" as const, rateLimitPerMinute: REQUESTS_PER_MINUTE };
    a = await startTestMaster({ ...options, databaseUrl: url });
    b = await startTestMaster({ ...options, databaseUrl: url });
    c = await startTestMaster({ ...options, databaseUrl: proxy.url });
  });

  afterAll(async () => {
    await Promise.allSettled([a?.close(), b?.close(), c?.close()]);
    await proxy?.close();
    if (url) await dropTestDatabase(url);
  });

  /** What a master's timer does about once a second: share its request counts, read the cluster's back. */
  const syncLimits = async (master: MasterInternals) => {
    const limits = master.store.rateLimits;
    if (!(limits instanceof PostgresRateLimitStore)) throw new Error("not a PostgreSQL store");
    await limits.syncLimits();
  };

  /** A login from `from` (as a proxy on loopback tells it). */
  const login = (master: MasterInternals, clientId: string, secret: string, from: string) =>
    http<{ access_token: string }>(master.url, "POST", "/api/v1/auth/token", { client_id: clientId, client_secret: secret }, { "x-forwarded-for": from });

  it("locks a client id out after ten failed logins from one address, whichever masters they reached", async () => {
    const target = await createClient(a.store, { name: "targeted", role: "worker", actor: null });
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await login(i % 2 === 0 ? a : b, target.id, `gsk_guess_${i}`, "198.51.100.7")).status);
    expect(statuses).toEqual(Array(10).fill(401));
    // Each master saw five: counted apart, neither would refuse yet.
    for (const master of [a, b]) expect((await login(master, target.id, target.client_secret, "198.51.100.7")).status).toBe(429);
    // From its own address the worker still gets its token, through either.
    for (const master of [a, b]) expect((await login(master, target.id, target.client_secret, "192.0.2.10")).status).toBe(200);
  });

  it("counts a client's requests through every master against one per-minute limit, once each has synced", async () => {
    const who = await createClient(a.store, { name: "busy", role: "client", actor: null });
    const token = (await login(a, who.id, who.client_secret, "192.0.2.20")).body.access_token;
    const call = async (master: MasterInternals) => (await http(master.url, "GET", "/api/v1/queue/stats", undefined, { authorization: `Bearer ${token}` })).status;
    const statuses: number[] = [];
    // Half the limit through each; A's shared before B's are counted (the timers may sync more often: it changes nothing here).
    for (let i = 0; i < REQUESTS_PER_MINUTE / 2; i++) statuses.push(await call(a));
    await syncLimits(a);
    for (let i = 0; i < REQUESTS_PER_MINUTE / 2; i++) statuses.push(await call(b));
    await syncLimits(b);
    statuses.push(await call(b));
    await syncLimits(a);
    statuses.push(await call(a));
    expect(statuses).toEqual([...Array(REQUESTS_PER_MINUTE).fill(200), 429, 429]);
  });

  it("sends a master's last counts when it closes: the requests it answered still count on the others", async () => {
    const who = await createClient(a.store, { name: "restarted-under", role: "client", actor: null });
    const token = (await login(a, who.id, who.client_secret, "192.0.2.40")).body.access_token;
    const call = async (master: MasterInternals) => (await http(master.url, "GET", "/api/v1/queue/stats", undefined, { authorization: `Bearer ${token}` })).status;
    // A counts the client too (a master reads back only the keys it counts).
    expect(await call(a)).toBe(200);
    await syncLimits(a);
    // A master stopped within a second of its last sync (a rolling restart).
    const leaving = await startTestMaster({ auth: "on", rateLimitPerMinute: REQUESTS_PER_MINUTE, databaseUrl: url });
    try {
      const statuses: number[] = [];
      for (let i = 1; i < REQUESTS_PER_MINUTE; i++) statuses.push(await call(leaving));
      expect(statuses).toEqual(Array(REQUESTS_PER_MINUTE - 1).fill(200));
    } finally {
      await leaving.close();
    }
    await syncLimits(a);
    expect(await call(a)).toBe(429);
  });

  it("answers 503, not 500, when its database is gone, still counting the request against the limit", async () => {
    const who = await createClient(a.store, { name: "cut-off", role: "client", actor: null });
    const token = (await login(c, who.id, who.client_secret, "192.0.2.30")).body.access_token;
    const call = () => http(c.url, "GET", "/api/v1/queue/stats", undefined, { authorization: `Bearer ${token}` });
    const before = await call();
    expect(before.status).toBe(200);
    expect(before.headers.get("ratelimit-remaining")).toBe(String(REQUESTS_PER_MINUTE - 1));
    await proxy.cut();
    try {
      // Its next sync fails: from then on each request is counted in its memory alone.
      await syncLimits(c);
      const during = await call();
      expect(during.status).toBe(503);
      expect(during.body).toMatchObject({ code: "unavailable" });
      // The limit answered from the master's memory: the request was counted there, and said so.
      expect(during.headers.get("ratelimit-limit")).toBe(String(REQUESTS_PER_MINUTE));
      // (/metrics itself reads the queue's counts, from the database: the registry at hand instead.)
      expect((await c.metrics.rateLimitFallbacks.get()).values[0]?.value).toBeGreaterThan(0);
    } finally {
      await proxy.restore();
    }
  });
});
