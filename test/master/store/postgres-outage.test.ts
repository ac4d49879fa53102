// A master whose PostgreSQL goes away (API.md §12: it answers 503 meanwhile and reconnects by
// itself): its store says "unavailable", never a driver error, and works again once the
// database is back, hearing the other masters' commits again.
import { sql } from "kysely";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { PostgresDatabase } from "../../../master/store/postgres/database.js";
import { StorageUnreachableError, type Committed, type Store } from "../../../master/store/types.js";
import { dialects, register, submit, TEST_DATABASE_URL, type TestStore } from "../../helpers/store.js";
import { startTcpProxy, type TcpProxy } from "../../helpers/tcp-proxy.js";

const postgres = dialects.find((dialect) => dialect.name === "postgres");

describe.skipIf(postgres === undefined)("a master that loses its PostgreSQL", () => {
  let t: TestStore;
  let proxy: TcpProxy;
  let cutOff: Store | undefined;
  beforeEach(async () => {
    if (!postgres) throw new Error("no PostgreSQL");
    t = await postgres.open();
    proxy = await startTcpProxy(TEST_DATABASE_URL);
    cutOff = await t.reopen({ url: proxy.url });
  });
  afterEach(async () => {
    await cutOff?.close();
    await proxy.close();
    await t.store.close();
  });

  it("says the database is unavailable while it is gone, and answers again once it is back", async () => {
    const store = cutOff as Store;
    const node = await register(store);
    const heard: Committed[] = [];
    store.onCommitted((change) => heard.push(change));
    await proxy.cut();
    await expect(store.nodes.heartbeat({ nodeId: node.id, running: [] })).rejects.toBeInstanceOf(StorageUnreachableError);
    await expect(store.nodes.get(node.id)).rejects.toBeInstanceOf(StorageUnreachableError);
    await expect(store.jobs.submit([])).rejects.toBeInstanceOf(StorageUnreachableError);
    // Meanwhile another master, which still reaches the database, takes a job in.
    await submit(t.store);
    await proxy.restore();
    await vi.waitFor(async () => expect(await store.nodes.heartbeat({ nodeId: node.id, running: [] })).toMatchObject({ ok: true }), { timeout: 5_000 });
    // Notices may have been missed while it was gone: once it listens again it is told to look at
    // everything (revocations too: cached grants are checked again).
    await vi.waitFor(() => expect(heard).toContainEqual({ claimable: true, scheduled: true, schedules: true, finished: [], revoked: true, settings: true, missed: true }), { timeout: 5_000 });
    heard.length = 0;
    const job = await submit(t.store);
    await vi.waitFor(() => expect(heard).toContainEqual({ claimable: true, scheduled: false, schedules: false, finished: [] }), { timeout: 5_000 });
    expect((await store.jobs.get(job.id))?.status).toBe("pending");
  });

  it("closes without waiting on a database gone silent (the master's shutdown does not hang)", async () => {
    const store = cutOff as Store;
    await register(store);
    expect(await store.leads()).toBe(true);
    proxy.holdNew();
    proxy.freeze();
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<string>((resolve) => (timer = setTimeout(() => resolve("hung"), 15_000)));
    expect(await Promise.race([store.close().then(() => "closed"), hung])).toBe("closed");
    clearTimeout(timer);
    cutOff = undefined;
  }, 30_000);

  it("leaves no connection behind when it closes while its listener is connecting again", async () => {
    await proxy.cut();
    await proxy.restore({ hold: true });
    // The listener lost its connection and is making a new one, held half made.
    await vi.waitFor(() => expect(proxy.held).toBeGreaterThan(0), { timeout: 5_000 });
    await cutOff?.close();
    cutOff = undefined;
    proxy.release();
    await vi.waitFor(() => expect(proxy.open).toBe(0), { timeout: 3_000 });
  });
});

describe.skipIf(postgres === undefined)("the pool's statement timeout", () => {
  let proxy: TcpProxy | undefined;
  let db: PostgresDatabase | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
    await db?.close();
    db = undefined;
  });

  it("cancels a statement the server takes too long over, as unavailable, and the connection serves on", async () => {
    db = new PostgresDatabase({ url: TEST_DATABASE_URL, max: 1, queryTimeoutMs: 200 });
    await expect(db.run(sql`SELECT pg_sleep(5)`)).rejects.toBeInstanceOf(StorageUnreachableError);
    expect(await db.run(sql<{ one: number }>`SELECT 1 AS one`)).toEqual([{ one: 1 }]);
  });

  it("gives up on a connection that went silent, as unavailable, and drops it rather than reuse it", async () => {
    proxy = await startTcpProxy(TEST_DATABASE_URL);
    db = new PostgresDatabase({ url: proxy.url, max: 1, queryTimeoutMs: 200 });
    await db.run(sql`SELECT 1`);
    proxy.freeze();
    await expect(db.run(sql`SELECT 1`)).rejects.toBeInstanceOf(StorageUnreachableError);
    // The next statement gets a new connection (the pool holds one at most), which answers.
    expect(await db.run(sql<{ one: number }>`SELECT 1 AS one`)).toEqual([{ one: 1 }]);
    expect(db.pool.totalCount).toBe(1);
  }, 20_000);
});
