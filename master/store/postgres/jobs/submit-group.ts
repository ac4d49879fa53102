// Group commit of single submits on PostgreSQL. A client's submits all lock its row of
// client_job_counts until COMMIT, through the commit's WAL flush: one transaction each, they
// ran one after the other, one fsync each (114 jobs/s at 32 connections). Here the single
// submits that arrive in one tick, or while the previous group's transaction is in flight,
// share one transaction: one lock, one INSERT, one fsync for all of them. Each is still
// answered as if alone (submitRequests), and only once the group has committed.
import type { SubmitOutcome } from "../../types.js";
import type { SubmitRequest } from "./submit.js";

/** A group's INSERT takes its rows as one JSON parameter: a bound like a batch's (API.md §5). */
export const MAX_GROUP = 1000;

interface Waiting {
  request: SubmitRequest;
  resolve: (outcome: SubmitOutcome) => void;
  reject: (error: unknown) => void;
}

export interface SubmitGroupParams {
  /** The requests in one transaction, an outcome each, in order. */
  together(requests: SubmitRequest[]): Promise<SubmitOutcome[]>;
  /** One request in a transaction of its own. */
  alone(request: SubmitRequest): Promise<SubmitOutcome>;
}

export class SubmitGroup {
  private queue: Waiting[] = [];
  private running = false;

  constructor(private readonly params: SubmitGroupParams) {}

  /** Settles once the transaction holding `request` has committed (or with the error that undid it). */
  add(request: SubmitRequest): Promise<SubmitOutcome> {
    return new Promise<SubmitOutcome>((resolve, reject) => {
      this.queue.push({ request, resolve, reject });
      if (this.running) return;
      this.running = true;
      // The rest of this tick's requests join the first.
      setImmediate(() => void this.run());
    });
  }

  /** One group at a time: those that arrive meanwhile make the next one. */
  private async run(): Promise<void> {
    while (this.queue.length > 0) await this.commit(this.queue.splice(0, MAX_GROUP));
    this.running = false;
  }

  private async commit(group: Waiting[]): Promise<void> {
    let outcomes: SubmitOutcome[];
    try {
      outcomes = await this.params.together(group.map((waiting) => waiting.request));
    } catch (error) {
      const [only] = group;
      if (group.length === 1 && only) return only.reject(error);
      // Undone as a whole (a value one of them cannot store, a lost connection): now each on
      // its own, so that only the ones that fail alone fail.
      await Promise.all(group.map((waiting) => this.params.alone(waiting.request).then(waiting.resolve, waiting.reject)));
      return;
    }
    group.forEach((waiting, i) => {
      const outcome = outcomes[i];
      if (outcome) waiting.resolve(outcome);
      else waiting.reject(new Error("a grouped submit was answered nothing"));
    });
  }
}
