// A full disk under a working cluster: the master turns read-only, refuses writes with
// 503, keeps reads, loses nothing it acknowledged, and recovers when space returns.
// The master runs in this process so the test can fill its database (max_page_count on
// the master's own connection); the workers are real processes.
import { afterEach, describe, expect, it } from "vitest";
import { createMaster, type MasterInternals } from "../../master/index.js";
import { sqliteStoreOpener } from "../helpers/store.js";
import { removeTempDirs } from "../helpers/temp.js";
import { Cluster } from "./cluster.js";
import { pino } from "pino";

let cluster: Cluster | undefined;
let master: MasterInternals | undefined;
afterEach(async () => {
  await cluster?.stopAll();
  await master?.close();
  master = undefined;
  removeTempDirs();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("disk full", () => {
  it("turns read-only, keeps reads and acknowledged jobs, and recovers when space returns", async () => {
    cluster = await Cluster.create();
    const opener = sqliteStoreOpener();
    master = await createMaster(
      {
      env: {},
      db: cluster.db,
      port: cluster.port,
      auth: "on",
      // Room for a loaded CI machine; the read-only spell below still outlasts it.
      nodeTimeoutS: 4,
      sweepIntervalS: 0.2,
      heartbeatIntervalS: 0.4,
      retryDelayS: 0.05,
      retryMaxDelayS: 0.2,
      logger: pino({ level: "silent" }),
      },
      { openStore: opener.open },
    );
    await cluster.startWorker("w1", { capacity: 10, minMs: 500, maxMs: 1500 });
    await cluster.startWorker("w2", { capacity: 10, minMs: 500, maxMs: 1500 });
    const acknowledged = await cluster.submit(40, { batch: 10 });
    await sleep(300);

    const sqlite = opener.database!.sqlite;
    sqlite.pragma(`max_page_count = ${Number(sqlite.pragma("page_count", { simple: true }))}`);
    // Keep submitting big jobs until the disk is full: every 201 counts as acknowledged.
    for (let i = 0; i < 500; i++) {
      const answer = await cluster.call<{ id: string }>("POST", "/api/v1/jobs", {
        type: "work",
        idempotency_key: `fill-${i}`,
        payload: { pad: "x".repeat(8000), i },
      });
      if (answer === undefined) {
        i -= 1; // no answer (a slow machine): ask again, the key makes it harmless
        continue;
      }
      if (answer.status === 201) acknowledged.push(answer.body.id);
      else {
        expect(answer?.status).toBe(503);
        break;
      }
    }
    const state = await cluster.call<{ mode: string; mode_reason: string }>("GET", "/api/v1/state");
    expect(state?.body).toMatchObject({ mode: "read_only", mode_reason: expect.stringMatching(/SQLITE_FULL/) });
    expect((await fetch(`${cluster.url}/ready`)).status).toBe(503);
    expect((await cluster.call("POST", "/api/v1/jobs", { type: "work" }))?.status).toBe(503);
    for (const id of acknowledged.slice(0, 20)) expect((await cluster.call("GET", `/api/v1/jobs/${id}`))?.status).toBe(200);

    // Read-only for longer than the node timeout: heartbeats and results are refused meanwhile.
    await sleep(5000);
    sqlite.pragma("max_page_count = 1073741823");
    expect((await cluster.call<{ mode: string }>("PUT", "/api/v1/state/mode", { mode: "normal" }))?.body.mode).toBe("normal");

    await cluster.waitAllCompleted(acknowledged, 90_000);
    const verdict = await cluster.verify(acknowledged);
    expect(verdict.integrity).toBe("ok");
    expect(verdict.notCompleted).toEqual([]);
    expect(verdict.completedTwice).toEqual([]);
    // Nodes got a node timeout's grace after the read-only spell: no live node was declared dead.
    expect(cluster.read<{ n: number }>("SELECT COUNT(*) AS n FROM audit_log WHERE event_type = 'node.dead'")[0]?.n).toBe(0);
    console.log(`[faults] disk full: ${acknowledged.length} acknowledged jobs, all completed once after space returned`);
  }, 180_000);
});
