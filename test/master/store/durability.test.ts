// Group commits flushed off the event loop: a write is acknowledged only once the WAL
// is on disk, flushes are shared between groups, and a failed flush is a storage error.
import { join } from "node:path";
import { sql } from "kysely";
import { afterEach, describe, expect, it } from "vitest";
import { loopLoad, SqliteDatabase } from "../../../master/store/sqlite/database.js";
import { StorageUnavailableError } from "../../../master/store/types.js";
import { heldFlushes, turn } from "../../helpers/flushes.js";
import { removeTempDirs, tempDir } from "../../helpers/temp.js";

describe("group commits flushed on the thread pool", () => {
  let db: SqliteDatabase | undefined;
  afterEach(() => {
    db?.close();
    db = undefined;
    removeTempDirs();
  });

  function open(fdatasync: (fd: number) => Promise<void>, loopBusy = () => false): SqliteDatabase {
    db = new SqliteDatabase({ path: join(tempDir(), "d.db"), synchronous: "full", syncOffThread: true, fdatasync, loopBusy });
    db.sqlite.exec("CREATE TABLE t (n INTEGER); CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT NOT NULL)");
    return db;
  }

  const insert = (d: SqliteDatabase, n: number) => d.grouped(() => d.sqlite.prepare("INSERT INTO t VALUES (?)").run(n).changes);

  it("acknowledges a group only after its WAL flush, and still guarantees full durability", async () => {
    const flushes = heldFlushes();
    const d = open(flushes.fdatasync);
    // COMMIT itself no longer fsyncs; the flush does.
    expect(d.sqlite.pragma("synchronous", { simple: true })).toBe(1);
    expect(d.durability).toBe("full");
    let settled = 0;
    const writes = [insert(d, 1), insert(d, 2)].map((write) => write.then(() => (settled += 1)));
    await turn();
    await turn();
    expect(flushes.calls).toHaveLength(1);
    expect(settled).toBe(0);
    flushes.calls[0]?.resolve();
    await Promise.all(writes);
    expect(settled).toBe(2);
  });

  it("lets the next group grow while a flush is on its way, then commits it once", async () => {
    const flushes = heldFlushes();
    const d = open(flushes.fdatasync);
    const reader = new SqliteDatabase({ path: d.sqlite.name, readonly: true });
    const rows = () => (reader.sqlite.prepare("SELECT COUNT(*) AS n FROM t").get() as { n: number }).n;
    try {
      const first = [insert(d, 1), insert(d, 2)];
      await turn();
      await turn();
      expect(rows()).toBe(2);
      // Three more writes in three ticks, while the first flush is held: none commits yet.
      const later: Promise<number>[] = [];
      for (const n of [3, 4, 5]) {
        later.push(insert(d, n));
        await turn();
      }
      expect(rows()).toBe(2);
      expect(flushes.calls).toHaveLength(1);
      flushes.calls[0]?.resolve();
      await Promise.all(first);
      await turn();
      await turn();
      // Then all three in one transaction, and one flush for them.
      expect(rows()).toBe(5);
      expect(flushes.calls).toHaveLength(2);
      flushes.calls[1]?.resolve();
      expect(await Promise.all(later)).toEqual([1, 1, 1]);
    } finally {
      reader.close();
    }
  });

  it("answers a failed flush with a storage error (the master turns read-only)", async () => {
    const flushes = heldFlushes();
    const d = open(flushes.fdatasync);
    const writes = [insert(d, 1), insert(d, 2)];
    await turn();
    await turn();
    flushes.calls[0]?.reject(Object.assign(new Error("EIO: i/o error, fdatasync"), { code: "EIO" }));
    for (const write of writes) await expect(write).rejects.toBeInstanceOf(StorageUnavailableError);
  });

  it("flushes a group of one at once, without the thread pool", async () => {
    const flushes = heldFlushes();
    const d = open(flushes.fdatasync);
    expect(await insert(d, 1)).toBe(1);
    await d.durable();
    expect(flushes.calls).toHaveLength(0);
  });

  it("sends a group of one to the thread pool while the event loop is busy, so the others need not wait for the disk", async () => {
    const flushes = heldFlushes();
    const d = open(flushes.fdatasync, () => true);
    let settled = false;
    const write = insert(d, 1).then(() => (settled = true));
    await turn();
    await turn();
    expect(flushes.calls).toHaveLength(1);
    expect(settled).toBe(false);
    flushes.calls[0]?.resolve();
    await write;
    expect(settled).toBe(true);
  });

  it("counts the event loop busy only after a window mostly spent working", async () => {
    const busy = loopLoad();
    expect(busy()).toBe(false);
    const until = performance.now() + 80;
    while (performance.now() < until); // a stretch of work with no turn of the loop
    expect(busy()).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(busy()).toBe(false);
  });

  it("flushes a write outside a group at once, so a group after it needs no flush of its own for it", async () => {
    const flushes = heldFlushes();
    const d = open(flushes.fdatasync);
    d.transaction(() => d.sqlite.prepare("INSERT INTO t VALUES (1)").run());
    // Flushed synchronously (fdatasync on the event loop, as SQLite's FULL would): nothing
    // is left for the thread pool. Were it not flushed, durable() would wait on a held flush.
    await d.durable();
    expect(flushes.calls).toHaveLength(0);
    // And the same for a statement outside any transaction.
    d.run(d.kysely.insertInto("settings").values({ key: "k", value: "v", updated_at: "2026-01-01T00:00:00.000Z" }));
    await d.durable();
    expect(flushes.calls).toHaveLength(0);
  });

  it("has nothing to flush after a transaction that changed no rows, and no answer waits for one", async () => {
    const flushes = heldFlushes();
    const d = open(flushes.fdatasync);
    // Two writes in a group, their flush held.
    const writes = Promise.all([insert(d, 1), insert(d, 2)]);
    await turn();
    await turn();
    expect(flushes.calls).toHaveLength(1);
    // A transaction that reads only (a sweep that found nothing): no fdatasync of its own on
    // the event loop, which would also have made the held group durable at once.
    const count = d.transaction(() => (d.sqlite.prepare("SELECT COUNT(*) AS n FROM t").get() as { n: number }).n);
    expect(count).toBe(2);
    let durable = false;
    void d.durable().then(() => (durable = true));
    await turn();
    await turn();
    expect(durable).toBe(false);
    flushes.calls[0]?.resolve();
    await writes;
    await turn();
    expect(durable).toBe(true);
    // And once everything is on disk, another such transaction leaves nothing to wait for.
    d.transaction(() => d.sqlite.prepare("UPDATE t SET n = n WHERE n < 0").run());
    await d.durable();
    expect(flushes.calls).toHaveLength(1);
  });
});

describe("prepared statements", () => {
  it("answer rows as objects named by their columns, NULLs included, a later column of the same name winning", () => {
    const db = new SqliteDatabase({ path: join(tempDir(), "rows.db") });
    try {
      db.sqlite.exec("CREATE TABLE t (a INTEGER, b TEXT, c REAL); INSERT INTO t VALUES (1, 'x', NULL), (2, 'y', 2.5)");
      const both = db.prepareSql<object, { a: number; b: string; c: number | null }>(sql`SELECT a, b, c FROM t ORDER BY a`);
      expect(both.all({})).toEqual([
        { a: 1, b: "x", c: null },
        { a: 2, b: "y", c: 2.5 },
      ]);
      expect(both.get({})).toEqual({ a: 1, b: "x", c: null });
      const none = db.prepareSql<object, { a: number }>(sql`SELECT a FROM t WHERE a > 5`);
      expect(none.get({})).toBeUndefined();
      expect(none.all({})).toEqual([]);
      const twice = db.prepareSql<object, { a: string }>(sql`SELECT a, b AS a FROM t WHERE a = 1`);
      expect(twice.get({})).toEqual({ a: "x" });
      // What better-sqlite3 itself answers for the same statements.
      expect(db.sqlite.prepare("SELECT a, b AS a FROM t WHERE a = 1").get()).toEqual({ a: "x" });
      // A column named __proto__ is a column, not the row's prototype.
      const odd = db.prepareSql<object, Record<string, unknown>>(sql`SELECT x'00' AS __proto__, a FROM t WHERE a = 1`).get({});
      expect(Object.getPrototypeOf(odd)).toBe(Object.prototype);
      expect(Object.keys(odd ?? {})).toEqual(["__proto__", "a"]);
    } finally {
      db.close();
      removeTempDirs();
    }
  });
});
