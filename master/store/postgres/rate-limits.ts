// Rate limits shared by every master of a PostgreSQL cluster (API.md §12): rate-limiter-
// flexible's PostgreSQL store over the store's pool, in the rate_limits table (made by
// migration 0002, UNLOGGED: a counter is not worth a WAL flush, and a crash of the server
// only forgets the current windows). While the database cannot be reached, each master
// counts in its own memory (the insurance limiter): a limit never turns a request into a
// 500, and the request's own store call answers 503 as usual.
import { sql } from "kysely";
import { RateLimiterPostgres } from "rate-limiter-flexible";
import { memoryLimiter } from "../rate-limits.js";
import type { RateLimiter, RateLimitParams, RateLimitStore } from "../types.js";
import type { PostgresDatabase } from "./database.js";

const TABLE = "rate_limits";

export class PostgresRateLimitStore implements RateLimitStore {
  constructor(private readonly db: PostgresDatabase) {}

  limiter(params: RateLimitParams): RateLimiter {
    return new RateLimiterPostgres({
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
      insuranceLimiter: memoryLimiter(params),
    });
  }

  async deleteExpired(params: { before: Date; limit: number }): Promise<number> {
    const row = await this.db.one(sql<{ deleted: number }>`
      WITH gone AS (
        DELETE FROM rate_limits WHERE key IN (SELECT key FROM rate_limits WHERE expire < ${params.before.getTime()} LIMIT ${params.limit})
        RETURNING 1
      )
      SELECT count(*) AS deleted FROM gone`);
    return row?.deleted ?? 0;
  }
}
