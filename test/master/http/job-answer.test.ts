// A submit's answer with its payloads spliced in as their text: the same text JSON.stringify
// writes, and only where the payloads are long enough for that to be cheaper.
import { describe, expect, it } from "vitest";
import { batchAnswerJson, jobAnswerJson, jobJson, SPLICE_FROM_CHARS } from "../../../master/http/job-answer.js";
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

  it("splices a batch's in when its payloads are long on average, writing the jobs it did not make whole", () => {
    const made = [job("j1", { pad: long }), job("j2", [long]), job("j3", null)];
    const earlier = job("j0", { pad: long, earlier: true });
    const items = [...made.map((one) => ({ job: one, payloadJson: JSON.stringify(one.payload) })), { job: earlier, payloadJson: undefined }];
    expect(batchAnswerJson(items)).toBe(JSON.stringify({ items: [...made, earlier] }));
    // Short on average (the earlier job's payload counts as none): one JSON.stringify instead.
    expect(batchAnswerJson([...items, { job: earlier, payloadJson: undefined }, { job: earlier, payloadJson: undefined }])).toBeUndefined();
    expect(batchAnswerJson([])).toBeUndefined();
  });
});
