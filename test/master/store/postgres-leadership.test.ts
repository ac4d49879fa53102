// The lead of a PostgreSQL cluster (who runs the sweepers) is given up by a master cut off
// from the database without its connection closing: its checks stop answering, and it stops
// leading well before the server ends its silent session and another master may take over.
import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { Leadership } from "../../../master/store/postgres/leader.js";
import { startTcpProxy, type TcpProxy } from "../../helpers/tcp-proxy.js";
import { dialects, TEST_DATABASE_URL } from "../../helpers/store.js";

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
    const partitioned = new Leadership(proxy.url, key, (message) => lost.push(message), () => now);
    const other = new Leadership(TEST_DATABASE_URL, key);
    held.push(partitioned, other);
    expect(await partitioned.holds()).toBe(true);
    expect(await other.holds()).toBe(false);
    proxy.freeze();
    // Within its check interval it still leads without asking; then its check goes unanswered.
    now += 1_000;
    expect(await partitioned.holds()).toBe(true);
    now += 5_000;
    expect(await partitioned.holds()).toBe(false);
    expect(lost).toHaveLength(1);
    // The server still holds the silent session's lock for a while: nobody leads twice.
    expect(await other.holds()).toBe(false);
  }, 30_000);

  it("never leads once closed, even if closed while taking the lock", async () => {
    const key = `gaffer.lead.test-${randomUUID()}`;
    const lead = new Leadership(TEST_DATABASE_URL, key);
    const taking = lead.holds();
    await lead.close();
    expect(await taking).toBe(false);
    const next = new Leadership(TEST_DATABASE_URL, key);
    held.push(next);
    expect(await next.holds()).toBe(true);
  });
});
