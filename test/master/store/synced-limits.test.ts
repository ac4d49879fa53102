// Request limits counted in each master's memory and shared through PostgreSQL about once a
// second (RateLimitParams.sharing "synced", API.md §4, §12): decided at once, a key's count the
// same on every master once each has synced, one statement per sync, and memory alone (said
// so) while the database fails or is late. Each sync here is the test's (syncLimits), never a timer's.
import { RateLimiterRes } from "rate-limiter-flexible";
import { afterEach, describe, expect, it, vi } from "vitest";
import { PostgresDatabase } from "../../../master/store/postgres/database.js";
import { PostgresRateLimitStore } from "../../../master/store/postgres/rate-limits.js";
import type { RateLimitParams } from "../../../master/store/types.js";
import { dialects, TEST_DATABASE_URL, type TestStore } from "../../helpers/store.js";
import { startTcpProxy, type TcpProxy } from "../../helpers/tcp-proxy.js";
import { take, takeMany } from "../../helpers/limits.js";
import { removeTempDirs } from "../../helpers/temp.js";


const synced = (points: number, durationS = 60): RateLimitParams => ({ keyPrefix: "client", points, durationS, sharing: "synced" });

describe.each(dialects)("synced rate limits ($name)", (dialect) => {
  let t: TestStore;
  afterEach(async () => {
    await t.store.close();
    removeTempDirs();
  });

  it("refuses a key past its points in its window, each key on its own, and gives a refunded point back", async () => {
    t = await dialect.open();
    const limiter = t.store.rateLimits.limiter(synced(3));
    expect(await takeMany(limiter, "a", 4)).toEqual(["ok", "ok", "ok", "refused"]);
    expect(await take(limiter, "b")).toBe("ok");
    await limiter.reward("b", 1);
    expect(await takeMany(limiter, "b", 4)).toEqual(["ok", "ok", "ok", "refused"]);
    // A refusal says when the window ends, for Retry-After.
    const refusal = await limiter.consume("a").catch((rejection: unknown) => rejection);
    expect(refusal).toBeInstanceOf(RateLimiterRes);
    expect((refusal as RateLimiterRes).msBeforeNext).toBeGreaterThan(59_000);
    expect((refusal as RateLimiterRes).remainingPoints).toBe(0);
  });
});

const postgres = dialects.find((dialect) => dialect.name === "postgres");

describe.runIf(postgres)("synced rate limits shared through PostgreSQL", () => {
  let t: TestStore;
  let nowMs: number;
  const databases: PostgresDatabase[] = [];
  let proxy: TcpProxy | undefined;

  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
    for (const db of databases.splice(0)) await db.close();
    await t.store.close();
  });

  /** A master's limits on the test store's schema, synced only when the test says. */
  async function master(options: { url?: string; fallbacks?: unknown[]; syncIntervalMs?: number } = {}): Promise<{ limits: PostgresRateLimitStore; db: PostgresDatabase }> {
    const schema = String((await t.store.describe()).schema);
    const db = new PostgresDatabase({ url: options.url ?? TEST_DATABASE_URL, schema, max: 2 });
    databases.push(db);
    const limits = new PostgresRateLimitStore(db, {
      syncIntervalMs: options.syncIntervalMs ?? 0,
      now: () => nowMs,
      onFallback: (error) => options.fallbacks?.push(error),
    });
    return { limits, db };
  }

  /** A store of its own and a master reaching the database through a proxy the test can cut, with the fallbacks it reports. */
  async function behindProxy() {
    await open();
    const link = await startTcpProxy(TEST_DATABASE_URL);
    proxy = link; // stopped after the test
    const fallbacks: unknown[] = [];
    return { a: await master({ url: link.url, fallbacks }), fallbacks, link };
  }

  async function open(): Promise<void> {
    t = await (postgres as NonNullable<typeof postgres>).open();
    nowMs = Date.parse("2026-03-01T10:00:00.000Z");
  }

  it("counts one key together on two masters once each has synced", async () => {
    await open();
    const [a, b] = [await master(), await master()];
    const [onA, onB] = [a.limits.limiter(synced(5)), b.limits.limiter(synced(5))];
    expect(await takeMany(onA, "c", 3)).toEqual(["ok", "ok", "ok"]);
    expect(await take(onB, "c")).toBe("ok");
    await a.limits.syncLimits();
    await b.limits.syncLimits();
    // B read back A's three: one more is the fifth, and the sixth is refused.
    expect(await takeMany(onB, "c", 2)).toEqual(["ok", "refused"]);
    // A hears of B's points when both synced since they were counted.
    expect(await take(onA, "c")).toBe("ok");
    await b.limits.syncLimits();
    await a.limits.syncLimits();
    expect(await take(onA, "c")).toBe("refused");
    expect(await t.query("SELECT key, points, expire FROM rate_limits")).toEqual([{ key: "client:c", points: 6, expire: nowMs + 60_000 }]);
  });

  it("lets a burst spread over N masters pass up to N times the limit before they sync, and refuses it everywhere after", async () => {
    await open();
    const masters = [await master(), await master(), await master()];
    const limiters = masters.map((m) => m.limits.limiter(synced(2)));
    for (const limiter of limiters) expect(await takeMany(limiter, "burst", 2)).toEqual(["ok", "ok"]);
    for (const m of masters) await m.limits.syncLimits();
    for (const m of masters) await m.limits.syncLimits();
    for (const limiter of limiters) expect(await take(limiter, "burst")).toBe("refused");
    expect(await t.query("SELECT points FROM rate_limits")).toEqual([{ points: 6 }]);
  });

  it("keeps fixed windows: the cluster's, from the key's first point, adopted at sync; a new one after it ends", async () => {
    await open();
    const [a, b] = [await master(), await master()];
    const [onA, onB] = [a.limits.limiter(synced(2)), b.limits.limiter(synced(2))];
    const started = nowMs;
    expect(await take(onA, "w")).toBe("ok");
    await a.limits.syncLimits();
    nowMs += 10_000;
    expect(await take(onB, "w")).toBe("ok");
    await b.limits.syncLimits();
    const refusal = (await onB.consume("w").catch((rejection: unknown) => rejection)) as RateLimiterRes;
    // B's window is the cluster's, which A started ten seconds earlier.
    expect(refusal.msBeforeNext).toBe(started + 60_000 - nowMs);
    nowMs = started + 60_000;
    expect(await takeMany(onB, "w", 3)).toEqual(["ok", "ok", "refused"]);
    await b.limits.syncLimits();
    expect(await t.query("SELECT points, expire FROM rate_limits")).toEqual([{ points: 2, expire: nowMs + 60_000 }]);
    // A's window of the key ended too: its first point of the new one is decided before it
    // hears of B's (the approximation), and the next after its sync is refused.
    expect(await take(onA, "w")).toBe("ok");
    await a.limits.syncLimits();
    expect(await take(onA, "w")).toBe("refused");
    expect(await t.query("SELECT points, expire FROM rate_limits")).toEqual([{ points: 3, expire: nowMs + 60_000 }]);
  });

  it("shares every key of every limit in one statement per sync, and sends nothing once their windows ended", async () => {
    await open();
    const a = await master();
    const run = vi.spyOn(a.db, "run");
    const clients = a.limits.limiter(synced(10));
    const workers = a.limits.limiter({ ...synced(10), keyPrefix: "worker" });
    for (let i = 0; i < 150; i++) await take(clients, `client-${i}`);
    for (let i = 0; i < 50; i++) await take(workers, `worker-${i}`);
    expect(run).not.toHaveBeenCalled();
    await a.limits.syncLimits();
    expect(run).toHaveBeenCalledTimes(1);
    expect(await t.query("SELECT count(*)::int AS n, sum(points)::int AS points FROM rate_limits")).toEqual([{ n: 200, points: 200 }]);
    // Nothing new: the totals are still read back (other masters may have counted), in one statement.
    await a.limits.syncLimits();
    expect(run).toHaveBeenCalledTimes(2);
    nowMs += 60_000;
    await a.limits.syncLimits();
    expect(run).toHaveBeenCalledTimes(2);
  });

  it("syncs on its timer, and stops when closed", async () => {
    await open();
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
    try {
      const a = await master({ syncIntervalMs: 1_000 });
      const send = vi.spyOn(a.db, "run");
      const limiter = a.limits.limiter(synced(5));
      await take(limiter, "c");
      vi.advanceTimersByTime(999);
      expect(send).not.toHaveBeenCalled();
      vi.advanceTimersByTime(1);
      await vi.waitFor(async () => expect(await t.query("SELECT points FROM rate_limits")).toEqual([{ points: 1 }]));
      expect(send).toHaveBeenCalledTimes(1);
      // Closed (the store's close): nothing more is sent, by the timer or by hand.
      await a.limits.close();
      await take(limiter, "c");
      vi.advanceTimersByTime(10_000);
      await a.limits.syncLimits();
      expect(send).toHaveBeenCalledTimes(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it("decides from memory while the database is gone, says so each time, and sends its counts once it is back", async () => {
    const { a, fallbacks, link } = await behindProxy();
    const limiter = a.limits.limiter(synced(3));
    expect(await take(limiter, "c")).toBe("ok");
    await a.limits.syncLimits();
    expect(fallbacks).toEqual([]);
    await link.cut();
    await a.limits.syncLimits();
    expect(fallbacks).toEqual([]);
    expect(await takeMany(limiter, "c", 3)).toEqual(["ok", "ok", "refused"]);
    expect(fallbacks).toHaveLength(3);
    expect(String(fallbacks[0])).toMatch(/PostgreSQL/);
    await link.restore();
    await a.limits.syncLimits();
    expect(await t.query("SELECT key, points, expire FROM rate_limits")).toEqual([{ key: "client:c", points: 3, expire: nowMs + 60_000 }]);
    expect(await take(limiter, "c")).toBe("refused");
    expect(fallbacks).toHaveLength(3);
  });

  it("syncs two masters at once whatever order each first saw its keys in (rows locked in one order: no deadlock)", async () => {
    await open();
    const fallbacks: unknown[] = [];
    const [a, b] = [await master({ fallbacks }), await master({ fallbacks })];
    const [onA, onB] = [a.limits.limiter(synced(100)), b.limits.limiter(synced(100))];
    const keys = Array.from({ length: 3000 }, (_, i) => `k${i}`);
    const rounds = 10;
    for (let round = 0; round < rounds; round++) {
      for (const key of keys) await take(onA, key);
      for (const key of [...keys].reverse()) await take(onB, key);
      await Promise.all([a.limits.syncLimits(), b.limits.syncLimits()]);
      // A failed sync (40P01) is reported by the next decision of its master.
      await take(onA, "probe");
      await take(onB, "probe");
      expect(fallbacks).toEqual([]);
    }
    expect(await t.query("SELECT count(*)::int AS n, min(points) AS low, max(points) AS high FROM rate_limits WHERE key LIKE 'client:k%'")).toEqual([
      { n: 3000, low: 2 * rounds, high: 2 * rounds },
    ]);
  });

  it("counts the points of a failed sync once, in its memory meanwhile and in the database after the next", async () => {
    const { a, fallbacks, link } = await behindProxy();
    const limiter = a.limits.limiter(synced(4));
    expect(await takeMany(limiter, "c", 2)).toEqual(["ok", "ok"]);
    await link.cut();
    await a.limits.syncLimits();
    // The two unsent points are counted once: two more pass, the fifth is refused.
    const third = await limiter.consume("c");
    expect(third.remainingPoints).toBe(1);
    expect(fallbacks).toHaveLength(1);
    await link.restore();
    await a.limits.syncLimits();
    expect(await t.query("SELECT points FROM rate_limits")).toEqual([{ points: 3 }]);
    expect(await takeMany(limiter, "c", 2)).toEqual(["ok", "refused"]);
    await a.limits.syncLimits();
    expect(await t.query("SELECT points FROM rate_limits")).toEqual([{ points: 4 }]);
    expect(fallbacks).toHaveLength(1);
  });

  it("reports no fallback once a sync after a failure had nothing left to send (every window ended)", async () => {
    const { a, fallbacks, link } = await behindProxy();
    const limiter = a.limits.limiter(synced(3));
    expect(await take(limiter, "c")).toBe("ok");
    await link.cut();
    await a.limits.syncLimits();
    expect(await take(limiter, "c")).toBe("ok");
    expect(fallbacks).toHaveLength(1);
    await link.restore();
    nowMs += 60_000;
    // Nothing to send or read: the sync asks the database nothing, and the failure is over.
    await a.limits.syncLimits();
    expect(await take(limiter, "d")).toBe("ok");
    expect(fallbacks).toHaveLength(1);
  });

  it("refuses a second synced limiter with the same prefix on one store (one row per key in a sync)", async () => {
    await open();
    const a = await master();
    a.limits.limiter(synced(3));
    expect(() => a.limits.limiter(synced(5))).toThrow(/client/);
    const other = a.limits.limiter({ ...synced(3), keyPrefix: "worker" });
    expect(await take(other, "c")).toBe("ok");
    await a.limits.syncLimits();
    expect(await t.query("SELECT key, points FROM rate_limits")).toEqual([{ key: "worker:c", points: 1 }]);
  });

  it("sends the points counted since the last sync when closed, and sends nothing after", async () => {
    await open();
    const a = await master();
    const run = vi.spyOn(a.db, "run");
    const limiter = a.limits.limiter(synced(5));
    expect(await takeMany(limiter, "c", 2)).toEqual(["ok", "ok"]);
    await a.limits.close();
    expect(run).toHaveBeenCalledTimes(1);
    expect(await t.query("SELECT key, points FROM rate_limits")).toEqual([{ key: "client:c", points: 2 }]);
    await take(limiter, "c");
    await a.limits.syncLimits();
    await a.limits.close();
    expect(run).toHaveBeenCalledTimes(1);
  });

  it("closes without waiting longer than a sync may be late when the database is silent, and says so", async () => {
    const { a, fallbacks, link } = await behindProxy();
    const limiter = a.limits.limiter(synced(5));
    expect(await take(limiter, "c")).toBe("ok");
    link.holdNew();
    link.freeze();
    // The store's close goes on (vitest's own timeout would catch a close that waited for the statement).
    await a.limits.close();
    expect(fallbacks).toHaveLength(1);
    expect(String(fallbacks[0])).toMatch(/has not answered/);
  });

  it("says so when a sync is late, deciding from memory meanwhile", async () => {
    const { a, fallbacks, link } = await behindProxy();
    const limiter = a.limits.limiter(synced(2));
    expect(await take(limiter, "c")).toBe("ok");
    // A silent network: nothing comes back, on new connections either.
    link.holdNew();
    link.freeze();
    const late = a.limits.syncLimits();
    expect(await take(limiter, "c")).toBe("ok");
    expect(fallbacks).toEqual([]);
    nowMs += 1_000;
    expect(await take(limiter, "c")).toBe("refused");
    expect(fallbacks).toHaveLength(1);
    expect(String(fallbacks[0])).toMatch(/has not answered/);
    // The statement fails once the proxy is gone; its points are kept for the next sync.
    await link.close();
    proxy = undefined;
    await late;
    expect(await take(limiter, "c")).toBe("refused");
  });
});
