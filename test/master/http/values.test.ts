// Values a store cannot keep as sent (a NUL, an unpaired surrogate, a number past 1e308) get the
// same answer whichever store is under the master: a client's are refused with a 400 naming the
// field; a worker's error texts, log tails and progress messages are cleaned, never refusing its batch.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MasterInternals } from "../../../master/index.js";
import { NUMBER_OUT_OF_RANGE, UNSTORABLE_TEXT } from "../../../master/http/storable.js";
import { http, startTestMaster, type HttpResult } from "../../helpers/master.js";
import { createTestDatabase, dropTestDatabase } from "../../helpers/postgres.js";
import { dialects } from "../../helpers/store.js";

interface Problem {
  code: string;
  detail: string;
  errors?: { path: string; message: string }[];
}

interface JobBody {
  id: string;
  status: string;
  payload: unknown;
  result: unknown;
  error: { message: string; code?: string } | null;
  progress_message: string | null;
  attempt: number;
}

/** A refusal of the request with a problem document naming `path`. */
function expectRefused(answer: HttpResult, path: string, message: string): void {
  expect(answer.status, JSON.stringify(answer.body)).toBe(400);
  expect(answer.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  const problem = answer.body as unknown as Problem;
  expect(problem.code).toBe("invalid_request");
  expect(problem.errors).toContainEqual({ path, message });
}

describe.each(dialects.map((dialect) => dialect.name))("values a store cannot keep (%s)", (name) => {
  let master: MasterInternals;
  let databaseUrl: string | undefined;
  const post = (path: string, body: unknown) => http(master.url, "POST", path, body);
  const get = <T>(path: string) => http<T>(master.url, "GET", path);
  const jobsOfType = async (type: string) => (await get<{ items: JobBody[] }>(`/api/v1/jobs?type=${type}`)).body.items;

  beforeAll(async () => {
    if (name === "postgres") databaseUrl = await createTestDatabase();
    master = await startTestMaster(databaseUrl === undefined ? {} : { databaseUrl });
  });

  afterAll(async () => {
    await master?.close();
    if (databaseUrl !== undefined) await dropTestDatabase(databaseUrl);
  });

  it("refuses a job whose payload holds a NUL, an unpaired surrogate or a number past 1e308, naming the payload, and stores nothing", async () => {
    const cases: [string, string][] = [
      ['{"type":"refused","payload":{"text":"nul\\u0000here"}}', UNSTORABLE_TEXT],
      ['{"type":"refused","payload":["lone \\ud800"]}', UNSTORABLE_TEXT],
      ['{"type":"refused","payload":{"\\udc00key":1}}', UNSTORABLE_TEXT],
      ['{"type":"refused","payload":{"n":1e400}}', NUMBER_OUT_OF_RANGE],
      ['{"type":"refused","payload":[null,{"n":-1e400}]}', NUMBER_OUT_OF_RANGE],
      ['{"type":"refused","payload":1e999}', NUMBER_OUT_OF_RANGE],
    ];
    for (const [body, message] of cases) {
      const answer = await post("/api/v1/jobs", body);
      expectRefused(answer, "payload", message);
      expect((answer.body as unknown as Problem).detail).toBe(`payload: ${message}`);
    }
    expect(await jobsOfType("refused")).toEqual([]);
  });

  it("refuses tags, idempotency keys and dependencies holding one, naming the field", async () => {
    expectRefused(await post("/api/v1/jobs", { type: "refused", tags: { k: "a\u0000" } }), "tags.k", UNSTORABLE_TEXT);
    expectRefused(await post("/api/v1/jobs", { type: "refused", tags: { k: "\udc00" } }), "tags.k", UNSTORABLE_TEXT);
    expectRefused(await post("/api/v1/jobs", { type: "refused", idempotency_key: "order-\ud800" }), "idempotency_key", UNSTORABLE_TEXT);
    expectRefused(await post("/api/v1/jobs", { type: "refused", idempotency_key: "\u0000" }), "idempotency_key", UNSTORABLE_TEXT);
    expectRefused(await post("/api/v1/jobs", { type: "refused", depends_on: ["job\u0000"] }), "depends_on.0", UNSTORABLE_TEXT);
    expect(await jobsOfType("refused")).toEqual([]);
  });

  it("names the item of a batch that holds one, and stores none of the batch", async () => {
    const good = { type: "refused", payload: { n: 1 } };
    expectRefused(await post("/api/v1/jobs/batch", { jobs: [good, { type: "refused", payload: { x: "\u0000" } }] }), "jobs.1.payload", UNSTORABLE_TEXT);
    expectRefused(await post("/api/v1/jobs/batch", { jobs: [good, good, { type: "refused", tags: { a: "\ud800" } }] }), "jobs.2.tags.a", UNSTORABLE_TEXT);
    expectRefused(await post("/api/v1/jobs/batch", '{"jobs":[{"type":"refused","payload":{"n":1e400}},{"type":"refused"}]}'), "jobs.0.payload", NUMBER_OUT_OF_RANGE);
    expect(await jobsOfType("refused")).toEqual([]);
  });

  it("keeps what every store keeps: paired surrogates, a backslash before a u, control characters, nulls, the largest numbers", async () => {
    const payload = { emoji: "😀", escaped: "\\u0000 \\ud800", control: "\u0001\u001f", nothing: null, big: 1.7976931348623157e308, small: 5e-324 };
    const answer = await http<JobBody>(master.url, "POST", "/api/v1/jobs", { type: "kept", payload, tags: { k: "😀" }, idempotency_key: "😀" });
    expect(answer.status).toBe(201);
    expect((await get<JobBody>(`/api/v1/jobs/${answer.body.id}`)).body.payload).toEqual(payload);
  });

  it("answers a submit with each payload as sent, written as its text: the job as JSON.stringify writes it, and as read back", async () => {
    const long = "x".repeat(300);
    const payloads: unknown[] = [
      { zeta: 1, alpha: { y: [2, { z: 1, a: 0 }] }, pad: long },
      { emoji: "😀", quote: 'say "hi"\\', line: "a\u2028b\n", escaped: "\\u0000", control: "\u0001", mark: ',"payload":0,', pad: long },
      [1.7976931348623157e308, 5e-324, -0.5, 1e21, 123456789012345680000, long],
      long,
      { short: 1 },
    ];
    const tags = { payload: "0", mark: ',"payload":0,' };
    // Scheduled far ahead: the worker's tests below claim whatever is pending.
    const later = "2099-01-01T00:00:00Z";
    const send = async (method: string, path: string, body?: unknown) => {
      const init: RequestInit = body === undefined ? { method } : { method, headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
      const response = await fetch(`${master.url}${path}`, init);
      return { status: response.status, text: await response.text() };
    };
    /** A job's text in a submit's answer: what JSON.stringify writes for it, byte for byte GET's answer, with the payload sent. */
    const expectWritten = async (text: string, payload: unknown) => {
      const job = JSON.parse(text) as JobBody;
      expect(text).toBe(JSON.stringify(job));
      expect(JSON.stringify(job.payload)).toBe(JSON.stringify(payload));
      expect(text).toBe((await send("GET", `/api/v1/jobs/${job.id}`)).text);
    };
    for (const payload of payloads) {
      const answer = await send("POST", "/api/v1/jobs", { type: "spliced", payload, tags, run_at: later });
      expect(answer.status).toBe(201);
      await expectWritten(answer.text, payload);
    }
    // A batch: new jobs, one repeated within it and one stored before under its key (job-answer.ts
    // writes the new ones from their fields, the earlier one with JSON.stringify).
    const before = await send("POST", "/api/v1/jobs", { type: "spliced", payload: { first: long }, idempotency_key: "spliced-before", run_at: later });
    expect(before.status).toBe(201);
    const jobs = [
      ...payloads.map((payload) => ({ type: "spliced", payload, tags, run_at: later })),
      { type: "spliced", payload: { later: long }, idempotency_key: "spliced-before", run_at: later },
      { type: "spliced", payload: { again: long }, idempotency_key: "spliced-twice", run_at: later },
      { type: "spliced", payload: { ignored: long }, idempotency_key: "spliced-twice", run_at: later },
    ];
    const batch = await send("POST", "/api/v1/jobs/batch", { jobs });
    expect(batch.status).toBe(201);
    const items = (JSON.parse(batch.text) as { items: JobBody[] }).items;
    expect(batch.text).toBe(JSON.stringify({ items }));
    const kept = [...payloads, { first: long }, { again: long }, { again: long }];
    for (const [index, job] of items.entries()) await expectWritten(JSON.stringify(job), kept[index]);
    expect(items[jobs.length - 3]?.id).toBe((JSON.parse(before.text) as JobBody).id);
    expect(items[jobs.length - 1]?.id).toBe(items[jobs.length - 2]?.id);
  });

  it("refuses a schedule whose job's payload, tags or name hold one, made or changed", async () => {
    const schedule = { name: "nightly", cron: "0 3 * * *", job: { type: "scheduled", payload: { n: 1 } } };
    expectRefused(await post("/api/v1/schedules", { ...schedule, job: { type: "scheduled", payload: "\u0000" } }), "job.payload", UNSTORABLE_TEXT);
    expectRefused(await post("/api/v1/schedules", { ...schedule, job: { type: "scheduled", tags: { k: "\ud800" } } }), "job.tags.k", UNSTORABLE_TEXT);
    expectRefused(await post("/api/v1/schedules", { ...schedule, name: "night\u0000ly" }), "name", UNSTORABLE_TEXT);
    expectRefused(await post("/api/v1/schedules", '{"name":"n","cron":"0 3 * * *","job":{"type":"scheduled","payload":[1e400]}}'), "job.payload", NUMBER_OUT_OF_RANGE);
    const made = await http<{ id: string; job: unknown }>(master.url, "POST", "/api/v1/schedules", schedule);
    expect(made.status).toBe(201);
    const patch = (body: unknown) => http(master.url, "PATCH", `/api/v1/schedules/${made.body.id}`, body);
    expectRefused(await patch({ job: { type: "scheduled", payload: { x: "\udc00" } } }), "job.payload", UNSTORABLE_TEXT);
    expectRefused(await patch('{"job":{"type":"scheduled","payload":{"x":-1e400}}}'), "job.payload", NUMBER_OUT_OF_RANGE);
    expect((await get<{ job: unknown }>(`/api/v1/schedules/${made.body.id}`)).body.job).toEqual(made.body.job);
  });

  it("refuses a node whose name, version or hardware holds one", async () => {
    expectRefused(await post("/api/v1/nodes", { name: "n\u0000" }), "name", UNSTORABLE_TEXT);
    expectRefused(await post("/api/v1/nodes", { name: "n", version: "1.\ud800" }), "version", UNSTORABLE_TEXT);
    expectRefused(await post("/api/v1/nodes", { name: "n", hardware: { cpu: "\u0000" } }), "hardware", UNSTORABLE_TEXT);
    expectRefused(await post("/api/v1/nodes", '{"name":"n","hardware":{"memory":1e400}}'), "hardware", NUMBER_OUT_OF_RANGE);
  });

  it("refuses a tag or hardware key __proto__ (a record would drop it), and keeps one in a payload", async () => {
    expectRefused(await post("/api/v1/jobs", '{"type":"refused","tags":{"__proto__":"x","k":"v"}}'), "tags", "__proto__ cannot be a key here");
    expectRefused(await post("/api/v1/nodes", '{"name":"n","hardware":{"__proto__":{"cpu":1}}}'), "hardware", "__proto__ cannot be a key here");
    expect(await jobsOfType("refused")).toEqual([]);
    const kept = await post("/api/v1/jobs", '{"type":"proto","payload":{"__proto__":{"a":1}}}');
    expect(kept.status).toBe(201);
    expect(JSON.stringify((await get<JobBody>(`/api/v1/jobs/${String(kept.body.id)}`)).body.payload)).toBe('{"__proto__":{"a":1}}');
  });

  it("answers an id or a filter no store could hold with 400, not with what the store makes of it", async () => {
    // PostgreSQL could not even look such a client up; SQLite found none.
    expectRefused(await post("/api/v1/auth/token", { client_id: "admin\u0000", client_secret: "x" }), "client_id", UNSTORABLE_TEXT);
    expect((await get("/api/v1/jobs/job%00id")).status).toBe(400);
    expect((await get("/api/v1/jobs?tag=k:%00")).status).toBe(400);
    expect((await get("/api/v1/audit?entity_id=%00")).status).toBe(400);
  });

  describe("a worker's reports", () => {
    let nodeId: string;
    /** `count` jobs of `type`, claimed by the node: their ids. */
    async function running(type: string, count: number): Promise<string[]> {
      for (let i = 0; i < count; i++) expect((await post("/api/v1/jobs", { type, max_retries: 0 })).status).toBe(201);
      const claimed = await http<{ items: { id: string; type: string }[] }>(master.url, "POST", `/api/v1/nodes/${nodeId}/claim`, { max: 10 });
      return claimed.body.items.filter((job) => job.type === type).map((job) => job.id);
    }

    beforeAll(async () => {
      nodeId = (await http<{ id: string }>(master.url, "POST", "/api/v1/nodes", { name: "reporter", capacity: 10 })).body.id;
    });

    it("hands the node each payload as the client sent it, in the claim's answer made from the text kept", async () => {
      const payloads: unknown[] = [
        { zeta: 1, alpha: { y: [2, { z: 1, a: 0 }] }, mid: "x" },
        { emoji: "😀", quote: 'say "hi"\\', line: "a\u2028b\n", escaped: "\\u0000", control: "\u0001" },
        [1.7976931348623157e308, 5e-324, -0.5, 1e21, 123456789012345680000],
        "just text",
        42,
        null,
        {},
      ];
      const sent: (JobBody & { created_at: string })[] = [];
      for (const payload of payloads) {
        const answer = await http<JobBody & { created_at: string }>(master.url, "POST", "/api/v1/jobs", { type: "payloads", payload, priority: "high" });
        expect(answer.status).toBe(201);
        sent.push(answer.body);
      }
      const claimed = await http<{ items: { id: string; type: string; payload: unknown; attempt: number; priority: string; timeout_s: number; created_at: string }[] }>(
        master.url,
        "POST",
        `/api/v1/nodes/${nodeId}/claim`,
        { max: 10 },
      );
      expect(claimed.status).toBe(200);
      const items = claimed.body.items.filter((job) => job.type === "payloads");
      expect(items.map((job) => job.id)).toEqual(sent.map((job) => job.id));
      items.forEach((job, index) => {
        expect(JSON.stringify(job.payload)).toBe(JSON.stringify(payloads[index]));
        const submitted = sent[index] as JobBody & { created_at: string };
        expect(job).toEqual({ id: submitted.id, type: "payloads", payload: payloads[index], attempt: 1, priority: "high", timeout_s: expect.any(Number), created_at: submitted.created_at });
        expect(Object.keys(job)).toEqual(["id", "type", "payload", "attempt", "priority", "timeout_s", "created_at"]);
      });
      for (const job of items) {
        const done = await post(`/api/v1/nodes/${nodeId}/results`, { results: [{ job_id: job.id, attempt: 1, status: "completed", result: null }] });
        expect(done.status).toBe(200);
      }
    });

    it("takes results whose error and log tail hold one, cleaned, with the rest of the batch; a job id no store holds is not found", async () => {
      const [failed, completed, tail] = await running("reported", 3);
      const results = [
        `{"job_id":"${failed}","attempt":1,"status":"failed","error":{"message":"bad\\u0000 \\ud800","code":"c\\udc00"},"log_tail":"a\\u0000b\\ud800"}`,
        `{"job_id":"${completed}","attempt":1,"status":"completed","result":{"n":1e400,"s":"nul\\u0000 \\ud800"}}`,
        `{"job_id":"${tail}","attempt":1,"status":"completed","result":null,"log_tail":"\\udc00end"}`,
        `{"job_id":"no\\u0000such","attempt":1,"status":"completed"}`,
      ];
      const answer = await post(`/api/v1/nodes/${nodeId}/results`, `{"results":[${results.join(",")}]}`);
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      expect(answer.body.items).toEqual([
        { job_id: failed, accepted: true },
        { job_id: completed, accepted: true },
        { job_id: tail, accepted: true },
        { job_id: "no\u0000such", accepted: false, reason: "not_found" },
      ]);
      const job = (id: string | undefined) => get<JobBody>(`/api/v1/jobs/${id}`).then((read) => read.body);
      const attempt = (id: string | undefined) => get<{ items: { log_tail: string | null; error: unknown }[] }>(`/api/v1/jobs/${id}/attempts`).then((read) => read.body.items[0]);
      expect(await job(failed)).toMatchObject({ status: "failed", error: { message: "bad \ufffd", code: "c\ufffd", retryable: true } });
      expect(await attempt(failed)).toMatchObject({ log_tail: "ab\ufffd", error: { message: "bad \ufffd", code: "c\ufffd" } });
      // A result is JSON every store keeps as sent; a number JSON cannot write is null, as JSON.stringify writes it.
      expect(await job(completed)).toMatchObject({ status: "completed", result: { n: null, s: "nul\u0000 \ud800" } });
      expect(await attempt(tail)).toMatchObject({ log_tail: "\ufffdend" });
    });

    it("takes an error of any length, keeping the first 65,536 characters of its message and 128 of its code, with the rest of its batch", async () => {
      const [long, other] = await running("long", 2);
      const answer = await post(`/api/v1/nodes/${nodeId}/results`, {
        results: [
          { job_id: long, attempt: 1, status: "failed", error: { message: `${"m".repeat(70_000)}end`, code: `${"c".repeat(200)}`, retryable: false } },
          { job_id: other, attempt: 1, status: "completed", result: 1 },
        ],
      });
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      expect(answer.body.items).toEqual([
        { job_id: long, accepted: true },
        { job_id: other, accepted: true },
      ]);
      const failed = (await get<JobBody>(`/api/v1/jobs/${long}`)).body;
      expect(failed.error).toEqual({ message: "m".repeat(65_536), code: "c".repeat(128), retryable: false });
    });

    it("takes a heartbeat whose progress is null (a handler's NaN, as JSON writes it) as one without progress", async () => {
      const [id] = await running("nan", 1);
      const answer = await post(`/api/v1/nodes/${nodeId}/heartbeat`, { running: [{ job_id: id, attempt: 1, progress: null, message: "still here" }] });
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      expect(answer.body.cancel).toEqual([]);
      expect((await get<JobBody>(`/api/v1/jobs/${id}`)).body.progress_message).toBe("still here");
    });

    it("takes a single failure whose error holds one, cleaned", async () => {
      const [id] = await running("single", 1);
      const answer = await http<JobBody>(master.url, "POST", `/api/v1/jobs/${id}/fail`, {
        node_id: nodeId,
        attempt: 1,
        error: { message: "\u0000boom\ud800", retryable: false },
        log_tail: "x\u0000",
      });
      expect(answer.status).toBe(200);
      expect(answer.body).toMatchObject({ status: "failed", error: { message: "boom\ufffd" } });
    });

    it("takes a heartbeat whose progress message holds one, cleaned, and tells the node to stop a job id no store holds", async () => {
      const [id] = await running("beating", 1);
      const answer = await post(`/api/v1/nodes/${nodeId}/heartbeat`, {
        running: [
          { job_id: id, attempt: 1, progress: 40, message: "half\u0000way\udc00" },
          { job_id: "gone\u0000", attempt: 2 },
        ],
      });
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      expect(answer.body.cancel).toEqual([{ job_id: "gone\u0000", attempt: 2, reason: "unknown" }]);
      expect((await get<JobBody>(`/api/v1/jobs/${id}`)).body.progress_message).toBe("halfway\ufffd");
    });
  });
});
