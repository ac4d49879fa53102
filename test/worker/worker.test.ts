// The Worker class in-process against an in-process master (API.md §10).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MasterInternals } from "../../master/index.js";
import type { Job } from "../../master/store/types.js";
import type { Worker } from "../../worker/index.js";
import { http, startTestMaster, startTestWorker } from "../helpers/master.js";
import { eventually } from "../helpers/processes.js";
import { removeTempDirs } from "../helpers/temp.js";

let master: MasterInternals;
let worker: Worker;

beforeAll(async () => {
  master = await startTestMaster();
  worker = await startTestWorker(master.url, { name: "proto", capacity: 3, handlers: { echo: async (job) => job.payload } });
});
afterAll(async () => {
  await worker.stop();
  await master.close();
  removeTempDirs();
});

describe("handler lookup", () => {
  it("fails a job whose type is a property of every object (constructor, toString, __proto__) as having no handler", async () => {
    // The same node registered again without types is handed jobs of any type, as a master may.
    expect((await http(master.url, "POST", "/api/v1/nodes", { name: "proto", capacity: 3 })).status).toBe(200);
    const ids: string[] = [];
    for (const type of ["constructor", "toString", "__proto__"]) {
      const submitted = await http<Job>(master.url, "POST", "/api/v1/jobs", { type, max_retries: 0 });
      expect(submitted.status).toBe(201);
      ids.push(submitted.body.id);
    }
    for (const id of ids) {
      const job = await eventually(async () => {
        const current = (await http<Job>(master.url, "GET", `/api/v1/jobs/${id}`)).body;
        return current.status === "pending" || current.status === "running" ? undefined : current;
      }, 10_000, `job ${id}`);
      expect(job).toMatchObject({ status: "failed", error: { code: "no_handler", retryable: false } });
    }
  });
});
