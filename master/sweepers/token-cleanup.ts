// Expired access tokens are deleted (every 10 minutes), in batches, and so are the rate
// limits' counters whose window ended (those the store keeps in the database).
import type { Logger } from "../log.js";
import type { Clock, Store } from "../store/types.js";
import { CronService } from "./cron-service.js";
import { inBatches } from "./service.js";

export const TOKEN_CLEANUP_SCHEDULE = "*/10 * * * *";
export const TOKEN_CLEANUP_BATCH = 1000;

export class TokenCleanup extends CronService<number> {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    log: Logger,
  ) {
    super("token_cleanup", TOKEN_CLEANUP_SCHEDULE, log);
  }

  async runOnce(): Promise<number> {
    const before = this.clock.now();
    const deleted = await inBatches(TOKEN_CLEANUP_BATCH, () => this.store.tokens.deleteExpired({ before, limit: TOKEN_CLEANUP_BATCH }));
    if (deleted > 0) this.log.info({ event: "token.cleaned", tokens: deleted }, `deleted ${deleted} expired tokens`);
    // The limiters' windows run on the wall clock (rate-limiter-flexible reads Date.now()).
    const now = new Date();
    await inBatches(TOKEN_CLEANUP_BATCH, () => this.store.rateLimits.deleteExpired({ before: now, limit: TOKEN_CLEANUP_BATCH }));
    return deleted;
  }
}
