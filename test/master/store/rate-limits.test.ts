// Where rate limits count (Store.rateLimits, API.md §4, §12): in the master's memory on
// SQLite; on PostgreSQL in the database, so that every master of a cluster counts together,
// and in the master's memory while it cannot reach the database (never an error).
import { afterEach, describe, expect, it } from "vitest";
import { LoginLimiter } from "../../../master/auth/login-limits.js";
import { RateLimitedError } from "../../../master/auth/principal.js";
import type { RateLimiter, Store } from "../../../master/store/types.js";
import { dialects, TEST_DATABASE_URL, type TestStore } from "../../helpers/store.js";
import { startTcpProxy, type TcpProxy } from "../../helpers/tcp-proxy.js";
import { take, takeMany } from "../../helpers/limits.js";
import { removeTempDirs } from "../../helpers/temp.js";


describe.each(dialects)("rate limits ($name)", (dialect) => {
  let t: TestStore;
  const others: Store[] = [];
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    for (const store of others.splice(0)) await store.close();
    await proxy?.close();
    proxy = undefined;
    await t.store.close();
    removeTempDirs();
  });

  it("refuses a key past its points in a window, each key and each limit on its own", async () => {
    t = await dialect.open();
    const limiter = t.store.rateLimits.limiter({ keyPrefix: "test", points: 3, durationS: 60 });
    const other = t.store.rateLimits.limiter({ keyPrefix: "other", points: 3, durationS: 60 });
    expect(await takeMany(limiter, "a", 4)).toEqual(["ok", "ok", "ok", "refused"]);
    expect(await take(limiter, "b")).toBe("ok");
    expect(await take(other, "a")).toBe("ok");
    // A refund gives a point back; a delete forgets the key.
    await limiter.reward("b", 1);
    expect(await takeMany(limiter, "b", 4)).toEqual(["ok", "ok", "ok", "refused"]);
    await limiter.delete("a");
    expect(await take(limiter, "a")).toBe("ok");
  });

  it("counts the failed logins of a client id PostgreSQL's text could not hold (a NUL, a lone surrogate)", async () => {
    t = await dialect.open();
    const logins = new LoginLimiter({ perClientAddress: 2, perAddress: 100, windowS: 60 }, (params) => t.store.rateLimits.limiter(params));
    for (const clientId of ["nul\u0000id", "lone\ud800"]) {
      await logins.attempt(clientId, "10.0.0.1");
      await logins.attempt(clientId, "10.0.0.1");
      await expect(logins.attempt(clientId, "10.0.0.1")).rejects.toBeInstanceOf(RateLimitedError);
    }
    if (dialect.name === "postgres") expect(await t.query("SELECT count(*)::int AS n FROM rate_limits WHERE key LIKE 'login-pair:%'")).toEqual([{ n: 2 }]);
  });

  it.runIf(dialect.name === "postgres")("counts one key together on every master of the database", async () => {
    t = await dialect.open();
    others.push(await t.reopen(), await t.reopen());
    const params = { keyPrefix: "login-pair", points: 5, durationS: 60 };
    const limiters = [t.store, ...others].map((store) => store.rateLimits.limiter(params));
    const answers: string[] = [];
    for (let i = 0; i < 7; i++) answers.push(await take(limiters[i % limiters.length] as RateLimiter, "10.0.0.1 \"client\""));
    expect(answers).toEqual(["ok", "ok", "ok", "ok", "ok", "refused", "refused"]);
    // A master that started since counts on from there too.
    const late = await t.reopen();
    others.push(late);
    expect(await take(late.rateLimits.limiter(params), "10.0.0.1 \"client\"")).toBe("refused");
    const rows = await t.query("SELECT key, points FROM rate_limits");
    expect(rows).toEqual([{ key: 'login-pair:10.0.0.1 "client"', points: 8 }]);
  });

  it.runIf(dialect.name === "postgres")("counts in the master's memory while the database is unreachable, never failing", async () => {
    t = await dialect.open();
    proxy = await startTcpProxy(TEST_DATABASE_URL);
    const cutOff = await t.reopen({ url: proxy.url });
    others.push(cutOff);
    const limiter = cutOff.rateLimits.limiter({ keyPrefix: "client", points: 2, durationS: 60 });
    expect(await take(limiter, "c")).toBe("ok");
    await proxy.cut();
    expect(await takeMany(limiter, "c", 3)).toEqual(["ok", "ok", "refused"]);
    await expect(limiter.reward("c", 1)).resolves.toBeDefined();
    await expect(limiter.delete("c")).resolves.toBeDefined();
  });

  it.runIf(dialect.name === "postgres")("counts in memory at once, and says so, while the database does not answer at all", async () => {
    t = await dialect.open();
    proxy = await startTcpProxy(TEST_DATABASE_URL);
    const fallbacks: string[] = [];
    const cutOff = await t.reopen({ url: proxy.url, onRateLimitFallback: (error) => fallbacks.push((error as Error).message) });
    others.push(cutOff);
    const limiter = cutOff.rateLimits.limiter({ keyPrefix: "client", points: 2, durationS: 60 });
    expect(await take(limiter, "c")).toBe("ok");
    expect(fallbacks).toEqual([]);
    // A silent network: the pool's connections stay open and nothing comes back, new ones included.
    proxy.holdNew();
    proxy.freeze();
    expect(await takeMany(limiter, "c", 3)).toEqual(["ok", "ok", "refused"]);
    await expect(limiter.reward("c", 1)).resolves.toBeDefined();
    expect(fallbacks).toEqual(Array(4).fill("Operation timed out"));
    // Its statements are left to the pool's timeouts; the store closes without them.
    await proxy.close();
  });

  it.runIf(dialect.name === "postgres")("says so when the shared counter fails outright (its table gone), counting in memory", async () => {
    t = await dialect.open();
    const fallbacks: string[] = [];
    const store = await t.reopen({ onRateLimitFallback: (error) => fallbacks.push((error as Error).message) });
    others.push(store);
    // (Renamed, not dropped: the schema goes back to the tests' pool, to be emptied table by table.)
    await t.query("ALTER TABLE rate_limits RENAME TO rate_limits_away");
    try {
      const limiter = store.rateLimits.limiter({ keyPrefix: "client", points: 1, durationS: 60 });
      expect(await takeMany(limiter, "c", 2)).toEqual(["ok", "refused"]);
      expect(fallbacks).toHaveLength(2);
      expect(fallbacks[0]).toMatch(/rate_limits/);
    } finally {
      await t.query("ALTER TABLE rate_limits_away RENAME TO rate_limits");
    }
  });

  it("counts no client id from an address past its limit: varying the id grows nothing", async () => {
    t = await dialect.open();
    const logins = new LoginLimiter({ perClientAddress: 5, perAddress: 3, windowS: 60 }, (params) => t.store.rateLimits.limiter(params));
    const refused: string[] = [];
    for (let i = 0; i < 10; i++) {
      await logins.attempt(`client-${i}`, "203.0.113.9").catch((error: unknown) => {
        if (!(error instanceof RateLimitedError)) throw error;
        refused.push(`client-${i}`);
      });
    }
    expect(refused).toHaveLength(7);
    if (dialect.name === "postgres") expect(await t.query("SELECT count(*)::int AS n FROM rate_limits WHERE key LIKE 'login-pair:%'")).toEqual([{ n: 3 }]);
  });

  it("forgets the counters whose window ended", async () => {
    t = await dialect.open();
    const limiter = t.store.rateLimits.limiter({ keyPrefix: "test", points: 5, durationS: 60 });
    for (const key of ["a", "b", "c"]) await take(limiter, key);
    expect(await t.store.rateLimits.deleteExpired({ before: new Date(), limit: 10 })).toBe(0);
    const later = new Date(Date.now() + 120_000);
    if (dialect.name === "sqlite") {
      expect(await t.store.rateLimits.deleteExpired({ before: later, limit: 10 })).toBe(0);
      return;
    }
    expect(await t.store.rateLimits.deleteExpired({ before: later, limit: 2 })).toBe(2);
    expect(await t.store.rateLimits.deleteExpired({ before: later, limit: 2 })).toBe(1);
    expect(await t.query("SELECT key FROM rate_limits")).toEqual([]);
  });
});
