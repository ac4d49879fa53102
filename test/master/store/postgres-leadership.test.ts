// The lead of a PostgreSQL cluster (who runs the sweepers) is given up by a master cut off
// from the database without its connection closing: its checks stop answering, and it stops
// leading well before the server ends its silent session and another master may take over;
// it checks by itself, on a timer, not only when a service asks.
import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import type { MasterInternals } from "../../../master/index.js";
import { ADVISORY_CLASS } from "../../../master/store/postgres/database.js";
import { DEFAULT_LEAD_CHECK_MS, Leadership } from "../../../master/store/postgres/leader.js";
import { startTestMaster } from "../../helpers/master.js";
import { createTestDatabase, dropTestDatabase } from "../../helpers/postgres.js";
import { startTcpProxy, type TcpProxy } from "../../helpers/tcp-proxy.js";
import { dialects, TEST_DATABASE_URL } from "../../helpers/store.js";
import { removeTempDirs } from "../../helpers/temp.js";

const havePostgres = dialects.some((dialect) => dialect.name === "postgres");

describe.runIf(havePostgres)("leadership on PostgreSQL", () => {
  let proxy: TcpProxy | undefined;
  const held: Leadership[] = [];
  afterEach(async () => {
    await Promise.all(held.map((lead) => lead.close()));
    held.length = 0;
    await proxy?.close();
  });

  it("gives up the lead when its connection goes silent, and says so", async () => {
    proxy = await startTcpProxy(TEST_DATABASE_URL);
    const key = `gaffer.lead.test-${randomUUID()}`;
    let now = 0;
    const lost: string[] = [];
    const partitioned = new Leadership({ url: proxy.url, key, onLost: (message) => lost.push(message), now: () => now, checkEveryMs: 60_000 });
    const other = new Leadership({ url: TEST_DATABASE_URL, key });
    held.push(partitioned, other);
    expect(await partitioned.holds()).toBe(true);
    expect(await other.holds()).toBe(false);
    proxy.freeze();
    // Within its check interval it still leads without asking; then its check goes unanswered.
    now += 1_000;
    expect(await partitioned.holds()).toBe(true);
    now += 60_000;
    expect(await partitioned.holds()).toBe(false);
    expect(lost).toHaveLength(1);
    // The server still holds the silent session's lock for a while: nobody leads twice.
    expect(await other.holds()).toBe(false);
  }, 30_000);

  it("checks its lead by itself: gives it up when its connection goes silent, with no service asking", async () => {
    proxy = await startTcpProxy(TEST_DATABASE_URL);
    const key = `gaffer.lead.test-${randomUUID()}`;
    const lost: string[] = [];
    const partitioned = new Leadership({ url: proxy.url, key, onLost: (message) => lost.push(message), checkEveryMs: 100 });
    held.push(partitioned);
    expect(await partitioned.holds()).toBe(true);
    proxy.freeze();
    // Nobody calls holds(): the leader's own check goes unanswered, and it says so.
    await vi.waitFor(() => expect(lost).toHaveLength(1), { timeout: 20_000, interval: 100 });
    expect(await partitioned.holds()).toBe(false);
  }, 30_000);

  it("gives up its lead the moment its lock's session ends", async () => {
    const key = `gaffer.lead.test-${randomUUID()}`;
    const lost: string[] = [];
    const lead = new Leadership({ url: TEST_DATABASE_URL, key, onLost: (message) => lost.push(message) });
    const other = new Leadership({ url: TEST_DATABASE_URL, key });
    held.push(lead, other);
    expect(await lead.holds()).toBe(true);
    const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await admin.connect();
    try {
      const ended = await admin.query(
        `SELECT pg_terminate_backend(pid) FROM pg_locks
         WHERE locktype = 'advisory' AND objsubid = 2 AND classid = $1::bigint::oid AND objid = (hashtext($2)::bigint & 4294967295)::oid`,
        [ADVISORY_CLASS, key],
      );
      expect(ended.rowCount).toBe(1);
    } finally {
      await admin.end();
    }
    await vi.waitFor(() => expect(lost).toHaveLength(1), { timeout: 5_000 });
    // The lock is free: the next master to look takes it, and the old leader is one of the others.
    expect(await other.holds()).toBe(true);
    expect(await lead.holds()).toBe(false);
  });

  it("never leads once closed, even if closed while taking the lock", async () => {
    const key = `gaffer.lead.test-${randomUUID()}`;
    const lead = new Leadership({ url: TEST_DATABASE_URL, key });
    const taking = lead.holds();
    await lead.close();
    expect(await taking).toBe(false);
    const next = new Leadership({ url: TEST_DATABASE_URL, key });
    held.push(next);
    expect(await next.holds()).toBe(true);
  });

  it("closes without waiting on a lock's connection gone silent (the master's shutdown does not hang)", async () => {
    proxy = await startTcpProxy(TEST_DATABASE_URL);
    const lead = new Leadership({ url: proxy.url, key: `gaffer.lead.test-${randomUUID()}`, checkEveryMs: 60_000 });
    expect(await lead.holds()).toBe(true);
    proxy.freeze();
    expect(await closesWithin(lead, 10_000)).toBe("closed");
  }, 30_000);

  it("closes without waiting on a server that never answers its connection, which gives up by itself", async () => {
    proxy = await startTcpProxy(TEST_DATABASE_URL);
    proxy.holdNew();
    const lead = new Leadership({ url: proxy.url, key: `gaffer.lead.test-${randomUUID()}` });
    const taking = lead.holds();
    await vi.waitFor(() => expect(proxy?.held).toBe(1));
    expect(await closesWithin(lead, 4_000)).toBe("closed");
    // The connection it was making times out (5 s) and is ended: the look answers.
    expect(await taking).toBe(false);
  }, 30_000);
});

/** "closed", or "hung" if close() has not resolved in `ms` (a bound far past the second it may take). */
async function closesWithin(closing: { close(): Promise<void> }, ms: number): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<string>((resolve) => (timer = setTimeout(() => resolve("hung"), ms)));
  const answer = await Promise.race([closing.close().then(() => "closed"), hung]);
  clearTimeout(timer);
  return answer;
}

describe.runIf(havePostgres)("a master's lead check, from its config", () => {
  let master: MasterInternals | undefined;
  let database: string | undefined;
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  afterEach(async () => {
    await master?.close();
    master = undefined;
    removeTempDirs();
  });
  afterAll(async () => {
    await admin.end().catch(() => undefined);
    if (database) await dropTestDatabase(database);
  });

  it("checks its lock's connection by itself as often as GAFFER_SWEEP_INTERVAL_S says, when that is below the default", async () => {
    database = await createTestDatabase();
    await admin.connect();
    const sweepIntervalS = 0.1;
    expect(sweepIntervalS * 1000 * 10).toBeLessThan(DEFAULT_LEAD_CHECK_MS);
    master = await startTestMaster({ databaseUrl: database, sweepIntervalS });
    const name = new URL(database).pathname.slice(1);
    // The session that holds this database's lead lock.
    const holder = await vi.waitFor(
      async () => {
        const { rows } = await admin.query<{ pid: number }>(
          `SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database
           WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::bigint::oid AND d.datname = $2`,
          [ADVISORY_CLASS, name],
        );
        expect(rows).toHaveLength(1);
        return rows[0]?.pid;
      },
      { timeout: 10_000, interval: 50 },
    );
    // Each check is a SELECT 1 on that session: count the ones seen to end. At the default
    // interval (5 s) at most one would end before this wait gives up; at 100 ms, ten do in about a second.
    const checks = new Set<string>();
    await vi.waitFor(
      async () => {
        const { rows } = await admin.query<{ query: string; state: string; changed: string }>(
          "SELECT query, state, state_change::text AS changed FROM pg_stat_activity WHERE pid = $1",
          [holder],
        );
        const row = rows[0];
        if (row?.query === "SELECT 1" && row.state === "idle") checks.add(row.changed);
        expect(checks.size).toBeGreaterThanOrEqual(10);
      },
      { timeout: DEFAULT_LEAD_CHECK_MS - 500, interval: 10 },
    );
  }, 30_000);
});
