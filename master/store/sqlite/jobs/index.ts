// The SQLite JobStore: each verb is one function in this folder, run in one transaction.
import type {
  ActorParams,
  BulkActionOutcome,
  BulkActionParams,
  ClaimOutcome,
  Job,
  JobAttempt,
  JobEvent,
  JobActionOutcome,
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
import { sql } from "kysely";
import type { StoreContext } from "../context.js";
import { readQuery, type ThreadReader } from "../reader.js";
import { cancelJob, retryJob, setJobPriority } from "./actions.js";
import { cancelMatching, retryMatching } from "./bulk.js";
import type { WhyFacts } from "../../../queue/why.js";
import type { FairShareMode } from "../../../queue/fair-share.js";
import { listAttempts } from "./attempts.js";
import { whyFacts } from "./why.js";
import { claimJobs, prepareClaim, type ClaimStatements } from "./claim.js";
import { finalAmong, getJob, jobEvents, listJobs, queueStats } from "./read.js";
import { prepareReport, reportResults, type ReportStatements } from "./report.js";
import { prepareSubmit, submitJobs, type SubmitStatements } from "./submit.js";
import { ageJobs, expireLeases, promoteScheduled, rescueStalled } from "./timers.js";

export class SqliteJobStore implements JobStore {
  private readonly submitStatements: SubmitStatements;
  private readonly claimStatements: ClaimStatements;
  private readonly reportStatements: ReportStatements;

  constructor(
    private readonly ctx: StoreContext,
    /** Where long reads run, off the event loop (none: on the master's connection). */
    private readonly reader?: ThreadReader,
  ) {
    this.submitStatements = prepareSubmit(ctx);
    this.claimStatements = prepareClaim(ctx);
    this.reportStatements = prepareReport(ctx);
  }

  async submit(jobs: SubmitJobParams[], options: SubmitOptions = {}): Promise<SubmitOutcome> {
    return this.ctx.db.grouped(() => submitJobs(this.ctx, this.submitStatements, jobs, options));
  }

  /** submit, inside a caller's transaction (a schedule's tick). */
  submitNow(jobs: SubmitJobParams[], options: SubmitOptions = {}): SubmitOutcome {
    return submitJobs(this.ctx, this.submitStatements, jobs, options);
  }

  async get(id: string): Promise<Job | undefined> {
    return getJob(this.ctx, id);
  }

  async finalAmong(ids: readonly string[]): Promise<string[]> {
    return finalAmong(this.ctx, ids);
  }

  async list(params: ListJobsParams): Promise<Page<Job>> {
    return listJobs(this.ctx, params, this.reader);
  }

  async events(params: PageParams & { jobId: string }): Promise<Page<JobEvent>> {
    return jobEvents(this.ctx, params);
  }

  async whyFacts(jobId: string): Promise<Omit<WhyFacts, "paused"> | undefined> {
    return whyFacts(this.ctx, jobId);
  }

  async attempts(jobId: string): Promise<JobAttempt[]> {
    return listAttempts(this.ctx, jobId).map(({ reported: _reported, ...attempt }) => attempt);
  }

  async fairShare(): Promise<FairShareMode> {
    return this.ctx.fair.mode;
  }

  async setFairShare(mode: FairShareMode): Promise<{ from: FairShareMode }> {
    const { db, fair, clock, signal } = this.ctx;
    if (fair.mode === mode) return { from: mode };
    return db.transaction(() => {
      const from = fair.switchTo(mode, clock.now().toISOString());
      // Waiting claims take by the new order; the settings changed.
      signal.mark({ settings: true, claimable: true });
      return { from };
    });
  }

  async claim(params: { nodeId: string; max: number }): Promise<ClaimOutcome> {
    return this.ctx.db.grouped(() => claimJobs(this.ctx, this.claimStatements, params));
  }

  async claimEach(claims: { nodeId: string; max: number }[]): Promise<ClaimOutcome[]> {
    return this.ctx.db.grouped(() => {
      const emptied = new Set<number>();
      return claims.map((params) => claimJobs(this.ctx, this.claimStatements, params, emptied));
    });
  }

  async report(params: { nodeId: string; reports: JobReport[] }): Promise<ReportManyResult> {
    return this.ctx.db.grouped(() => reportResults(this.ctx, this.reportStatements, params));
  }

  async cancel(params: ActorParams): Promise<JobActionOutcome> {
    return this.ctx.db.grouped(() => cancelJob(this.ctx, params));
  }

  async retry(params: ActorParams): Promise<JobActionOutcome> {
    return this.ctx.db.grouped(() => retryJob(this.ctx, params));
  }

  async setPriority(params: ActorParams & { priority: PriorityName }): Promise<JobActionOutcome> {
    return this.ctx.db.grouped(() => setJobPriority(this.ctx, params));
  }

  async cancelMatching(params: BulkActionParams): Promise<BulkActionOutcome> {
    return this.ctx.db.grouped(() => cancelMatching(this.ctx, params));
  }

  async retryMatching(params: BulkActionParams): Promise<BulkActionOutcome> {
    return this.ctx.db.grouped(() => retryMatching(this.ctx, params));
  }

  async promoteScheduled(): Promise<{ promoted: number; nextAt: Date | null }> {
    return promoteScheduled(this.ctx, 1000);
  }

  async age(params: { limit: number }): Promise<number> {
    return ageJobs(this.ctx, params.limit);
  }

  async rescueStalled(params: { limit: number }): Promise<RescuedJob[]> {
    return rescueStalled(this.ctx, params.limit);
  }

  async expireLeases(params: { limit: number }): Promise<RescuedJob[]> {
    return expireLeases(this.ctx, params.limit);
  }

  async stats(): Promise<QueueStats> {
    return queueStats(this.ctx, this.reader);
  }

  async throughput(params: { since: Date }): Promise<{ minute: string; completed: number; failed: number }[]> {
    // Every job finished since then, one by one (a million an hour at 300 jobs/s): a long read.
    const query = sql<{ minute: string; completed: number; failed: number }>`
      SELECT substr(finished_at, 1, 16) || ':00.000Z' AS minute,
             sum(status = 'completed') AS completed,
             sum(status = 'failed') AS failed
      FROM jobs INDEXED BY jobs_finished
      WHERE finished_at IS NOT NULL AND finished_at >= ${params.since.toISOString()}
      GROUP BY substr(finished_at, 1, 16)
      ORDER BY minute`;
    const rows = await readQuery(this.ctx.db, this.reader, query.compile(this.ctx.db.kysely));
    return rows.map((row) => ({ minute: row.minute, completed: row.completed, failed: row.failed }));
  }

  async purgeFinished(params: { before: Date; limit: number }): Promise<number> {
    const { db } = this.ctx;
    // finished_at is set only in a final state (a retry clears it); the partial index holds exactly those.
    return db.transaction(
      () =>
        db.allSql<{ seq: number }>(sql`
          DELETE FROM jobs WHERE seq IN (
            SELECT seq FROM jobs INDEXED BY jobs_finished
            WHERE finished_at IS NOT NULL AND finished_at < ${params.before.toISOString()}
            ORDER BY finished_at LIMIT ${params.limit})
          RETURNING seq`).length,
    );
  }
}
