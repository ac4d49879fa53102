// Expired access tokens are deleted (every 10 minutes), in batches.
import type { Logger } from "../log.js";
import type { Clock, Store } from "../store/types.js";
import { CronService } from "./cron-service.js";

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
    let deleted = 0;
    for (;;) {
      const batch = await this.store.tokens.deleteExpired({ before, limit: TOKEN_CLEANUP_BATCH });
      deleted += batch;
      if (batch < TOKEN_CLEANUP_BATCH) break;
    }
    if (deleted > 0) this.log.info({ event: "token.cleaned", tokens: deleted }, `deleted ${deleted} expired tokens`);
    return deleted;
  }
}
