// A submit's answer as JSON text, each new job's payload written as the text it was submitted
// as (SubmitJobParams.payloadJson, made once for the store) rather than encoded again.
import type { Job } from "../store/types.js";

/**
 * Payloads at least this long (as JSON text, on average over the answer) are spliced in.
 * Below it one JSON.stringify of the whole answer is cheaper: for a batch of 1,000, encoded and
 * made a Buffer, µs a job, JSON.stringify / spliced: 1.7 / 1.9 at 30 B, 2.5 / 2.1 at 256 B,
 * 5.2 / 3.0 at 1 KB, 17 / 7 at 4 KB.
 */
export const SPLICE_FROM_BYTES = 128;

/**
 * The copy's payload, as JSON writes it. In JSON text every `"` inside a string is escaped, so
 * `,"payload":0,` can only be a key and its value; the keys before `payload` (id, type) hold
 * strings, so the first one found is the job's own.
 */
const MARK = ',"payload":0,';
const VALUE_AT = MARK.length - 2;

/** A job's JSON text with `payloadJson`, the JSON text of its payload, in place of its payload. */
export function jobJson(job: Job, payloadJson: string): string {
  const text = JSON.stringify({ ...job, payload: 0 });
  const at = text.indexOf(MARK);
  if (at === -1) return JSON.stringify(job);
  return `${text.slice(0, at + VALUE_AT)}${payloadJson}${text.slice(at + VALUE_AT + 1)}`;
}

/** A submit's answer item: the job, and its payload's JSON text where this submit made it. */
export interface Answered {
  job: Job;
  payloadJson: string | undefined;
}

/** Whether the answer's payloads are long enough to be spliced in rather than encoded again. */
function worthSplicing(items: readonly Answered[]): boolean {
  let bytes = 0;
  for (const item of items) bytes += item.payloadJson?.length ?? 0;
  return items.length > 0 && bytes >= SPLICE_FROM_BYTES * items.length;
}

/** One job's answer (POST /jobs) as JSON text, or undefined where JSON.stringify of it is cheaper. */
export function submittedJobJson(item: Answered): string | undefined {
  return item.payloadJson !== undefined && worthSplicing([item]) ? jobJson(item.job, item.payloadJson) : undefined;
}

/** A batch's answer, `{"items": [Job…]}` (POST /jobs/batch), as JSON text, or undefined where JSON.stringify of it is cheaper. */
export function submittedJobsJson(items: readonly Answered[]): string | undefined {
  if (!worthSplicing(items)) return undefined;
  let text = '{"items":[';
  for (let index = 0; index < items.length; index++) {
    const { job, payloadJson } = items[index] as Answered;
    if (index > 0) text += ",";
    text += payloadJson === undefined ? JSON.stringify(job) : jobJson(job, payloadJson);
  }
  return `${text}]}`;
}
