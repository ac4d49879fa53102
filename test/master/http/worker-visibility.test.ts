// A worker sees of a job only what happened on its own nodes: another client's node's
// attempt (its log tail, its error) is not shown to it (API.md §3).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MasterInternals } from "../../../master/index.js";
import type { JobAttempt, JobEvent } from "../../../master/store/types.js";
import { http, signedIn, startTestMaster } from "../../helpers/master.js";
import { removeTempDirs } from "../../helpers/temp.js";

let master: MasterInternals;
let headers: Record<string, Record<string, string>> = {};
const as = <T = Record<string, unknown>>(who: string, method: string, path: string, body?: unknown) => http<T>(master.url, method, path, body, headers[who]);

beforeAll(async () => {
  master = await startTestMaster({ auth: "on", rateLimitPerMinute: 100_000, retryDelayS: 0 });
  headers = await signedIn(master, { admin: "admin", client: "client", workerA: "worker", workerB: "worker" });
});
afterAll(async () => {
  await master.close();
  removeTempDirs();
});

describe("a worker and another client's attempts", () => {
  it("shows a worker only its own nodes' attempts and events", async () => {
    const job = await as("client", "POST", "/api/v1/jobs", { type: "shared", requires: ["vis"], max_retries: 2 });
    const id = String(job.body.id);
    const nodeA = String((await as("workerA", "POST", "/api/v1/nodes", { name: "vis-a", labels: ["vis"], capacity: 1 })).body.id);
    await as("workerA", "POST", `/api/v1/nodes/${nodeA}/claim`, { max: 1 });
    await as("workerA", "POST", `/api/v1/jobs/${id}/fail`, { node_id: nodeA, attempt: 1, error: { message: "token=abc" }, log_tail: "A's secret output" });
    await as("workerA", "POST", `/api/v1/nodes/${nodeA}/deregister`);
    const nodeB = String((await as("workerB", "POST", "/api/v1/nodes", { name: "vis-b", labels: ["vis"], capacity: 1 })).body.id);
    const claimed = await as<{ items: { id: string }[] }>("workerB", "POST", `/api/v1/nodes/${nodeB}/claim`, { max: 1 });
    expect(claimed.body.items.map((item) => item.id)).toEqual([id]);

    const forB = await as<{ items: JobAttempt[] }>("workerB", "GET", `/api/v1/jobs/${id}/attempts`);
    expect(forB.body.items.map((attempt) => attempt.attempt)).toEqual([2]);
    expect(JSON.stringify(forB.body)).not.toContain("secret");
    const eventsForB = await as<{ items: JobEvent[] }>("workerB", "GET", `/api/v1/jobs/${id}/events`);
    expect(eventsForB.body.items.every((event) => event.node_id === nodeB)).toBe(true);
    expect(JSON.stringify(eventsForB.body)).not.toContain("token=abc");

    const forAdmin = await as<{ items: JobAttempt[] }>("admin", "GET", `/api/v1/jobs/${id}/attempts`);
    expect(forAdmin.body.items.map((attempt) => [attempt.attempt, attempt.log_tail])).toEqual([
      [1, "A's secret output"],
      [2, null],
    ]);
    const forOwner = await as<{ items: JobAttempt[] }>("client", "GET", `/api/v1/jobs/${id}/attempts`);
    expect(forOwner.body.items).toHaveLength(2);
  });
});
