// Rate limits shared by every master of a PostgreSQL cluster (API.md §12), in the rate_limits
// table (made by migration 0002, UNLOGGED: a counter is not worth a WAL flush, and a crash of
// the server only forgets the current windows). Two ways to count together (RateLimitParams.sharing):
// - "synced" (the request limits, which every authenticated request passes): decided in this
//   master's memory at once, shared about once a second (synced-limits.ts, where its
//   approximation is said);
// - "exact" (the login limits): each point added in the database before the answer, by
//   rate-limiter-flexible's PostgreSQL store over the store's pool. Logins are rare, and they
//   guard passwords: a brute force spread over N masters must not get N times the attempts,
//   which a count shared only once a second would give it. The database gets
//   RATE_LIMIT_TIMEOUT_MS to answer (RLWrapperTimeouts); when it fails or is late (gone, slow,
//   cut off without a word, the table or a permission missing), the master counts in its own
//   memory instead and says so (onFallback).
// Either way a limit never turns a request into a 500 nor holds it up, and the request's own
// store call answers 503 as usual.
import { sql } from "kysely";
import { RateLimiterPostgres, RateLimiterRes, RLWrapperTimeouts } from "rate-limiter-flexible";
import { memoryLimiter } from "../rate-limits.js";
import type { RateLimiter, RateLimitParams, RateLimitStore } from "../types.js";
import type { PostgresDatabase } from "./database.js";
import { RATE_LIMIT_SYNC_MS, SyncedLimits } from "./synced-limits.js";

const TABLE = "rate_limits";

/** How long a login waits for the shared counter (or a sync may take) before it is counted in memory. */
export const RATE_LIMIT_TIMEOUT_MS = 250;

export interface PostgresRateLimitParams {
  /** A shared counter failed or was late: the master counted in its memory (called each time). */
  onFallback?: (error: unknown) => void;
  timeoutMs?: number;
  /** How often the synced limits are shared (default RATE_LIMIT_SYNC_MS; 0: only by syncLimits(), for tests). */
  syncIntervalMs?: number;
  /** The wall clock in milliseconds, for the synced limits (tests). */
  now?: () => number;
}

/** The shared limiter, late or failing → the memory one, reported. */
class SharedLimiter implements RateLimiter {
  constructor(
    private readonly shared: RLWrapperTimeouts,
    private readonly memory: RateLimiter,
    private readonly onFallback: (error: unknown) => void,
  ) {}

  private async either<T>(op: (limiter: RateLimiter) => Promise<T>): Promise<T> {
    try {
      return await op(this.shared);
    } catch (error) {
      // A refusal is an answer, not a failure.
      if (error instanceof RateLimiterRes) throw error;
      this.onFallback(error);
      return op(this.memory);
    }
  }

  consume(...args: Parameters<RateLimiter["consume"]>): Promise<RateLimiterRes> {
    return this.either((limiter) => limiter.consume(...args));
  }

  reward(...args: Parameters<RateLimiter["reward"]>): Promise<RateLimiterRes> {
    return this.either((limiter) => limiter.reward(...args));
  }

  delete(...args: Parameters<RateLimiter["delete"]>): Promise<boolean> {
    return this.either((limiter) => limiter.delete(...args));
  }
}

export class PostgresRateLimitStore implements RateLimitStore {
  private readonly onFallback: (error: unknown) => void;
  private readonly timeoutMs: number;
  private readonly synced: SyncedLimits;

  constructor(
    private readonly db: PostgresDatabase,
    params: PostgresRateLimitParams = {},
  ) {
    this.onFallback = params.onFallback ?? (() => undefined);
    this.timeoutMs = params.timeoutMs ?? RATE_LIMIT_TIMEOUT_MS;
    this.synced = new SyncedLimits(db, {
      syncIntervalMs: params.syncIntervalMs ?? RATE_LIMIT_SYNC_MS,
      // Late: well past its next turn, so that a sync slowed by a busy machine is not called a fallback.
      lateAfterMs: Math.max(this.timeoutMs, 2 * (params.syncIntervalMs ?? RATE_LIMIT_SYNC_MS)),
      onFallback: this.onFallback,
      now: params.now,
    });
  }

  limiter(params: RateLimitParams): RateLimiter {
    if (params.sharing === "synced") return this.synced.limiter(params);
    const shared = new RateLimiterPostgres({
      keyPrefix: params.keyPrefix,
      points: params.points,
      duration: params.durationS,
      storeClient: this.db.pool,
      storeType: "pool",
      // Unqualified: the pool's search_path is the store's schema.
      tableName: TABLE,
      tableCreated: true,
      // deleteExpired does it, on the master that runs the sweepers, not a timer per limiter.
      clearExpiredByTimeout: false,
      // A key past its limit is refused from memory until its window ends: a flood of
      // refused requests costs the database nothing.
      inMemoryBlockOnConsumed: params.points + 1,
    });
    // A late answer still lands in the table (the pool's query timeout bounds it); the request went on without it.
    const timed = new RLWrapperTimeouts({ limiter: shared, timeoutMs: this.timeoutMs });
    return new SharedLimiter(timed, memoryLimiter(params), this.onFallback);
  }

  /** Share the synced limits' counts now (what the timer does each interval). */
  syncLimits(): Promise<void> {
    return this.synced.sync();
  }

  /** Send the synced limits' last counts and stop sharing them (the store's close, before its pool ends). */
  close(): Promise<void> {
    return this.synced.close();
  }

  async deleteExpired(params: { before: Date; limit: number }): Promise<number> {
    // Rows locked in key order, as a sync locks them (it may start a new window in the same
    // rows): the two wait on each other rather than deadlock. A row a sync renewed meanwhile stays.
    const before = params.before.getTime();
    const row = await this.db.one(sql<{ deleted: number }>`
      WITH doomed AS (
        SELECT key FROM rate_limits WHERE expire < ${before} ORDER BY key LIMIT ${params.limit} FOR UPDATE
      ), gone AS (
        DELETE FROM rate_limits AS r USING doomed WHERE r.key = doomed.key AND r.expire < ${before}
        RETURNING 1
      )
      SELECT count(*) AS deleted FROM gone`);
    return row?.deleted ?? 0;
  }
}
