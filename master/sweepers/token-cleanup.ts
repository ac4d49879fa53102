// Expired access tokens are deleted (every 10 minutes), in batches.
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
    return deleted;
  }
}
