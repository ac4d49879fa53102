// Rate limits (rate-limiter-flexible, in memory): requests per client per minute,
// and failed logins per client id and per address against brute force.
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

export interface LoginLimits {
  /** Failed logins per client id per window. */
  perClient: number;
  /** Failed logins per address per window. */
  perAddress: number;
  windowS: number;
}

export const DEFAULT_LOGIN_LIMITS: LoginLimits = { perClient: 10, perAddress: 50, windowS: 900 };

export class LoginLimiter {
  private readonly byClient: RateLimiterMemory;
  private readonly byAddress: RateLimiterMemory;

  constructor(limits: LoginLimits = DEFAULT_LOGIN_LIMITS) {
    this.byClient = new RateLimiterMemory({ keyPrefix: "login-client", points: limits.perClient, duration: limits.windowS });
    this.byAddress = new RateLimiterMemory({ keyPrefix: "login-address", points: limits.perAddress, duration: limits.windowS });
  }

  /** Throws RateLimitedError while either the client id or the address is locked out. */
  async assertAllowed(clientId: string, address: string): Promise<void> {
    const [client, from] = await Promise.all([this.byClient.get(clientId), this.byAddress.get(address)]);
    const blocked = [client, from].filter((res): res is RateLimiterRes => res !== null && res.remainingPoints <= 0);
    if (blocked.length === 0) return;
    const retryAfterS = Math.max(1, Math.ceil(Math.max(...blocked.map((res) => res.msBeforeNext)) / 1000));
    throw new RateLimitedError(`too many failed logins; try again in ${retryAfterS} s`, retryAfterS);
  }

  async failed(clientId: string, address: string): Promise<void> {
    await Promise.all([
      this.byClient.consume(clientId).catch(() => undefined),
      this.byAddress.consume(address).catch(() => undefined),
    ]);
  }

  /** A good login clears the client id's failures (not the address's). */
  async succeeded(clientId: string): Promise<void> {
    await this.byClient.delete(clientId);
  }
}
