// A submit's answer: each job the submit made written from its fields with its payload's text,
// the same text JSON.stringify writes for the job; any other job as JSON.stringify writes it.
import { describe, expect, it } from "vitest";
import { claimAnswer } from "../../../master/http/claim-answer.js";
import { batchAnswer, newJobJson } from "../../../master/http/job-answer.js";
import { jsonList, jsonListBytes, LONG_ANSWER_CHARS } from "../../../master/http/json-list.js";
import type { Job } from "../../../master/store/types.js";
import { jobOf, type ParsedJobRow } from "../../../master/store/wire.js";

/** A job as the stores make one (jobOf: Job's fields in their order), `changes` over a new pending job's. */
function job(id: string, payload: unknown, changes: Partial<ParsedJobRow> = {}): Job {
  return jobOf({
    id, client_id: "client-a", type: "written", payload, priority: 2, effective_priority: 2, status: "pending", node_id: null,
    attempt: 0, retry_count: 0, max_retries: 3, timeout_s: 60, run_at: null, requires: [], depends_on: [], idempotency_key: null,
    tags: {}, progress: null, progress_message: null, result: null, error: null, failure_reason: null, cancel_requested: false,
    created_at: "2026-12-07T00:00:00.000Z", updated_at: "2026-12-07T00:00:00.000Z", started_at: null, finished_at: null,
    ...changes,
  });
}

const long = "y".repeat(300);

describe("a submit's answer", () => {
  it("writes a job it made as JSON.stringify writes the job, whatever its payload and its other fields hold", () => {
    const payloads = [null, 0, -0, 1e21, 'a\\","payload":0,"b', [1e21, -0.5, 5e-324], { mark: ',"payload":0,', nested: { payload: 0 } }, long, "é, 雪, 😀 \u2028"];
    const variants: Partial<ParsedJobRow>[] = [
      {},
      { tags: { payload: "0", quote: 'say "hi"\\', zone: "\u2028", emoji: "😀" }, idempotency_key: 'key "1" \\ é', client_id: 'client "b"' },
      { status: "blocked", depends_on: ["0193a-1", "0193a-2"], requires: ["gpu", "x86_64"], priority: 3, effective_priority: 3 },
      { status: "scheduled", run_at: "2099-01-01T00:00:00.000Z", max_retries: 0, timeout_s: 86_400 },
      { status: "failed", failure_reason: "dependency_failed", finished_at: "2026-12-07T00:00:01.000Z", priority: 0, effective_priority: 1 },
      { type: "a.b:c-d_E9", cancel_requested: true, progress: 0, progress_message: "", result: { r: [1] }, error: { message: "m", retryable: false } },
    ];
    for (const payload of payloads) {
      for (const changes of variants) {
        const made = job("0193a2b4-0c1d-7e2f-8a3b-4c5d6e7f8091", payload, changes);
        expect(newJobJson(made, JSON.stringify(payload))).toBe(JSON.stringify(made));
      }
    }
  });

  it("writes the payload's text it is given, not the payload encoded again", () => {
    const made = job("j1", { pad: long });
    expect(newJobJson(made, JSON.stringify({ pad: long.toUpperCase() }))).toBe(JSON.stringify({ ...made, payload: { pad: long.toUpperCase() } }));
  });

  it("leaves a job whose type JSON would escape to JSON.stringify", () => {
    for (const type of ['a"b', "a\\b", "é", "", "a\nb"]) {
      const made = job("j1", { n: 1 }, { type });
      expect(newJobJson(made, '{"n":1}')).toBe(JSON.stringify(made));
    }
  });

  it("writes a batch's answer as JSON.stringify's: the jobs it made with their payloads' text, the others encoded", () => {
    const made = [job("j1", { pad: long }), job("j2", [long, "é, 雪, 😀"]), job("j3", null, { tags: { zone: "\u2028" } })];
    const earlier = job("j0", { pad: long, earlier: true });
    const items = [...made.map((one) => ({ job: one, payloadJson: JSON.stringify(one.payload) })), { job: earlier, payloadJson: undefined }];
    expect(batchAnswer(items)).toBe(JSON.stringify({ items: [...made, earlier] }));
    // The made jobs' payload text is what is written: a marker in it shows it was not encoded again.
    const marked = items.map((item) => (item.payloadJson === undefined ? item : { ...item, payloadJson: item.payloadJson.replace("y", "Y") }));
    const written = batchAnswer(marked) as string;
    expect(written).not.toBe(JSON.stringify({ items: [...made, earlier] }));
    expect(written.replaceAll("Y", "y")).toBe(JSON.stringify({ items: [...made, earlier] }));
    expect(batchAnswer([])).toBe('{"items":[]}');
  });

  it("writes a long batch's answer as the UTF-8 bytes of JSON.stringify's", () => {
    const many = Array.from({ length: 60 }, (_, i) => job(`j${i}`, { n: i, text: "é, 雪, 😀 \u2028" }));
    const answer = batchAnswer(many.map((one) => ({ job: one, payloadJson: JSON.stringify(one.payload) })));
    expect(Buffer.isBuffer(answer)).toBe(true);
    expect(answer).toEqual(Buffer.from(JSON.stringify({ items: many })));
  });
});

describe("a claim's answer", () => {
  it("is text when short and UTF-8 bytes when long, the same JSON either way", () => {
    const taken = (n: number, payload: unknown) => ({
      id: `j${n}`, type: "resize", payloadJson: JSON.stringify(payload), attempt: 1, priority: "high" as const, timeout_s: 60, created_at: "2026-12-07T00:00:00.000Z",
    });
    const expected = (items: ReturnType<typeof taken>[]) =>
      JSON.stringify({ items: items.map(({ payloadJson, ...rest }) => ({ id: rest.id, type: rest.type, payload: JSON.parse(payloadJson) as unknown, attempt: rest.attempt, priority: rest.priority, timeout_s: rest.timeout_s, created_at: rest.created_at })) });
    const few = [taken(1, { n: 1 }), taken(2, "é, 雪, 😀")];
    expect(claimAnswer(few)).toBe(expected(few));
    const many = Array.from({ length: 100 }, (_, i) => taken(i, { pad: "é".repeat(200), i }));
    const answer = claimAnswer(many);
    expect(Buffer.isBuffer(answer)).toBe(true);
    expect(answer).toEqual(Buffer.from(expected(many)));
  });
});

describe("a JSON list", () => {
  it("joins JSON texts of every width as text up to LONG_ANSWER_CHARS, and as exactly their UTF-8 bytes past it", () => {
    const parts = ['"a"', '"é"', '"雪😀"', "1", '"\u2028"'];
    expect(jsonList("[", parts, "]")).toBe(`[${parts.join(",")}]`);
    expect(jsonListBytes("[", parts, "]")).toEqual(Buffer.from(`[${parts.join(",")}]`));
    expect(jsonListBytes("{\"x\":[", [], "]}").toString()).toBe('{"x":[]}');
    const exactly = [`"${"x".repeat(LONG_ANSWER_CHARS - 4)}"`];
    expect(typeof jsonList("[", exactly, "]")).toBe("string");
    const over = [`"${"x".repeat(LONG_ANSWER_CHARS - 3)}"`, '"雪"'];
    expect(jsonList("[", over, "]")).toEqual(Buffer.from(`[${over.join(",")}]`));
  });
});
