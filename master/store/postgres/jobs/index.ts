// The PostgreSQL JobStore: each verb one function in this folder, run in one transaction
// (single submits: in the transaction of their group, submit-group.ts).
import { sql } from "kysely";
import type { FairShareMode } from "../../../queue/fair-share.js";
import type { WhyFacts } from "../../../queue/why.js";
import type {
  ActorParams,
  BulkActionOutcome,
  BulkActionParams,
  ClaimOutcome,
  Job,
  JobActionOutcome,
  JobAttempt,
  JobEvent,
  JobReport,
  JobStore,
  ListJobsParams,
  Page,
  PageParams,
  PriorityName,
  QueueStats,
  ReportManyResult,
  RescuedJob,
  SubmitJobParams,
  SubmitOptions,
  SubmitOutcome,
} from "../../types.js";
import type { PgContext } from "../context.js";
import { cancelJob, retryJob, setJobPriority } from "./actions.js";
import { cancelMatching, retryMatching } from "./bulk.js";
import { claimJobs } from "./claim.js";
import { finalAmong, getJob, jobEvents, listAttempts, listJobs, queueStats, throughput } from "./read.js";
import { reportResults } from "./report.js";
import { QuotaRace, submitJobs, submitRequests } from "./submit.js";
import { SubmitGroup } from "./submit-group.js";
import { ageJobs, expireLeases, promoteScheduled, rescueStalled } from "./timers.js";
import { whyFacts } from "./why.js";
import { readFairShareMode, switchFairShare } from "../fair-share.js";

export class PostgresJobStore implements JobStore {
  /** The claim of each node running now or queued last on this master (see claim). */
  private readonly claiming = new Map<string, Promise<unknown>>();

  /** Single submits, grouped into shared transactions (submit-group.ts). */
  private readonly singles: SubmitGroup;

  constructor(private readonly ctx: PgContext) {
    // The clients' counts last seen: a group whose clients are far from their limits locks
    // their counts only at its end; one that passed a limit so is undone and run again.
    const seen = new Map<string, number>();
    this.singles = new SubmitGroup({
      together: async (requests) => {
        try {
          return await this.ctx.db.transaction((tx) => submitRequests(this.ctx, tx, requests, { late: true, seen }));
        } catch (error) {
          if (!(error instanceof QuotaRace)) throw error;
          return this.ctx.db.transaction((tx) => submitRequests(this.ctx, tx, requests, { late: false, seen }));
        }
      },
    });
  }

  /** A batch in a transaction of its own; a single job in the group of its moment. */
  async submit(jobs: SubmitJobParams[], options: SubmitOptions = {}): Promise<SubmitOutcome> {
    if (jobs.length === 1 && options.batch !== true) return this.singles.add({ jobs, options });
    return this.ctx.db.transaction((tx) => submitJobs(this.ctx, tx, jobs, options));
  }

  async get(id: string): Promise<Job | undefined> {
    return getJob(this.ctx, id);
  }

  async finalAmong(ids: readonly string[]): Promise<string[]> {
    return finalAmong(this.ctx, ids);
  }

  async list(params: ListJobsParams): Promise<Page<Job>> {
    return listJobs(this.ctx, params);
  }

  async events(params: PageParams & { jobId: string }): Promise<Page<JobEvent>> {
    return jobEvents(this.ctx, params);
  }

  async attempts(jobId: string): Promise<JobAttempt[]> {
    return (await listAttempts(this.ctx, jobId)).map(({ reported: _reported, ...attempt }) => attempt);
  }

  async whyFacts(jobId: string): Promise<Omit<WhyFacts, "paused"> | undefined> {
    return whyFacts(this.ctx, jobId);
  }

  async fairShare(): Promise<FairShareMode> {
    return readFairShareMode(this.ctx.db.kysely);
  }

  async setFairShare(mode: FairShareMode): Promise<{ from: FairShareMode }> {
    const at = this.ctx.clock.now().toISOString();
    return { from: await this.ctx.db.transaction((tx) => switchFairShare(tx, mode, at)) };
  }

  /**
   * A node's claims take its row's lock, so they run one after the other whatever this master
   * does; here they wait their turn in the master rather than in PostgreSQL, each holding a
   * pooled connection (a worker keeps up to four claims in flight while there is a backlog:
   * two such workers held eight of the pool's ten connections, the results waited for one).
   */
  async claim(params: { nodeId: string; max: number }): Promise<ClaimOutcome> {
    const previous = this.claiming.get(params.nodeId);
    const run = (previous ?? Promise.resolve()).catch(() => undefined).then(() => this.ctx.db.transaction((tx) => claimJobs(this.ctx, tx, params)));
    this.claiming.set(params.nodeId, run);
    try {
      return await run;
    } finally {
      if (this.claiming.get(params.nodeId) === run) this.claiming.delete(params.nodeId);
    }
  }

  /** Each node's claim in its own transaction: a node's row lock is held only for its own claim. */
  async claimEach(claims: { nodeId: string; max: number }[]): Promise<ClaimOutcome[]> {
    const outcomes: ClaimOutcome[] = [];
    for (const params of claims) outcomes.push(await this.claim(params));
    return outcomes;
  }

  async report(params: { nodeId: string; reports: JobReport[] }): Promise<ReportManyResult> {
    return this.ctx.db.transaction((tx) => reportResults(this.ctx, tx, params));
  }

  async cancel(params: ActorParams): Promise<JobActionOutcome> {
    return this.ctx.db.transaction((tx) => cancelJob(this.ctx, tx, params));
  }

  async retry(params: ActorParams): Promise<JobActionOutcome> {
    return this.ctx.db.transaction((tx) => retryJob(this.ctx, tx, params));
  }

  async setPriority(params: ActorParams & { priority: PriorityName }): Promise<JobActionOutcome> {
    return this.ctx.db.transaction((tx) => setJobPriority(this.ctx, tx, params));
  }

  async cancelMatching(params: BulkActionParams): Promise<BulkActionOutcome> {
    return this.ctx.db.transaction((tx) => cancelMatching(this.ctx, tx, params));
  }

  async retryMatching(params: BulkActionParams): Promise<BulkActionOutcome> {
    return this.ctx.db.transaction((tx) => retryMatching(this.ctx, tx, params));
  }

  async promoteScheduled(): Promise<{ promoted: number; nextAt: Date | null }> {
    return this.ctx.db.transaction((tx) => promoteScheduled(this.ctx, tx, 1000));
  }

  async age(params: { limit: number }): Promise<number> {
    return this.ctx.db.transaction((tx) => ageJobs(this.ctx, tx, params.limit));
  }

  async rescueStalled(params: { limit: number }): Promise<RescuedJob[]> {
    return this.ctx.db.transaction((tx) => rescueStalled(this.ctx, tx, params.limit));
  }

  async expireLeases(params: { limit: number }): Promise<RescuedJob[]> {
    return this.ctx.db.transaction((tx) => expireLeases(this.ctx, tx, params.limit));
  }

  async stats(): Promise<QueueStats> {
    return queueStats(this.ctx);
  }

  async throughput(params: { since: Date }): Promise<{ minute: string; completed: number; failed: number }[]> {
    return throughput(this.ctx, params.since);
  }

  async purgeFinished(params: { before: Date; limit: number }): Promise<number> {
    const rows = await this.ctx.db.run(sql<{ seq: number }>`
      DELETE FROM jobs WHERE seq IN (
        SELECT seq FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ${params.before.toISOString()}
        ORDER BY finished_at LIMIT ${params.limit} FOR UPDATE SKIP LOCKED)
        -- Checked again on the row as it is when deleted: one retried meanwhile is not finished.
        AND finished_at IS NOT NULL AND finished_at < ${params.before.toISOString()}
      RETURNING seq`);
    return rows.length;
  }
}
