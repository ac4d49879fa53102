// Rate limits (rate-limiter-flexible): requests per client per minute, counted where the
// store keeps limits (Store.rateLimits: this master's memory on SQLite, the database shared
// by every master on PostgreSQL). Logins have their own, in login-limits.ts.
import { RateLimiterRes } from "rate-limiter-flexible";
import { memoryLimiter } from "../store/rate-limits.js";
import type { RateLimiter, RateLimitStore } from "../store/types.js";
import type { Principal } from "./principal.js";
import { RateLimitedError } from "./principal.js";

export interface RequestLimits {
  /** Role `client` (GAFFER_RATE_LIMIT_PER_MINUTE). */
  clientPerMinute: number;
  /** Roles `worker` and `admin` (GAFFER_WORKER_RATE_LIMIT_PER_MINUTE): heartbeats, claims and dashboards. */
  workerPerMinute: number;
}

function headers(limit: number, res: RateLimiterRes): Record<string, string> {
  return {
    "RateLimit-Limit": String(limit),
    "RateLimit-Remaining": String(Math.max(0, res.remainingPoints)),
    "RateLimit-Reset": String(Math.ceil(res.msBeforeNext / 1000)),
  };
}

/**
 * One request is one point, whatever it does: a long-poll claim that waits 30 s
 * costs the same as any other call.
 */
export class RequestRateLimiter {
  private readonly clients: RateLimiter;
  private readonly workers: RateLimiter;

  constructor(
    private readonly limits: RequestLimits,
    counters: RateLimitStore["limiter"] = memoryLimiter,
  ) {
    this.clients = counters({ keyPrefix: "client", points: limits.clientPerMinute, durationS: 60 });
    this.workers = counters({ keyPrefix: "worker", points: limits.workerPerMinute, durationS: 60 });
  }

  /** Count one request; answers the RateLimit headers, or throws RateLimitedError. */
  async consume(principal: Principal): Promise<Record<string, string>> {
    const isClient = principal.role === "client";
    const limiter = isClient ? this.clients : this.workers;
    const limit = isClient ? this.limits.clientPerMinute : this.limits.workerPerMinute;
    try {
      return headers(limit, await limiter.consume(principal.clientId));
    } catch (rejection) {
      if (!(rejection instanceof RateLimiterRes)) throw rejection;
      const retryAfterS = Math.max(1, Math.ceil(rejection.msBeforeNext / 1000));
      throw new RateLimitedError(`more than ${limit} requests a minute; try again in ${retryAfterS} s`, retryAfterS, headers(limit, rejection));
    }
  }
}
