// The outbox keeps results on disk until the master answered for them.
import { statSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { Outbox } from "../../worker/outbox.js";
import { removeTempDirs, tempDir } from "../helpers/temp.js";

afterAll(() => removeTempDirs());

/** An outbox file as a worker before log tails and batches made it: a row per result. */
function olderOutbox(dir: string): Database.Database {
  const old = new Database(join(dir, "outbox.db"));
  old.exec(`CREATE TABLE results (seq INTEGER PRIMARY KEY AUTOINCREMENT, node_id TEXT NOT NULL, job_id TEXT NOT NULL,
    attempt INTEGER NOT NULL, status TEXT NOT NULL, result TEXT, error TEXT, created_at TEXT NOT NULL, UNIQUE (job_id, attempt))`);
  return old;
}

describe("outbox", () => {
  it("creates its folder 0700 and its database, -wal and -shm 0600", () => {
    const dir = join(tempDir(), "state", "worker");
    const outbox = new Outbox(dir);
    outbox.add([{ nodeId: "n", jobId: "a", attempt: 1, status: "completed", result: { secret: 1 } }]);
    const mode = (path: string) => statSync(path).mode & 0o777;
    expect(mode(dir)).toBe(0o700);
    expect(mode(join(dir, "..")) & 0o077).toBe(0);
    for (const file of ["outbox.db", "outbox.db-wal", "outbox.db-shm"]) expect(mode(join(dir, file)), file).toBe(0o600);
    outbox.close();
  });

  it("keeps results across a restart until they are settled", () => {
    const dir = tempDir();
    const first = new Outbox(dir);
    first.add([
      { nodeId: "n", jobId: "a", attempt: 1, status: "completed", result: { x: 1 } },
      { nodeId: "n", jobId: "b", attempt: 2, status: "failed", error: { message: "e", retryable: true } },
    ]);
    first.close();
    const second = new Outbox(dir);
    expect(second.pending(10)).toEqual([
      { nodeId: "n", jobId: "a", attempt: 1, status: "completed", result: { x: 1 } },
      { nodeId: "n", jobId: "b", attempt: 2, status: "failed", error: { message: "e", retryable: true } },
    ]);
    expect(second.heldJobs()).toEqual([{ jobId: "a", attempt: 1 }, { jobId: "b", attempt: 2 }]);
    second.settle([{ jobId: "a", attempt: 1 }]);
    expect(second.size).toBe(1);
    expect(second.pending(10).map((e) => e.jobId)).toEqual(["b"]);
    second.close();
  });

  it("hands out the oldest first, a page at a time, and stores a repeat once", () => {
    const outbox = new Outbox(tempDir());
    outbox.add(Array.from({ length: 5 }, (_, i) => ({ nodeId: "n", jobId: `j${i}`, attempt: 1, status: "completed" as const, result: i })));
    outbox.add([{ nodeId: "n", jobId: "j0", attempt: 1, status: "completed", result: 0 }]);
    expect(outbox.size).toBe(5);
    expect(outbox.pending(2).map((e) => e.jobId)).toEqual(["j1", "j2"]);
    outbox.close();
  });

  it("answers from disk alone while it holds more than it mirrors, and mirrors again once emptied", () => {
    const dir = tempDir();
    const outbox = new Outbox(dir);
    const many = 10_001;
    const result = (i: number) => ({ nodeId: "n", jobId: `j${i}`, attempt: 1, status: "completed" as const, result: { i } });
    outbox.add(Array.from({ length: many }, (_, i) => result(i)));
    expect(outbox.size).toBe(many);
    // A repeat of the oldest goes to the end, on disk as in memory.
    outbox.add([result(0)]);
    expect(outbox.pending(2).map((e) => e.jobId)).toEqual(["j1", "j2"]);
    expect(outbox.heldJobs()).toHaveLength(many);
    outbox.settle(outbox.pending(many));
    expect(outbox.size).toBe(0);
    // Mirrored again: what is added, settled in part, and kept across a restart agrees with the disk.
    outbox.add([result(1), result(2), result(3)]);
    outbox.add([result(1)]);
    outbox.settle([{ jobId: "j2", attempt: 1 }]);
    expect(outbox.pending(10).map((e) => e.jobId)).toEqual(["j3", "j1"]);
    outbox.close();
    const again = new Outbox(dir);
    expect(again.pending(10)).toEqual([result(3), result(1)]);
    expect(again.size).toBe(2);
    again.close();
  });

  it("keeps big results on disk alone once they pass the bytes it mirrors, and hands them out the same", () => {
    const outbox = new Outbox(tempDir());
    const tail = "x".repeat(1024 * 1024);
    const big = (i: number) => ({ nodeId: "n", jobId: `big${i}`, attempt: 1, status: "completed" as const, result: { i }, logTail: tail });
    outbox.add(Array.from({ length: 40 }, (_, i) => big(i)));
    expect(outbox.size).toBe(40);
    expect(outbox.pending(2)).toEqual([big(0), big(1)]);
    outbox.settle([{ jobId: "big0", attempt: 1 }]);
    expect(outbox.heldJobs()).toHaveLength(39);
    expect(outbox.pending(1)).toEqual([big(1)]);
    outbox.close();
  });

  it("writes each add as one batch row, readable with sqlite3, rewritten when settled in part and deleted when settled", () => {
    const dir = tempDir();
    const outbox = new Outbox(dir);
    const result = (i: number) => ({ nodeId: "n", jobId: `j${i}`, attempt: 1, status: "completed" as const, result: { i } });
    outbox.add([result(1), result(2), result(3)]);
    outbox.add([result(4), { nodeId: "n", jobId: "j5", attempt: 2, status: "failed", error: { message: "no", retryable: false } }]);
    const disk = new Database(join(dir, "outbox.db"), { readonly: true });
    const onDisk = () =>
      disk
        .prepare("SELECT b.seq, r.value ->> 'jobId' AS job, r.value ->> 'status' AS status FROM batches b, json_each(b.results) r ORDER BY b.seq, r.key")
        .raw()
        .all()
        .map((row) => row as [number, string, string])
        .map(([seq, job, status]) => `${String(seq)}:${String(job)}:${String(status)}`);
    expect(onDisk()).toEqual(["1:j1:completed", "1:j2:completed", "1:j3:completed", "2:j4:completed", "2:j5:failed"]);
    // Settled in part: the batch keeps the rest; settled whole: its row is gone.
    outbox.settle([{ jobId: "j2", attempt: 1 }, { jobId: "j4", attempt: 1 }, { jobId: "j5", attempt: 2 }]);
    expect(onDisk()).toEqual(["1:j1:completed", "1:j3:completed"]);
    // Written again: the copy goes to the end, and a batch left with nothing is deleted.
    outbox.add([result(1)]);
    outbox.add([result(3)]);
    expect(onDisk()).toEqual(["3:j1:completed", "4:j3:completed"]);
    expect(outbox.pending(10)).toEqual([result(1), result(3)]);
    outbox.close();
    const again = new Outbox(dir);
    expect(again.pending(10)).toEqual([result(1), result(3)]);
    again.settle(again.pending(10));
    expect(again.size).toBe(0);
    expect(onDisk()).toEqual([]);
    again.close();
    disk.close();
  });

  it("keeps two attempts of one job apart: each written again, handed out and settled on its own, across a restart", () => {
    const dir = tempDir();
    const outbox = new Outbox(dir);
    const result = (jobId: string, attempt: number, value: number) => ({ nodeId: "n", jobId, attempt, status: "completed" as const, result: value });
    outbox.add([result("a", 1, 1), result("b", 1, 2)]);
    // The master handed job a out again (a second attempt) before the first one's result was answered for.
    outbox.add([result("a", 2, 3)]);
    expect(outbox.size).toBe(3);
    // Written again, the second attempt replaces its own copy only, and goes to the end.
    outbox.add([result("a", 2, 30)]);
    expect(outbox.pending(10)).toEqual([result("a", 1, 1), result("b", 1, 2), result("a", 2, 30)]);
    expect(outbox.heldJobs()).toEqual([{ jobId: "a", attempt: 1 }, { jobId: "b", attempt: 1 }, { jobId: "a", attempt: 2 }]);
    // The first attempt answered for: the second stays, found again after its key was freed.
    outbox.settle([{ jobId: "a", attempt: 1 }]);
    outbox.add([result("a", 2, 31), result("a", 3, 4)]);
    expect(outbox.pending(10)).toEqual([result("b", 1, 2), result("a", 2, 31), result("a", 3, 4)]);
    outbox.close();
    const again = new Outbox(dir);
    expect(again.pending(10)).toEqual([result("b", 1, 2), result("a", 2, 31), result("a", 3, 4)]);
    again.settle([{ jobId: "a", attempt: 2 }, { jobId: "b", attempt: 1 }]);
    expect(again.pending(10)).toEqual([result("a", 3, 4)]);
    again.settle([{ jobId: "a", attempt: 3 }]);
    expect(again.size).toBe(0);
    again.close();
    const disk = new Database(join(dir, "outbox.db"), { readonly: true });
    expect(disk.prepare("SELECT COUNT(*) FROM batches").pluck().get()).toBe(0);
    disk.close();
  });

  it("keeps the latest copy of a result written twice before a crash, and deletes the batch it replaced on the next start", () => {
    const dir = tempDir();
    const result = (i: number, value: number) => ({ nodeId: "n", jobId: `j${i}`, attempt: 1, status: "completed" as const, result: value });
    // Two batches as a crashed worker could leave them: the second holds a new copy of the first's only result.
    const crashed = new Database(join(dir, "outbox.db"));
    crashed.exec("CREATE TABLE batches (seq INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT NOT NULL, results TEXT NOT NULL)");
    const insert = crashed.prepare("INSERT INTO batches (created_at, results) VALUES ('x', ?)");
    insert.run(JSON.stringify([result(1, 1)]));
    insert.run(JSON.stringify([result(2, 2), result(1, 10)]));
    crashed.close();
    const outbox = new Outbox(dir);
    expect(outbox.pending(10)).toEqual([result(2, 2), result(1, 10)]);
    outbox.close();
    const disk = new Database(join(dir, "outbox.db"), { readonly: true });
    expect(disk.prepare("SELECT seq FROM batches").pluck().all()).toEqual([2]);
    disk.close();
  });

  it("keeps a result's log tail, and opens an outbox made before log tails", () => {
    const dir = tempDir();
    // The table as an older worker made it, holding one result.
    const old = olderOutbox(dir);
    old.prepare("INSERT INTO results (node_id, job_id, attempt, status, result, created_at) VALUES ('n', 'old', 1, 'completed', '1', 'x')").run();
    old.close();
    const outbox = new Outbox(dir);
    outbox.add([{ nodeId: "n", jobId: "new", attempt: 1, status: "completed", result: 2, logTail: "line 1\nline 2\n" }]);
    const expected = [
      { nodeId: "n", jobId: "old", attempt: 1, status: "completed", result: 1 },
      { nodeId: "n", jobId: "new", attempt: 1, status: "completed", result: 2, logTail: "line 1\nline 2\n" },
    ];
    expect(outbox.pending(10)).toEqual(expected);
    outbox.close();
    // The old row was moved into a batch when the outbox opened; both are there on the next start.
    const disk = new Database(join(dir, "outbox.db"), { readonly: true });
    expect(disk.prepare("SELECT COUNT(*) FROM results").pluck().get()).toBe(0);
    disk.close();
    const again = new Outbox(dir);
    expect(again.pending(10)).toEqual(expected);
    again.close();
  });

  it("leaves an older outbox's rows in place when they pass the bytes it mirrors, on every open", () => {
    const dir = tempDir();
    const old = olderOutbox(dir);
    const insert = old.prepare("INSERT INTO results (node_id, job_id, attempt, status, result, created_at) VALUES ('n', ?, 1, 'completed', ?, 'x')");
    for (let i = 0; i < 5; i++) insert.run(`j${i}`, JSON.stringify("x".repeat(500)));
    const before = old.prepare("SELECT seq, job_id FROM results ORDER BY seq").raw().all();
    old.close();
    const rows = () => {
      const disk = new Database(join(dir, "outbox.db"), { readonly: true });
      const seen = { rows: disk.prepare("SELECT seq, job_id FROM results ORDER BY seq").raw().all(), batches: disk.prepare("SELECT COUNT(*) FROM batches").pluck().get() };
      disk.close();
      return seen;
    };
    for (let open = 0; open < 2; open++) {
      const outbox = new Outbox(dir, { mirroredBytesAtMost: 2000 });
      expect(outbox.pending(2).map((e) => e.jobId)).toEqual(["j0", "j1"]);
      expect(outbox.size).toBe(5);
      outbox.close();
      // Not moved into a batch and back (which would give them new seqs): untouched.
      expect(rows()).toEqual({ rows: before, batches: 0 });
    }
  });

  it("writes a tick of results that would pass the bytes it mirrors as rows, after the results mirrored before it", () => {
    const dir = tempDir();
    const outbox = new Outbox(dir, { mirroredBytesAtMost: 2000 });
    const result = (i: number, size: number) => ({ nodeId: "n", jobId: `j${i}`, attempt: 1, status: "completed" as const, result: "x".repeat(size) });
    outbox.add([result(0, 10)]);
    outbox.add([result(1, 800), result(2, 800), result(3, 800)]);
    const disk = new Database(join(dir, "outbox.db"), { readonly: true });
    // The big tick never became a batch row: only the first batch was ever written.
    expect(disk.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'batches'").pluck().get()).toBe(1);
    expect(disk.prepare("SELECT job_id FROM results ORDER BY seq").pluck().all()).toEqual(["j0", "j1", "j2", "j3"]);
    expect(outbox.pending(10)).toEqual([result(0, 10), result(1, 800), result(2, 800), result(3, 800)]);
    // A single result larger than the limit, once mirrored again, goes to rows alone as well.
    outbox.settle(outbox.pending(10));
    outbox.add([result(4, 3000)]);
    expect(disk.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'batches'").pluck().get()).toBe(1);
    expect(outbox.pending(10)).toEqual([result(4, 3000)]);
    disk.close();
    outbox.close();
  });
});

it("does not hand out again, after a restart, a result settled after it was written twice (its older row is written again without it)", () => {
  const dir = tempDir();
  const first = new Outbox(dir);
  first.add([
    { nodeId: "n", jobId: "a", attempt: 1, status: "completed", result: "first copy" },
    { nodeId: "n", jobId: "b", attempt: 1, status: "completed", result: "b" },
  ]);
  first.add([{ nodeId: "n", jobId: "a", attempt: 1, status: "completed", result: "second copy" }]);
  first.settle([{ jobId: "a", attempt: 1 }]);
  expect(first.pending(10).map((e) => e.jobId)).toEqual(["b"]);
  first.close();
  const second = new Outbox(dir);
  expect(second.pending(10).map((e) => [e.jobId, e.result])).toEqual([["b", "b"]]);
  second.close();
});
