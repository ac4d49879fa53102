// The SQLite store on a thread of its own (a serving master's, GAFFER_STORE_THREAD=on): every
// verb a message to the thread and back, its answers and its refusals as the store in process
// gives them, its commits heard on the event loop, and a thread that stops refuses what waits.
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Worker } from "node:worker_threads";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { openThreadStore, type ThreadStoreParams } from "../../../master/store/thread/client.js";
import {
  CorruptDatabaseError,
  InvalidCursorError,
  StorageUnavailableError,
  StorageUnreachableError,
  UnstorableValueError,
  type Committed,
  type Store,
} from "../../../master/store/types.js";
import { AGGREGATES, isVerb, receiveError, sendError, VERBS } from "../../../master/store/thread/wire.js";
import { claim, jobParams, openSqliteTestStore, register, submit } from "../../helpers/store.js";
import { removeTempDirs, tempDir } from "../../helpers/temp.js";

const POLICY = { retryDelayS: 5, retryMaxDelayS: 300, stallGraceS: 300, agingS: 300, nodeTimeoutS: 60 };

describe("the store on its own thread", () => {
  const open: Store[] = [];
  const start = async (extra: Partial<ThreadStoreParams> = {}) => {
    const store = await openThreadStore({ path: join(tempDir(), "gaffer.db"), synchronous: "full", policy: POLICY, ...extra });
    open.push(store);
    return store;
  };
  afterEach(async () => {
    for (const store of open.splice(0)) await store.close();
    removeTempDirs();
  });

  it("runs the verbs in the thread and answers as the store does, commits heard on the event loop", async () => {
    const store = await start();
    const changes: Committed[] = [];
    store.onCommitted((change) => changes.push(change));
    const job = await submit(store, { type: "resize", payload: { n: 1 } });
    expect(job).toMatchObject({ type: "resize", status: "pending", payload: { n: 1 } });
    await store.durable();
    expect(changes.some((change) => change.claimable)).toBe(true);
    const node = await register(store);
    const [claimed] = await claim(store, node.id);
    expect(claimed).toMatchObject({ id: job.id, attempt: 1 });
    const reported = await store.jobs.report({ nodeId: node.id, reports: [{ jobId: job.id, attempt: 1, status: "completed", result: { ok: true } }] });
    expect(reported.items).toEqual([expect.objectContaining({ jobId: job.id, verdict: "accepted" })]);
    expect(changes.flatMap((change) => change.finished)).toContain(job.id);
    expect(await store.jobs.get(job.id)).toMatchObject({ status: "completed", result: { ok: true } });
    expect(await store.describe()).toMatchObject({ dialect: "sqlite", store_thread: true, journal_mode: "wal" });
    await expect(store.leads()).resolves.toBe(true);
  });

  it("hands a payload edited by hand into text that is not JSON as null with its flag, by claim and by claimEach", async () => {
    const path = join(tempDir(), "gaffer.db");
    const store = await start({ path });
    const jobs = [];
    for (let n = 0; n < 3; n++) jobs.push(await submit(store, { payload: { n } }));
    await store.durable();
    const editor = new Database(path);
    try {
      editor.prepare("UPDATE jobs SET payload = '{not json' WHERE id IN (?, ?)").run(jobs[0]?.id, jobs[2]?.id);
    } finally {
      editor.close();
    }
    const first = await register(store, "node-1");
    const second = await register(store, "node-2");
    const [taken] = await claim(store, first.id, 1);
    expect([taken?.id, taken?.payloadJson, taken?.payloadUnreadable]).toEqual([jobs[0]?.id, "null", true]);
    const outcomes = await store.jobs.claimEach([
      { nodeId: first.id, max: 1 },
      { nodeId: second.id, max: 1 },
    ]);
    expect(outcomes.map((outcome) => (outcome.ok ? outcome.items.map((job) => [job.id, job.payloadJson, job.payloadUnreadable]) : outcome.reason))).toEqual([
      [[jobs[1]?.id, '{"n":1}', undefined]],
      [[jobs[2]?.id, "null", true]],
    ]);
  });

  it("keeps the store's own errors: their class and fields", async () => {
    const store = await start();
    const refused = await store.jobs.list({ limit: 10, cursor: "not-a-cursor" }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(InvalidCursorError);
    expect((refused as InvalidCursorError).cursor).toBe("not-a-cursor");
    const outcome = await store.jobs.submit([jobParams({ dependsOn: ["01J00000000000000000000000"] })]);
    expect(outcome).toMatchObject({ ok: false, reason: "unknown_dependency" });
  });

  it("carries each of the store's errors across the thread as itself: a full disk stays a full disk (read-only mode)", () => {
    const errors = [
      new StorageUnavailableError("database or disk is full", "SQLITE_FULL"),
      new StorageUnreachableError("connection refused", "ECONNREFUSED"),
      new UnstorableValueError("a NUL character"),
      new CorruptDatabaseError("corrupt"),
      new InvalidCursorError("abc"),
    ];
    for (const error of errors) {
      const received = receiveError(structuredClone(sendError(error)));
      expect(received).toBeInstanceOf(error.constructor);
      expect(received).toMatchObject({ message: error.message, ...("code" in error ? { code: error.code } : {}) });
    }
    const plain = receiveError(sendError(Object.assign(new Error("SQLITE_BUSY: database is locked"), { code: "SQLITE_BUSY" })));
    expect(plain).toMatchObject({ message: "SQLITE_BUSY: database is locked", code: "SQLITE_BUSY" });
  });

  it("refuses a corrupt file at open as the store in process does, and stops its thread", async () => {
    const path = join(tempDir(), "corrupt.db");
    writeFileSync(path, "this is not a database ".repeat(500));
    let thread: Worker | undefined;
    let exits = 0;
    const opening = openThreadStore({ path, synchronous: "full", policy: POLICY, onThreadStarted: (t) => (thread = t), onThreadExit: () => exits++ });
    await expect(opening).rejects.toBeInstanceOf(CorruptDatabaseError);
    await new Promise((resolve) => (thread?.threadId === -1 ? resolve(undefined) : thread?.once("exit", resolve)));
    expect(exits).toBe(0);
  });

  it("a thread that stops: what waits and what comes after are refused as a database out of reach, told once", async () => {
    let thread: Worker | undefined;
    const exits: Error[] = [];
    const store = await start({ onThreadStarted: (t) => (thread = t), onThreadExit: (error) => exits.push(error) });
    await submit(store);
    const inFlight = store.jobs.list({ limit: 10 });
    await thread?.terminate();
    await expect(inFlight).rejects.toBeInstanceOf(StorageUnreachableError);
    await expect(store.jobs.get("01J00000000000000000000000")).rejects.toBeInstanceOf(StorageUnreachableError);
    await expect(store.ping()).rejects.toBeInstanceOf(StorageUnreachableError);
    expect(exits).toHaveLength(1);
    expect(exits[0]?.message).toMatch(/store's thread stopped/);
  });

  it("closes: the thread ends without being told of as a failure, and verbs are refused after", async () => {
    let thread: Worker | undefined;
    let exits = 0;
    const store = await openThreadStore({
      path: join(tempDir(), "gaffer.db"),
      synchronous: "full",
      policy: POLICY,
      onThreadStarted: (t) => (thread = t),
      onThreadExit: () => exits++,
    });
    const ended = new Promise((resolve) => thread?.once("exit", resolve));
    await store.close();
    await ended;
    expect(exits).toBe(0);
    await expect(store.jobs.get("01J00000000000000000000000")).rejects.toBeInstanceOf(StorageUnreachableError);
  });

  it("keeps the process alive while it opens and while a call waits, and never once idle", async () => {
    const dir = tempDir();
    const client = pathToFileURL(join(fileURLToPath(new URL("../../..", import.meta.url)), "dist", "master", "store", "thread", "client.js")).href;
    const script = join(dir, "idle.mjs");
    // No close(): the process must end by itself once nothing waits.
    writeFileSync(
      script,
      `const { openThreadStore } = await import(${JSON.stringify(client)});
const store = await openThreadStore({ path: ${JSON.stringify(join(dir, "gaffer.db"))}, synchronous: "full", policy: ${JSON.stringify(POLICY)} });
console.log("opened");
console.log("answered", JSON.stringify((await store.jobs.stats()).jobs.pending));`,
    );
    const child = spawnSync(process.execPath, [script], { encoding: "utf8", timeout: 20_000 });
    expect(child.status, child.stderr).toBe(0);
    expect(child.stdout).toBe("opened\nanswered 0\n");
  });

  it("offers each aggregate's verbs as its interface names them, each one the store in process has, and runs no other method", async () => {
    const store = await start();
    const local = openSqliteTestStore();
    try {
      for (const name of AGGREGATES) {
        expect(Object.keys(store[name]).sort()).toEqual([...VERBS[name]].sort());
        for (const verb of VERBS[name]) expect(typeof (local.store[name] as unknown as Record<string, unknown>)[verb], `${name}.${verb}`).toBe("function");
      }
    } finally {
      await local.store.close();
    }
    // The SQLite store's own helpers (TypeScript's private methods are methods too) stay inside.
    expect(isVerb("jobs", "claim")).toBe(true);
    expect(isVerb("", "close")).toBe(true);
    expect(isVerb("nodes", "beat")).toBe(false);
    expect(isVerb("jobs", "constructor")).toBe(false);
    expect(isVerb("__proto__", "toString")).toBe(false);
    expect(isVerb("rateLimits", "limiter")).toBe(false);
  });
});
