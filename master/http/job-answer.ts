// A submit's answer, each new job's payload written as the text made from it for the store
// (SubmitJobParams.payloadJson: JSON.stringify of the parsed payload, the text JSON.stringify
// of the job would write there) rather than encoded a second time where payloads are long.
import type { Job } from "../store/types.js";
import { jsonList } from "./json-list.js";

/**
 * Payloads at least this long (JSON text, counted in UTF-16 units as `.length` does, on average
 * over the answer) are spliced in. Below it JSON.stringify of each job, payload and all, is
 * cheaper (bench/README.md, "21:05–22:10").
 */
export const SPLICE_FROM_CHARS = 128;

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

/** A submit's answer item: the job, and its payload's JSON text where this submit made the job. */
export interface Answered {
  job: Job;
  payloadJson: string | undefined;
}

/** Whether the answer's payloads are long enough to be spliced in rather than encoded again. */
function worthSplicing(items: readonly Answered[]): boolean {
  let chars = 0;
  for (const item of items) chars += item.payloadJson?.length ?? 0;
  return items.length > 0 && chars >= SPLICE_FROM_CHARS * items.length;
}

/** POST /jobs's answer, one job, as JSON text; undefined where JSON.stringify of the job is cheaper. */
export function jobAnswerJson(item: Answered): string | undefined {
  return item.payloadJson !== undefined && item.payloadJson.length >= SPLICE_FROM_CHARS ? jobJson(item.job, item.payloadJson) : undefined;
}

/**
 * POST /jobs/batch's answer, `{"items": [Job…]}`: each job's JSON text (its payload spliced in
 * where the answer's payloads are long on average), joined as text when short and as UTF-8
 * bytes when long (json-list.ts).
 */
export function batchAnswer(items: readonly Answered[]): string | Buffer {
  const splice = worthSplicing(items);
  const parts = new Array<string>(items.length);
  for (let index = 0; index < items.length; index++) {
    const { job, payloadJson } = items[index] as Answered;
    parts[index] = splice && payloadJson !== undefined ? jobJson(job, payloadJson) : JSON.stringify(job);
  }
  return jsonList('{"items":[', parts, "]}");
}
