// Group commit of single submits on PostgreSQL. A client's submits all lock its row of
// client_job_counts until COMMIT, through the commit's WAL flush: one transaction each, they
// ran one after the other, one fsync each. Here the single
// submits that arrive in one tick, or while the previous group's transaction is in flight,
// share one transaction: one lock, one INSERT, one fsync for all of them. Each is still
// answered as if alone (submitRequests), and only once the group has committed.
import { UnstorableValueError, type SubmitOutcome } from "../../types.js";
import type { SubmitRequest } from "./submit.js";

/** A group's INSERT takes its rows as one JSON parameter: a bound like a batch's (API.md §5). */
export const MAX_GROUP = 1000;
/**
 * And a bound on that parameter's size, in characters of the payloads' JSON: a group is cut
 * before the submit that would pass it (one bigger than this is a group of its own).
 */
export const MAX_GROUP_PAYLOAD_CHARS = 16 * 1024 * 1024;

interface Waiting {
  request: SubmitRequest;
  /** Characters of its payloads' JSON. */
  size: number;
  resolve: (outcome: SubmitOutcome) => void;
  reject: (error: unknown) => void;
}

export interface SubmitGroupParams {
  /** The requests in one transaction, an outcome each, in order. */
  together(requests: SubmitRequest[]): Promise<SubmitOutcome[]>;
  /** Bounds of a group (tests make them small). */
  maxGroup?: number;
  maxGroupPayloadChars?: number;
}

const payloadChars = (request: SubmitRequest) => request.jobs.reduce((sum, job) => sum + job.payloadJson.length, 0);

export class SubmitGroup {
  private queue: Waiting[] = [];
  private running = false;
  private readonly maxGroup: number;
  private readonly maxChars: number;

  constructor(private readonly params: SubmitGroupParams) {
    this.maxGroup = params.maxGroup ?? MAX_GROUP;
    this.maxChars = params.maxGroupPayloadChars ?? MAX_GROUP_PAYLOAD_CHARS;
  }

  /** Settles once the transaction holding `request` has committed (or with the error that undid it). */
  add(request: SubmitRequest): Promise<SubmitOutcome> {
    return new Promise<SubmitOutcome>((resolve, reject) => {
      this.queue.push({ request, size: payloadChars(request), resolve, reject });
      if (this.running) return;
      this.running = true;
      // The rest of this tick's requests join the first.
      setImmediate(() => void this.run());
    });
  }

  /** One group at a time, in arrival order: those that arrive meanwhile make the next one. */
  private async run(): Promise<void> {
    while (this.queue.length > 0) await this.commit(this.queue.splice(0, this.nextGroupLength()));
    this.running = false;
  }

  /** How many of the queue's first requests fit in one group (at least one). */
  private nextGroupLength(): number {
    let chars = 0;
    let length = 0;
    for (const waiting of this.queue) {
      if (length === this.maxGroup || (length > 0 && chars + waiting.size > this.maxChars)) break;
      chars += waiting.size;
      length++;
    }
    return length;
  }

  /**
   * Only an error that one request's values cause (UnstorableValueError: the statement was
   * refused, the transaction undone before COMMIT) is tried again, by halves in order, so that
   * only that request fails and the others keep their order. Any other error (a connection lost,
   * perhaps while COMMIT was in flight; a timeout) leaves the group's fate unknown: every request
   * gets it, and none is run again (it might be stored twice).
   */
  private async commit(group: Waiting[]): Promise<void> {
    let outcomes: SubmitOutcome[];
    try {
      outcomes = await this.params.together(group.map((waiting) => waiting.request));
    } catch (error) {
      if (group.length > 1 && error instanceof UnstorableValueError) {
        const half = Math.ceil(group.length / 2);
        await this.commit(group.slice(0, half));
        await this.commit(group.slice(half));
      } else for (const waiting of group) waiting.reject(error);
      return;
    }
    group.forEach((waiting, i) => {
      const outcome = outcomes[i];
      if (outcome) waiting.resolve(outcome);
      else waiting.reject(new Error("a grouped submit was answered nothing"));
    });
  }
}
