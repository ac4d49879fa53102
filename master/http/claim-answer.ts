// A claim's answer as JSON text, apart from the routes so that the bench's model of a
// master (bench/store-thread.ts) makes it as the master does without loading Express.
import type { TakenJob } from "../store/types.js";
import { jsonList } from "./json-list.js";

/**
 * A claim's answer, `{"items": [ClaimedJob…]}` (API.md §6): each payload goes in as the text
 * kept since its submission (TakenJob), not parsed and encoded again; the other fields are
 * encoded here as JSON.stringify would (test/master/http/values.test.ts). As text when short,
 * as UTF-8 bytes when long (json-list.ts: a claim of 100 jobs with 1 KB payloads, say).
 */
export function claimAnswer(items: readonly TakenJob[]): string | Buffer {
  const parts = new Array<string>(items.length);
  for (let index = 0; index < items.length; index++) {
    const job = items[index] as TakenJob;
    parts[index] =
      `{"id":${JSON.stringify(job.id)},"type":${JSON.stringify(job.type)},"payload":${job.payloadJson},` +
      `"attempt":${JSON.stringify(job.attempt)},"priority":${JSON.stringify(job.priority)},` +
      `"timeout_s":${JSON.stringify(job.timeout_s)},"created_at":${JSON.stringify(job.created_at)}}`;
  }
  return jsonList('{"items":[', parts, "]}");
}
