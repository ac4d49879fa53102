// /metrics (prom-client): one registry per master, so that masters in one process do not mix.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { JOB_STATUSES, NODE_STATUSES, PRIORITY_NAMES, type QueueStats } from "./store/types.js";

/** Wait and run times: 1 ms to about an hour. */
const DURATION_BUCKETS_S = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600];
const HTTP_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30];
/** One scrape reads the queue's counts once, not once per gauge. */
const STATS_MEMO_MS = 1000;
/** The label of every job type past the bound (API.md §8). */
export const OTHER_TYPE = "other";

/**
 * Job types are chosen by clients: the first `max` seen get their own series, every later
 * one counts under `type="other"`, so no client can grow the master's memory (or show its
 * types to every scraper) without bound. A type named "other" shares that series.
 */
export class TypeLabels {
  private readonly seen = new Set<string>();

  constructor(private readonly max: number) {}

  of(type: string): string {
    if (this.seen.has(type)) return type;
    if (this.seen.size >= this.max) return OTHER_TYPE;
    this.seen.add(type);
    return type;
  }
}

/** A series labelled by job type: the label goes through TypeLabels on the way in. */
export interface TypeCounter<L extends string> {
  inc(labels: Record<L | "type", string>, value?: number): void;
}
export interface TypeHistogram {
  observe(labels: { type: string }, value: number): void;
}

export interface MetricsParams {
  readQueueStats: () => Promise<QueueStats>;
  /** GAFFER_METRICS_MAX_TYPES */
  maxTypes: number;
}

export class Metrics {
  readonly registry = new Registry();
  readonly contentType = this.registry.contentType;

  readonly jobsSubmitted: TypeCounter<"priority">;
  readonly jobsCompleted: TypeCounter<"priority">;
  readonly jobsFailed: TypeCounter<"priority" | "reason">;
  readonly jobsRetried: TypeCounter<"priority">;
  readonly jobsReassigned: Counter<"reason">;
  readonly nodesDead: Counter;
  readonly jobWait: Histogram<"priority">;
  readonly jobRun: TypeHistogram;
  readonly httpDuration: Histogram<"method" | "route" | "status">;
  readonly tokensIssued: Counter;
  readonly invalidTokens: Counter<"reason">;
  readonly rateLimited: Counter<"kind">;
  readonly rateLimitFallbacks: Counter;

  private readonly types: TypeLabels;
  private statsAt = 0;
  private stats: Promise<QueueStats> | undefined;

  constructor({ readQueueStats, maxTypes }: MetricsParams) {
    const registers = [this.registry];
    this.types = new TypeLabels(maxTypes);
    collectDefaultMetrics({ register: this.registry, prefix: "gaffer_" });
    this.jobsSubmitted = this.byType(new Counter({ name: "gaffer_jobs_submitted_total", help: "Jobs submitted", labelNames: ["type", "priority"], registers }));
    this.jobsCompleted = this.byType(new Counter({ name: "gaffer_jobs_completed_total", help: "Jobs completed", labelNames: ["type", "priority"], registers }));
    this.jobsFailed = this.byType(
      new Counter({
        name: "gaffer_jobs_failed_total",
        help: "Jobs that ended failed, by failure_reason",
        labelNames: ["type", "priority", "reason"],
        registers,
      }),
    );
    this.jobsRetried = this.byType(
      new Counter({ name: "gaffer_jobs_retried_total", help: "Failed attempts scheduled for a retry", labelNames: ["type", "priority"], registers }),
    );
    this.jobsReassigned = new Counter({
      name: "gaffer_jobs_reassigned_total",
      help: "Running jobs taken back without their node's report (node_dead, stalled, lease_expired, node_left)",
      labelNames: ["reason"],
      registers,
    });
    this.nodesDead = new Counter({ name: "gaffer_nodes_dead_total", help: "Nodes declared dead", registers });
    this.jobWait = new Histogram({
      name: "gaffer_job_wait_seconds",
      help: "From ready (pending) to handed to a node",
      labelNames: ["priority"],
      buckets: DURATION_BUCKETS_S,
      registers,
    });
    const jobRun = new Histogram({
      name: "gaffer_job_run_seconds",
      help: "From handed to a node to its accepted result",
      labelNames: ["type"],
      buckets: DURATION_BUCKETS_S,
      registers,
    });
    this.jobRun = { observe: (labels, value) => jobRun.observe({ type: this.types.of(labels.type) }, value) };
    this.httpDuration = new Histogram({
      name: "gaffer_http_request_duration_seconds",
      help: "HTTP requests by route pattern",
      labelNames: ["method", "route", "status"],
      buckets: HTTP_BUCKETS_S,
      registers,
    });
    this.tokensIssued = new Counter({ name: "gaffer_tokens_issued_total", help: "Access tokens issued", registers });
    this.invalidTokens = new Counter({ name: "gaffer_invalid_tokens_total", help: "Requests refused for their token", labelNames: ["reason"], registers });
    this.rateLimited = new Counter({
      name: "gaffer_rate_limited_total",
      help: "Requests refused by a rate limit (requests, logins)",
      labelNames: ["kind"],
      registers,
    });

    this.rateLimitFallbacks = new Counter({
      name: "gaffer_rate_limit_fallbacks_total",
      help: "Rate-limit counts made in this master's memory because the shared counter (PostgreSQL) failed or was late",
      registers,
    });

    const stats = () => {
      const now = Date.now();
      if (!this.stats || now - this.statsAt > STATS_MEMO_MS) {
        this.statsAt = now;
        this.stats = readQueueStats();
      }
      return this.stats;
    };
    new Gauge({
      name: "gaffer_jobs",
      help: "Jobs by status",
      labelNames: ["status"],
      registers,
      async collect() {
        const current = await stats();
        for (const status of JOB_STATUSES) this.set({ status }, current.jobs[status]);
      },
    });
    new Gauge({
      name: "gaffer_jobs_pending",
      help: "Pending jobs by effective priority",
      labelNames: ["priority"],
      registers,
      async collect() {
        const current = await stats();
        for (const priority of PRIORITY_NAMES) this.set({ priority }, current.pending_by_priority[priority]);
      },
    });
    new Gauge({
      name: "gaffer_jobs_running",
      help: "Jobs running now",
      registers,
      async collect() {
        this.set((await stats()).jobs.running);
      },
    });
    new Gauge({
      name: "gaffer_oldest_pending_age_seconds",
      help: "How long the oldest pending job has waited",
      registers,
      async collect() {
        this.set((await stats()).oldest_pending_age_s ?? 0);
      },
    });
    new Gauge({
      name: "gaffer_nodes",
      help: "Nodes by status",
      labelNames: ["status"],
      registers,
      async collect() {
        const current = await stats();
        for (const status of NODE_STATUSES) this.set({ status }, current.nodes[status]);
      },
    });
  }

  private byType<L extends string>(counter: Counter<L | "type">): TypeCounter<L> {
    return { inc: (labels, value) => counter.inc({ ...labels, type: this.types.of(labels.type) }, value) };
  }

  async text(): Promise<string> {
    return this.registry.metrics();
  }
}
