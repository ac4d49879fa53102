// Long reads, on the master's connection and in the reader thread: the queue stats scan
// every job, the throughput every job finished in the hour, and a list whose filter
// matches little walks far back. The master reads them in a thread of their own, so a
// dashboard's poll, a metrics scrape or a client's search never stops the event loop.
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { afterEach, describe, expect, it, vi } from "vitest";
import { SqliteDatabase } from "../../../master/store/sqlite/database.js";
import { readRows, startReader, type ThreadReader } from "../../../master/store/sqlite/reader.js";
import { dialects, jobParams, register, submit, type TestStore } from "../../helpers/store.js";
import { removeTempDirs, tempDir } from "../../helpers/temp.js";

const sqlite = dialects[0];
if (!sqlite) throw new Error("no dialect");

describe("long reads: queue stats, throughput, lists", () => {
  let t: TestStore;
  afterEach(async () => {
    await t.store.close();
    removeTempDirs();
  });

  it.each([true, false])("counts jobs by status, pending by priority, nodes by status (reader thread: %s)", async (readerThread) => {
    t = await sqlite.open({ readerThread });
    await submit(t.store, { priority: "live" });
    await submit(t.store, { priority: "batch" });
    await submit(t.store, { runAt: new Date(t.clock.now().getTime() + 60_000) });
    await register(t.store);
    t.clock.advanceSeconds(10);
    const stats = await t.store.jobs.stats();
    expect(stats.jobs).toMatchObject({ pending: 2, scheduled: 1, running: 0 });
    expect(stats.pending_by_priority).toEqual({ live: 1, high: 0, medium: 0, low: 0, batch: 1 });
    expect(stats.oldest_pending_age_s).toBe(10);
    expect(stats.nodes).toEqual({ online: 1, draining: 0, dead: 0, offline: 0 });
    // A commit just made is in the next read.
    await submit(t.store, { priority: "live" });
    expect((await t.store.jobs.stats()).pending_by_priority.live).toBe(2);
  });

  it.each([true, false])("counts finished jobs a minute (reader thread: %s)", async (readerThread) => {
    t = await sqlite.open({ readerThread });
    const jobs = [await submit(t.store), await submit(t.store)];
    const node = await register(t.store);
    await t.store.jobs.claim({ nodeId: node.id, max: 2 });
    await t.store.jobs.report({
      nodeId: node.id,
      reports: [
        { jobId: jobs[0]?.id ?? "", attempt: 1, status: "completed" },
        { jobId: jobs[1]?.id ?? "", attempt: 1, status: "failed", error: { message: "no", retryable: false } },
      ],
    });
    const minute = `${t.clock.now().toISOString().slice(0, 16)}:00.000Z`;
    expect(await t.store.jobs.throughput({ since: new Date(t.clock.now().getTime() - 3_600_000) })).toEqual([{ minute, completed: 1, failed: 1 }]);
  });

  it.each([true, false])("lists jobs and the audit log by filter, newest first, a page at a time (reader thread: %s)", async (readerThread) => {
    t = await sqlite.open({ readerThread });
    const a1 = await submit(t.store, { type: "resize", tags: { team: "web" } });
    await submit(t.store, { type: "email" });
    const a2 = await submit(t.store, { type: "resize", clientId: "client-b" });
    const a3 = await submit(t.store, { type: "resize", tags: { team: "web" } });
    const first = await t.store.jobs.list({ limit: 2, type: "resize" });
    expect(first.items.map((job) => job.id)).toEqual([a3.id, a2.id]);
    expect(first.next_cursor).not.toBeNull();
    const second = await t.store.jobs.list({ limit: 2, type: "resize", cursor: first.next_cursor ?? undefined });
    expect(second.items.map((job) => job.id)).toEqual([a1.id]);
    expect(second.next_cursor).toBeNull();
    expect((await t.store.jobs.list({ limit: 10, tag: { key: "team", value: "web" } })).items.map((job) => job.id)).toEqual([a3.id, a1.id]);
    expect((await t.store.jobs.list({ limit: 10, clientId: "client-b" })).items).toMatchObject([{ id: a2.id, type: "resize", status: "pending", tags: {} }]);
    const audit = await t.store.audit.list({ limit: 10, eventType: "job.submitted", entityId: a2.id });
    expect(audit.items).toMatchObject([{ event_type: "job.submitted", entity_type: "job", entity_id: a2.id }]);
  });

  // What each read is, and whether the reader thread takes it (a read that walks far) or
  // the master's connection does (one index range: quicker there, and no copies). Where a
  // read ran is seen from the calls, not timed: a thread's read leaves the event loop free
  // by construction, and whether the loop happened to turn during a quick read depends on
  // how the machine schedules the two threads (it did not, once, in CI).
  const reads: [string, (t: TestStore) => Promise<unknown>, boolean][] = [
    ["the queue stats", (t) => t.store.jobs.stats(), true],
    ["a job list whose filter matches no job", (t) => t.store.jobs.list({ limit: 50, type: "none-of-these" }), true],
    ["a job list by status and client", (t) => t.store.jobs.list({ limit: 50, status: "failed", clientId: "client-a" }), true],
    ["an audit list whose filter matches no row", (t) => t.store.audit.list({ limit: 50, eventType: "auth.failed" }), true],
    ["a page of jobs by status alone", (t) => t.store.jobs.list({ limit: 50, status: "pending" }), false],
    ["a page of one job's audit rows", (t) => t.store.audit.list({ limit: 50, entityType: "job", entityId: "none" }), false],
  ];
  it.each(reads.flatMap(([what, read, inThread]) => [
    [inThread ? `reads ${what} in the reader thread` : `reads ${what} on the master's connection all the same`, read, true, inThread] as const,
    ...(inThread ? [[`(without the thread it reads ${what} on the master's connection)`, read, false, false] as const] : []),
  ]))("%s", async (_, read, readerThread, inThread) => {
    t = await sqlite.open({ readerThread });
    const outcome = await t.store.jobs.submit(Array.from({ length: 1000 }, () => jobParams()));
    if (!outcome.ok) throw new Error("submit failed");
    const posted = vi.spyOn(Worker.prototype, "postMessage");
    const onMaster = vi.spyOn(SqliteDatabase.prototype, "allCompiled");
    try {
      await read(t);
      const toThread = posted.mock.calls.filter(([message]) => typeof message === "object" && message !== null && "statements" in message);
      expect({ toThread: toThread.length > 0, onMaster: onMaster.mock.calls.length > 0 }).toEqual({ toThread: inThread, onMaster: !inThread });
    } finally {
      posted.mockRestore();
      onMaster.mockRestore();
    }
  });

  it.each([true, false])("lets the event loop turn while the queue stats of 20,000 jobs are read (reader thread: %s)", async (readerThread) => {
    t = await sqlite.open({ readerThread });
    for (let done = 0; done < 20_000; done += 1000) {
      const outcome = await t.store.jobs.submit(Array.from({ length: 1000 }, () => jobParams()));
      if (!outcome.ok) throw new Error("submit failed");
    }
    // Three reads: a thread's answer comes in a turn of the loop, so the loop turns at least
    // between them even if this thread was descheduled while one read ran. On the master's
    // connection the reads run to the end without a turn.
    let turned = 0;
    let reading = true;
    const spin = () => {
      if (!reading) return;
      turned += 1;
      setImmediate(spin);
    };
    setImmediate(spin);
    for (let i = 0; i < 3; i += 1) await t.store.jobs.stats();
    reading = false;
    expect(turned > 0).toBe(readerThread);
  });
});

/** The threads the readers started, newest last. */
const threads: Worker[] = [];

/** The thread stops as a failure would end it (terminated under the reader); settles once the reader knows. */
async function crash(reader: ThreadReader): Promise<void> {
  const thread = threads.at(-1);
  if (reader.threadId === undefined || thread?.threadId !== reader.threadId) throw new Error("no reader thread runs");
  await thread.terminate();
  while (reader.threadId !== undefined) await new Promise((resolve) => setTimeout(resolve, 5));
}

describe("the reader thread", () => {
  let db: SqliteDatabase;
  let reader: ThreadReader;
  const told: string[] = [];
  const open = (restartAfterMs: number) => {
    db = new SqliteDatabase({ path: join(tempDir(), "reader.db") });
    // A table only the master's connection sees: a read of it fails in the thread alone.
    db.sqlite.exec("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1); CREATE TEMP TABLE mine (x INTEGER); INSERT INTO mine VALUES (2)");
    reader = startReader(db.sqlite.name, {
      onError: (message, kind) => told.push(`${kind}: ${message}`),
      restartAfterMs,
      onThreadStarted: (thread) => threads.push(thread),
    });
  };
  const read = (sql: string) => readRows(db, reader, [{ sql, parameters: [] }]);

  afterEach(async () => {
    await reader.close();
    db.close();
    told.length = 0;
    removeTempDirs();
  });

  it("says so when a read fails there, and reads on the master's connection instead", async () => {
    open(60_000);
    expect(await read("SELECT x FROM t")).toEqual([[{ x: 1 }]]);
    expect(told).toEqual([]);
    expect(await read("SELECT x FROM mine")).toEqual([[{ x: 2 }]]);
    expect(told).toEqual([expect.stringMatching(/^read failed: a read in the reader thread failed \(no such table: mine\)/)]);
    // The thread still runs.
    expect(reader.threadId).toBeDefined();
  });

  it("binds values there as the master's connection does (a boolean as 1)", async () => {
    open(60_000);
    expect(await readRows(db, reader, [{ sql: "SELECT ? AS yes, ? AS no", parameters: [true, false] }])).toEqual([[{ yes: 1, no: 0 }]]);
    expect(told).toEqual([]);
  });

  it("answers a read of 100 MB (the thread's heap is not capped: at a cap the whole process could abort)", async () => {
    open(60_000);
    const [rows = []] = await read(
      "SELECT length(hex(zeroblob(10000000))) AS n, hex(zeroblob(10000000)) AS big FROM (SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5)",
    );
    expect(rows.map((row) => row.n)).toEqual([2e7, 2e7, 2e7, 2e7, 2e7]);
    expect(told).toEqual([]);
  });

  it("says so when the thread stops, reads on the master's connection until it restarts", async () => {
    open(60_000);
    await crash(reader);
    expect(told).toEqual([expect.stringMatching(/^stopped: the reader thread stopped \(the reader thread exited/)]);
    expect(reader.threadId).toBeUndefined();
    // Within the minute: straight to the master's connection (the temp table proves where).
    expect(await read("SELECT x FROM mine")).toEqual([[{ x: 2 }]]);
    expect(told).toHaveLength(1);
  });

  it("starts again on a read once the wait is over", async () => {
    open(0);
    const first = reader.threadId;
    await crash(reader);
    expect(reader.threadId).toBeUndefined();
    expect(await read("SELECT x FROM t")).toEqual([[{ x: 1 }]]);
    expect(reader.threadId).toBeDefined();
    expect(reader.threadId).not.toBe(first);
    // In the new thread: the master's temp table is not there.
    await read("SELECT x FROM mine");
    expect(told.at(-1)).toMatch(/a read in the reader thread failed/);
  });
});
