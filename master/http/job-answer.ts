// A submit's answer. A job the submit made is written field by field from what the submit
// already holds: its payload as the text made from it for the store (SubmitJobParams.payloadJson:
// JSON.stringify of the parsed payload, the text JSON.stringify of the job would write there),
// and the fields the master itself made (ids, timestamps, status and priority words) as they
// are, with no escaping to look for. JSON.stringify of the whole job walks every field and
// escapes every string: in a batch of 1,000 that was the largest part of the answer's cost
// (bench/README.md, "8 December 2026, 01:30–02:40"). Any other job (one stored earlier under
// its idempotency key) is JSON.stringify's.
import type { Job } from "../store/types.js";
import { jsonList } from "./json-list.js";

/**
 * A job type that JSON writes as it is, quotes around it (the API's job types: 1–64 of
 * A-Z a-z 0-9 _ . : -). A job made with any other type is written by JSON.stringify.
 */
const PLAIN_TYPE = /^[A-Za-z0-9_.:-]+$/;

const text = JSON.stringify;
const orNull = (value: unknown): string => (value === null ? "null" : (JSON.stringify(value) as string));

/**
 * A job this submit made, as JSON.stringify writes it, with `payloadJson`, its payload's JSON
 * text, written where the payload goes. Written as they are, without JSON.stringify:
 * - `id`, `created_at` and `updated_at`, which the store made (hex digits and dashes; ISO
 *   timestamps from toISOString);
 * - `priority`, `effective_priority` and `status`, words of the API's own lists;
 * - `type`, when PLAIN_TYPE (else the whole job is JSON.stringify's, its payload encoded again);
 * - the numbers (finite: the schemas refuse NaN and Infinity, and a finite number's text is
 *   JSON.stringify's) and the flag.
 * Every other field goes through JSON.stringify as it would in the whole job. The fields and
 * their order are Job's (store/wire.ts jobOf). test/master/http/job-answer.test.ts holds this to
 * JSON.stringify for jobs made through jobOf, and test/master/http/values.test.ts for each store's
 * through HTTP (byte for byte GET's answer): a field added to Job fails both until added here.
 */
export function newJobJson(job: Job, payloadJson: string): string {
  if (!PLAIN_TYPE.test(job.type)) return JSON.stringify(job);
  return (
    `{"id":"${job.id}","type":"${job.type}","payload":${payloadJson},"client_id":${text(job.client_id)},` +
    `"priority":"${job.priority}","effective_priority":"${job.effective_priority}","status":"${job.status}",` +
    `"attempt":${job.attempt},"retry_count":${job.retry_count},"max_retries":${job.max_retries},` +
    `"node_id":${orNull(job.node_id)},"timeout_s":${job.timeout_s},"run_at":${orNull(job.run_at)},` +
    `"requires":${text(job.requires)},"depends_on":${text(job.depends_on)},"idempotency_key":${orNull(job.idempotency_key)},` +
    `"tags":${text(job.tags)},"progress":${orNull(job.progress)},"progress_message":${orNull(job.progress_message)},` +
    `"result":${text(job.result)},"error":${orNull(job.error)},"failure_reason":${orNull(job.failure_reason)},` +
    `"cancel_requested":${job.cancel_requested},"created_at":"${job.created_at}","updated_at":"${job.updated_at}",` +
    `"started_at":${orNull(job.started_at)},"finished_at":${orNull(job.finished_at)}}`
  );
}

/** A submit's answer item: the job, and its payload's JSON text where this submit made the job. */
export interface Answered {
  job: Job;
  payloadJson: string | undefined;
}

/** One answered job's JSON text. */
function answeredJson({ job, payloadJson }: Answered): string {
  return payloadJson === undefined ? JSON.stringify(job) : newJobJson(job, payloadJson);
}

/**
 * POST /jobs/batch's answer, `{"items": [Job…]}`: each job's JSON text (answeredJson), joined
 * as text when short and as UTF-8 bytes when long (json-list.ts).
 */
export function batchAnswer(items: readonly Answered[]): string | Buffer {
  const parts = new Array<string>(items.length);
  for (let index = 0; index < items.length; index++) parts[index] = answeredJson(items[index] as Answered);
  return jsonList('{"items":[', parts, "]}");
}
