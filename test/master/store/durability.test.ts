// Group commits flushed off the event loop: a write is acknowledged only once the WAL
// is on disk, flushes are shared between groups, and a failed flush is a storage error.
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { SqliteDatabase } from "../../../master/store/sqlite/database.js";
import { StorageUnavailableError } from "../../../master/store/types.js";
import { tempDir } from "../../helpers/temp.js";

/** An fdatasync the test releases (or fails) by hand. */
function heldFlushes() {
  const calls: { resolve: () => void; reject: (error: Error) => void }[] = [];
  return {
    calls,
    fdatasync: (_fd: number) =>
      new Promise<void>((resolve, reject) => {
        calls.push({ resolve, reject });
      }),
  };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe("group commits flushed on the thread pool", () => {
  let db: SqliteDatabase | undefined;
  afterEach(() => {
    db?.close();
    db = undefined;
  });

  function open(fdatasync: (fd: number) => Promise<void>): SqliteDatabase {
    db = new SqliteDatabase({ path: join(tempDir(), "d.db"), synchronous: "full", syncOffThread: true, fdatasync });
    db.sqlite.exec("CREATE TABLE t (n INTEGER); CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT NOT NULL)");
    return db;
  }

  it("acknowledges a group only after its WAL flush, and still guarantees full durability", async () => {
    const flushes = heldFlushes();
    const d = open(flushes.fdatasync);
    // COMMIT itself no longer fsyncs; the flush does.
    expect(d.sqlite.pragma("synchronous", { simple: true })).toBe(1);
    expect(d.durability).toBe("full");
    let settled = false;
    const write = d.grouped(() => d.sqlite.prepare("INSERT INTO t VALUES (1)").run().changes).then((n) => {
      settled = true;
      return n;
    });
    await turn();
    await turn();
    expect(flushes.calls).toHaveLength(1);
    expect(settled).toBe(false);
    flushes.calls[0]?.resolve();
    expect(await write).toBe(1);
  });

  it("lets later groups share one flush while another is on disk", async () => {
    const flushes = heldFlushes();
    const d = open(flushes.fdatasync);
    const first = d.grouped(() => d.sqlite.prepare("INSERT INTO t VALUES (1)").run());
    await turn();
    await turn();
    const second = d.grouped(() => d.sqlite.prepare("INSERT INTO t VALUES (2)").run());
    const third = d.grouped(() => d.sqlite.prepare("INSERT INTO t VALUES (3)").run());
    await turn();
    await turn();
    // The first flush may not cover the later commits, so they wait for the next one, together.
    expect(flushes.calls).toHaveLength(1);
    flushes.calls[0]?.resolve();
    await first;
    await turn();
    expect(flushes.calls).toHaveLength(2);
    flushes.calls[1]?.resolve();
    await Promise.all([second, third]);
    expect(flushes.calls).toHaveLength(2);
  });

  it("answers a failed flush with a storage error (the master turns read-only)", async () => {
    const flushes = heldFlushes();
    const d = open(flushes.fdatasync);
    const write = d.grouped(() => d.sqlite.prepare("INSERT INTO t VALUES (1)").run());
    await turn();
    await turn();
    flushes.calls[0]?.reject(Object.assign(new Error("EIO: i/o error, fdatasync"), { code: "EIO" }));
    await expect(write).rejects.toBeInstanceOf(StorageUnavailableError);
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
});
