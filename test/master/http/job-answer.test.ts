// A submit's answer with its payloads spliced in as their text: the same text JSON.stringify
// writes, and only where the payloads are long enough for that to be cheaper.
import { describe, expect, it } from "vitest";
import { claimAnswer } from "../../../master/http/claim-answer.js";
import { batchAnswer, jobAnswerJson, jobJson, SPLICE_FROM_CHARS } from "../../../master/http/job-answer.js";
import { jsonList, jsonListBytes, LONG_ANSWER_CHARS } from "../../../master/http/json-list.js";
import type { Job } from "../../../master/store/types.js";

function job(id: string, payload: unknown, tags: Record<string, string> = {}): Job {
  return {
    id, type: "spliced", payload, client_id: "client-a", priority: "medium", effective_priority: "medium", status: "pending",
    attempt: 0, retry_count: 0, max_retries: 3, node_id: null, timeout_s: 60, run_at: null, requires: [], depends_on: [],
    idempotency_key: null, tags, progress: null, progress_message: null, result: null, error: null, failure_reason: null,
    cancel_requested: false, created_at: "2026-12-07T00:00:00.000Z", updated_at: "2026-12-07T00:00:00.000Z", started_at: null, finished_at: null,
  };
}

const long = "y".repeat(2 * SPLICE_FROM_CHARS);

describe("a submit's answer", () => {
  it("writes a job with its payload's text where JSON.stringify writes the payload", () => {
    for (const payload of [null, 0, 'a\\","payload":0,"b', [1e21, -0.5], { mark: ',"payload":0,', nested: { payload: 0 } }, long]) {
      const made = job("j1", payload, { payload: "0" });
      expect(jobJson(made, JSON.stringify(payload))).toBe(JSON.stringify(made));
    }
  });

  it("splices one job's payload in only when it is long enough", () => {
    const small = job("j1", { n: 1 });
    expect(jobAnswerJson({ job: small, payloadJson: '{"n":1}' })).toBeUndefined();
    expect(jobAnswerJson({ job: small, payloadJson: undefined })).toBeUndefined();
    const big = job("j2", { pad: long });
    expect(jobAnswerJson({ job: big, payloadJson: JSON.stringify({ pad: long }) })).toBe(JSON.stringify(big));
  });

  it("writes a batch's answer as JSON.stringify's, its payloads spliced in when they are long on average", () => {
    const made = [job("j1", { pad: long }), job("j2", [long, "é, 雪, 😀"]), job("j3", null, { zone: "\u2028" })];
    const earlier = job("j0", { pad: long, earlier: true });
    const items = [...made.map((one) => ({ job: one, payloadJson: JSON.stringify(one.payload) })), { job: earlier, payloadJson: undefined }];
    // The spliced payloads' text is what is written: a marker in it shows they were spliced, not encoded again.
    const marked = items.map((item) => (item.payloadJson === undefined ? item : { ...item, payloadJson: item.payloadJson.replace("y", "Y") }));
    const spliced = batchAnswer(marked).toString();
    expect(spliced).not.toBe(JSON.stringify({ items: [...made, earlier] }));
    expect(spliced.replaceAll("Y", "y")).toBe(JSON.stringify({ items: [...made, earlier] }));
    expect(batchAnswer(items)).toBe(JSON.stringify({ items: [...made, earlier] }));
    // Short on average (the earlier job's payload counts as none): each job's JSON.stringify.
    const short = [...marked, { job: earlier, payloadJson: undefined }, { job: earlier, payloadJson: undefined }];
    expect(batchAnswer(short)).toBe(JSON.stringify({ items: [...made, earlier, earlier, earlier] }));
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
