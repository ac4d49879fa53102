// What a handler produces never jams its node: a result the master refuses as it is (nested past
// the body's 64 levels) fails its job, saying why, instead of being sent forever; an error code
// past 128 characters is cut; the results after it still arrive.
import { afterAll, beforeAll, expect, it } from "vitest";
import type { MasterInternals } from "../../master/index.js";
import type { Job } from "../../master/store/types.js";
import type { Worker } from "../../worker/index.js";
import { http, startTestMaster, startTestWorker } from "../helpers/master.js";
import { eventually } from "../helpers/processes.js";
import { removeTempDirs } from "../helpers/temp.js";

let master: MasterInternals;
let worker: Worker;

beforeAll(async () => {
  // Results batches of at most 256 KiB: a result bigger than that cannot be taken.
  master = await startTestMaster({ env: { GAFFER_MAX_BATCH_BYTES: String(256 * 1024) } });
  worker = await startTestWorker(master.url, { name: "refused", capacity: 4, handlers: {
      long: async () => {
        throw Object.assign(new Error("failed"), { code: `E_${"X".repeat(200)}`, retryable: false });
      },
      echo: async (job) => job.payload,
      huge: async () => "x".repeat(300 * 1024),
      deep: async () => {
        let value: unknown = 1;
        for (let i = 0; i < 70; i++) value = [value];
        return value;
      },
    } });
});

afterAll(async () => {
  await worker.stop();
  await master.close();
  removeTempDirs();
});

const submit = async (body: Record<string, unknown>) => (await http<Job>(master.url, "POST", "/api/v1/jobs", { max_retries: 0, ...body })).body.id;
const final = (id: string) =>
  eventually(async () => {
    const job = (await http<Job>(master.url, "GET", `/api/v1/jobs/${id}`)).body;
    return job.status === "completed" || job.status === "failed" ? job : undefined;
  }, 10_000, `job ${id} final`);

it("fails a job whose handler threw an error with a long code, its code cut to 128 characters", async () => {
  const job = await final(await submit({ type: "long" }));
  expect(job).toMatchObject({ status: "failed", error: { message: "failed", code: `E_${"X".repeat(126)}`, retryable: false } });
});

it("fails a job whose result the master refuses as it is, saying why; the results sent with it and after it arrive", async () => {
  const [deep, beside] = [await submit({ type: "deep" }), await submit({ type: "echo", payload: { n: 1 } })];
  expect(await final(deep)).toMatchObject({
    status: "failed",
    error: { code: "result_refused", message: expect.stringContaining("the master refused this job's result"), retryable: false },
  });
  expect(await final(beside)).toMatchObject({ status: "completed", result: { n: 1 } });
  expect(await final(await submit({ type: "echo", payload: 2 }))).toMatchObject({ status: "completed", result: 2 });
});

it("fails a job whose result is too big for the master even alone, saying why, instead of running it again", async () => {
  expect(await final(await submit({ type: "huge" }))).toMatchObject({
    status: "failed",
    attempt: 1,
    error: { code: "result_refused", message: expect.stringContaining("the master refused this job's result"), retryable: false },
  });
});
