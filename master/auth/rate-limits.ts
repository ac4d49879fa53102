// Rate limits (rate-limiter-flexible, in memory): requests per client per minute.
// Logins have their own, in login-limits.ts.
import { RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";
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
  private readonly clients: RateLimiterMemory;
  private readonly workers: RateLimiterMemory;

  constructor(private readonly limits: RequestLimits) {
    this.clients = new RateLimiterMemory({ keyPrefix: "client", points: limits.clientPerMinute, duration: 60 });
    this.workers = new RateLimiterMemory({ keyPrefix: "worker", points: limits.workerPerMinute, duration: 60 });
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
