// A master with GAFFER_STORE_THREAD=on: HTTP on the event loop, the SQLite store on a thread of
// its own. Jobs flow through it as through the default, /state says where the store runs, and a
// thread that stops takes the master down (exit code 1) rather than leaving it up and useless.
import type { Worker as Thread } from "node:worker_threads";
import { afterEach, describe, expect, it } from "vitest";
import type { MasterInternals } from "../../master/index.js";
import { openStore } from "../../master/store/open.js";
import type { Job } from "../../master/store/types.js";
import { http, startTestMaster, startTestWorker } from "../helpers/master.js";
import { eventually } from "../helpers/processes.js";
import { removeTempDirs } from "../helpers/temp.js";

describe("a master with its store on a thread of its own", () => {
  let master: MasterInternals | undefined;
  const exitCode = process.exitCode;
  afterEach(async () => {
    await master?.close();
    master = undefined;
    process.exitCode = exitCode;
    removeTempDirs();
  });

  it("runs jobs end to end and says where its store runs", async () => {
    master = await startTestMaster({ env: { GAFFER_STORE_THREAD: "on" } });
    const state = await http<{ db: Record<string, unknown> }>(master.url, "GET", "/api/v1/state");
    expect(state.body.db).toMatchObject({ dialect: "sqlite", store_thread: true, commit_flush: "thread pool" });
    const made = await http<Job>(master.url, "POST", "/api/v1/jobs", { type: "echo", payload: { n: 7 } });
    expect(made.status).toBe(201);
    const worker = await startTestWorker(master.url, { name: "thread-node", capacity: 2, handlers: { echo: async (job) => job.payload } });
    try {
      const done = await http<Job>(master.url, "GET", `/api/v1/jobs/${made.body.id}?wait_s=20`);
      expect(done.body).toMatchObject({ status: "completed", result: { n: 7 } });
    } finally {
      await worker.stop();
    }
  });

  it("keeps the store in process by default", async () => {
    master = await startTestMaster();
    const state = await http<{ db: Record<string, unknown> }>(master.url, "GET", "/api/v1/state");
    expect(state.body.db).toMatchObject({ dialect: "sqlite", store_thread: false });
  });

  it("stops, exit code 1, when its store's thread stops", async () => {
    let thread: Thread | undefined;
    master = await startTestMaster({ env: { GAFFER_STORE_THREAD: "on" } }, { openStore: (params) => openStore({ ...params, onStoreThreadStarted: (t) => (thread = t) }) });
    const url = master.url;
    await thread?.terminate();
    await master.stopped;
    await eventually(async () => (await fetch(`${url}/health`).then(() => false, () => true)) || undefined, 10_000, "the master to stop listening");
    expect(process.exitCode).toBe(1);
  });
});
