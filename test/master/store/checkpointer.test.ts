// Background WAL checkpoints: the thread copies the WAL into the database file, the
// writer's connection never checkpoints inside a commit, and the WAL is started over
// under steady writes instead of growing without end.
import { execFileSync } from "node:child_process";
import { statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { defaultQueuePolicy } from "../../../master/queue/policy.js";
import { SqliteDatabase } from "../../../master/store/sqlite/database.js";
import { createSqliteStore, openSqliteStore } from "../../../master/store/sqlite/index.js";
import type { Store } from "../../../master/store/types.js";
import { FakeClock } from "../../helpers/clock.js";
import { jobParams } from "../../helpers/store.js";
import { removeTempDirs, tempDir } from "../../helpers/temp.js";

const policy = defaultQueuePolicy();
const size = (path: string) => statSync(path).size;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(10);
  }
}

describe("background WAL checkpoints", () => {
  let store: Store | undefined;
  afterEach(async () => {
    await store?.close();
    store = undefined;
    removeTempDirs();
  });

  it("copies the WAL into the database file from its own thread", async () => {
    const path = join(tempDir(), "gaffer.db");
    const database = new SqliteDatabase({ path });
    store = createSqliteStore(database, { path, clock: new FakeClock(), policy, backgroundCheckpoints: { intervalMs: 10 } });
    expect(database.sqlite.pragma("wal_autocheckpoint", { simple: true })).toBe(0);
    const before = size(path);
    const outcome = await store.jobs.submit(Array.from({ length: 1000 }, () => jobParams({ payload: { text: "x".repeat(200) } })));
    expect(outcome.ok).toBe(true);
    // The writer's connection does not checkpoint, so only the thread can have grown the file.
    await until(() => size(path) > before + 200_000, "the database file holds the new jobs");
  });

  it("starts the WAL over under steady writes", async () => {
    const path = join(tempDir(), "gaffer.db");
    store = openSqliteStore({ path, clock: new FakeClock(), policy, backgroundCheckpoints: { intervalMs: 5, restartFrames: 50 } });
    for (let round = 0; round < 120; round++) {
      await store.jobs.submit(Array.from({ length: 50 }, () => jobParams({ payload: { text: "y".repeat(200) } })));
    }
    // 6,000 jobs back to back: never started over, the WAL grows past 15 MB (measured: 19 MB);
    // started over from 50 pages, it stays near 1.5 MB.
    expect(size(`${path}-wal`)).toBeLessThan(8_000_000); // room for a busy machine (4.5 MB seen under the full suite)
    expect((await store.jobs.stats()).jobs.pending).toBe(6000);
  });

  it("lets a process that only opened and closed a store finish (the close waits for the thread)", () => {
    const dist = fileURLToPath(new URL("../../../dist/master/", import.meta.url));
    const script = `
      import { openSqliteStore } from ${JSON.stringify(join(dist, "store/sqlite/index.js"))};
      import { defaultQueuePolicy } from ${JSON.stringify(join(dist, "queue/policy.js"))};
      const policy = defaultQueuePolicy();
      const store = openSqliteStore({ path: ${JSON.stringify(join(tempDir(), "tool.db"))}, clock: { now: () => new Date() }, policy, backgroundCheckpoints: true });
      await store.close();
      console.log("closed");`;
    // Exit code 13 (a top-level await that never settled) if close() waited on an unreferenced thread.
    const output = execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 20_000 });
    expect(output.trim()).toBe("closed");
  });

  it("stops its thread when the store closes", async () => {
    const path = join(tempDir(), "gaffer.db");
    store = openSqliteStore({ path, clock: new FakeClock(), policy, backgroundCheckpoints: true });
    await store.jobs.submit([jobParams()]);
    await store.close();
    store = undefined;
    // Closing the last connection checkpoints and removes the WAL.
    expect(() => statSync(`${path}-wal`)).toThrow();
  });
});
