// Logins against brute force (API.md §4). Each attempt is counted before its secret is
// checked, and refunded when the secret was right, so a thousand bad logins at once are
// refused, not all checked. Counted per (client id, address), so that whoever knows a
// worker's id cannot lock that worker out from elsewhere, and per address; an IPv6
// address counts by its /64, which one host usually has whole. scrypt runs on libuv's
// thread pool, which the WAL's flush shares: only a few checks run at once, a few more
// wait, the rest are refused. The counts are kept where the store keeps limits: on
// PostgreSQL, every master's failures count together.
import { isIP } from "node:net";
import { RateLimiterRes } from "rate-limiter-flexible";
import { memoryLimiter } from "../store/rate-limits.js";
import type { RateLimiter, RateLimitStore } from "../store/types.js";
import { RateLimitedError } from "./principal.js";

export interface LoginLimits {
  /** Login attempts per client id from one address per window, failures only (successes are refunded). */
  perClientAddress: number;
  /** Login attempts per address per window, failures only. */
  perAddress: number;
  windowS: number;
}

export const DEFAULT_LOGIN_LIMITS: LoginLimits = { perClientAddress: 10, perAddress: 50, windowS: 900 };

/** Secret checks running at once: libuv's pool has 4 threads by default; the WAL's flush needs one. */
export const SECRET_CHECKS_AT_ONCE = 2;
/** Secret checks waiting for one of those; past this, a login gets 429 at once. */
export const SECRET_CHECKS_WAITING = 32;
const SECRET_CHECKS_RETRY_AFTER_S = 1;

/** The first 64 bits of an IPv6 address, written `a:b:c:d::/64`. */
function ipv6Prefix64(address: string): string {
  const [head = "", tail] = address.split("::");
  const headGroups = head === "" ? [] : head.split(":");
  let groups = headGroups;
  if (tail !== undefined) {
    const tailGroups = tail === "" ? [] : tail.split(":");
    // An IPv4 tail (`::ffff:1.2.3.4`, `64:ff9b::1.2.3.4`) fills two groups.
    const tailLength = tailGroups.reduce((sum, group) => sum + (group.includes(".") ? 2 : 1), 0);
    groups = [...headGroups, ...Array<string>(Math.max(0, 8 - headGroups.length - tailLength)).fill("0"), ...tailGroups];
  }
  return `${groups
    .slice(0, 4)
    .map((group) => Number.parseInt(group, 16).toString(16))
    .join(":")}::/64`;
}

/** What a login is counted under for its address: IPv4 as is (also when mapped into IPv6), IPv6 by its /64. */
export function addressKey(address: string): string {
  const bare = address.split("%")[0] ?? address;
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(bare);
  if (mapped?.[1]) return mapped[1];
  return isIP(bare) === 6 ? ipv6Prefix64(bare) : bare;
}

export class LoginLimiter {
  private readonly byClientAddress: RateLimiter;
  private readonly byAddress: RateLimiter;

  constructor(limits: LoginLimits = DEFAULT_LOGIN_LIMITS, counters: RateLimitStore["limiter"] = memoryLimiter) {
    this.byClientAddress = counters({ keyPrefix: "login-pair", points: limits.perClientAddress, durationS: limits.windowS });
    this.byAddress = counters({ keyPrefix: "login-address", points: limits.perAddress, durationS: limits.windowS });
  }

  /**
   * The pair's key is the address (which has no spaces) and the client id as a JSON string:
   * readable, unambiguous, and free of the NUL and lone surrogates PostgreSQL's text refuses.
   */
  private keys(clientId: string, address: string): { pair: string; address: string } {
    const from = addressKey(address);
    return { pair: `${from} ${JSON.stringify(clientId)}`, address: from };
  }

  /**
   * Count this attempt, before its secret is checked: throws RateLimitedError when the
   * address, or the client id from this address, has no attempts left. The address is
   * counted first and the pair only if the address passed: an address past its limit that
   * varies the client id adds no counter (a row on PostgreSQL) per request.
   */
  async attempt(clientId: string, address: string): Promise<void> {
    const keys = this.keys(clientId, address);
    await counted(this.byAddress.consume(keys.address));
    await counted(this.byClientAddress.consume(keys.pair));
  }

  /** The secret was right: the attempt is refunded, and this pair's failures are forgotten (not the address's). */
  async succeeded(clientId: string, address: string): Promise<void> {
    const keys = this.keys(clientId, address);
    await Promise.all([this.byClientAddress.delete(keys.pair), this.byAddress.reward(keys.address, 1)]);
  }

  /** The attempt was counted but its secret never checked (too many checks at once): refunded. */
  async refund(clientId: string, address: string): Promise<void> {
    const keys = this.keys(clientId, address);
    await Promise.all([this.byClientAddress.reward(keys.pair, 1), this.byAddress.reward(keys.address, 1)]);
  }
}

/** A limiter's refusal as RateLimitedError. */
async function counted(consumed: Promise<RateLimiterRes>): Promise<void> {
  try {
    await consumed;
  } catch (rejection) {
    if (!(rejection instanceof RateLimiterRes)) throw rejection;
    const retryAfterS = Math.max(1, Math.ceil(rejection.msBeforeNext / 1000));
    throw new RateLimitedError(`too many failed logins; try again in ${retryAfterS} s`, retryAfterS);
  }
}

/** At most `running` secret checks at once and `waiting` in line; past that, RateLimitedError at once. */
export class SecretCheckSlots {
  private active = 0;
  private readonly line: (() => void)[] = [];

  constructor(
    private readonly running = SECRET_CHECKS_AT_ONCE,
    private readonly waiting = SECRET_CHECKS_WAITING,
  ) {}

  async run<T>(check: () => Promise<T>): Promise<T> {
    if (this.active >= this.running) {
      if (this.line.length >= this.waiting) {
        throw new RateLimitedError(`too many logins at once; try again in ${SECRET_CHECKS_RETRY_AFTER_S} s`, SECRET_CHECKS_RETRY_AFTER_S);
      }
      // The slot is handed over by the check that ends: `active` stays counted.
      await new Promise<void>((resolve) => this.line.push(resolve));
    } else {
      this.active += 1;
    }
    try {
      return await check();
    } finally {
      const next = this.line.shift();
      if (next) next();
      else this.active -= 1;
    }
  }
}
