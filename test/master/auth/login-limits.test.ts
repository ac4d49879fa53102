// Logins are counted before the secret is checked, per (client id, address) and per address,
// IPv6 by /64; secret checks run a few at a time.
import { describe, expect, it } from "vitest";
import { addressKey, LoginLimiter, SecretCheckSlots } from "../../../master/auth/login-limits.js";
import { RateLimitedError } from "../../../master/auth/principal.js";

const settle = (promises: Promise<unknown>[]) =>
  Promise.allSettled(promises).then((results) => results.map((result) => (result.status === "fulfilled" ? "ok" : result.reason instanceof RateLimitedError ? 429 : "error")));

describe("addressKey", () => {
  it("keeps IPv4 addresses, unmaps IPv4-mapped IPv6, and keys IPv6 by its /64", () => {
    expect(addressKey("203.0.113.7")).toBe("203.0.113.7");
    expect(addressKey("::ffff:203.0.113.7")).toBe("203.0.113.7");
    expect(addressKey("2001:db8:aa:bb:1:2:3:4")).toBe("2001:db8:aa:bb::/64");
    expect(addressKey("2001:db8:aa:bb::99")).toBe("2001:db8:aa:bb::/64");
    expect(addressKey("2001:0db8:00aa:00bb:ffff::1")).toBe("2001:db8:aa:bb::/64");
    expect(addressKey("2001:db8::1")).toBe("2001:db8:0:0::/64");
    expect(addressKey("::1")).toBe("0:0:0:0::/64");
    expect(addressKey("fe80::1%eth0")).toBe("fe80:0:0:0::/64");
    expect(addressKey("unknown")).toBe("unknown");
  });
});

describe("LoginLimiter", () => {
  it("counts attempts before any check: of 30 at once for one client id, 10 pass", async () => {
    const limiter = new LoginLimiter();
    const outcomes = await settle(Array.from({ length: 30 }, () => limiter.attempt("worker-1", "203.0.113.7")));
    expect(outcomes.filter((o) => o === "ok")).toHaveLength(10);
    expect(outcomes.filter((o) => o === 429)).toHaveLength(20);
  });

  it("refunds a good login, so successes never lock anyone out", async () => {
    const limiter = new LoginLimiter({ perClientAddress: 2, perAddress: 3, windowS: 60 });
    for (let i = 0; i < 20; i++) {
      await limiter.attempt("worker-1", "203.0.113.7");
      await limiter.succeeded("worker-1", "203.0.113.7");
    }
    await expect(limiter.attempt("worker-1", "203.0.113.7")).resolves.toBeUndefined();
  });

  it("locks out a client id only from the address that failed, and an address whatever the client ids", async () => {
    const limiter = new LoginLimiter({ perClientAddress: 2, perAddress: 5, windowS: 60 });
    await limiter.attempt("worker-1", "203.0.113.66");
    await limiter.attempt("worker-1", "203.0.113.66");
    await expect(limiter.attempt("worker-1", "203.0.113.66")).rejects.toBeInstanceOf(RateLimitedError);
    // The worker itself, elsewhere, still logs in.
    await expect(limiter.attempt("worker-1", "198.51.100.2")).resolves.toBeUndefined();
    // The guessing address spends its own budget on any client id.
    await limiter.attempt("worker-2", "203.0.113.66");
    await limiter.attempt("worker-3", "203.0.113.66");
    await expect(limiter.attempt("worker-4", "203.0.113.66")).rejects.toBeInstanceOf(RateLimitedError);
  });

  it("counts one IPv6 /64 as one address", async () => {
    const limiter = new LoginLimiter({ perClientAddress: 100, perAddress: 3, windowS: 60 });
    for (let i = 1; i <= 3; i++) await limiter.attempt(`c-${i}`, `2001:db8:1:2::${i}`);
    await expect(limiter.attempt("c-9", "2001:db8:1:2:ffff::9")).rejects.toBeInstanceOf(RateLimitedError);
    await expect(limiter.attempt("c-9", "2001:db8:1:3::9")).resolves.toBeUndefined();
  });
});

describe("SecretCheckSlots", () => {
  it("runs at most `running` checks at once, queues `waiting` more, refuses the rest at once", async () => {
    const slots = new SecretCheckSlots(2, 3);
    let active = 0;
    let most = 0;
    const releases: (() => void)[] = [];
    const check = () =>
      new Promise<boolean>((resolve) => {
        active += 1;
        most = Math.max(most, active);
        releases.push(() => {
          active -= 1;
          resolve(true);
        });
      });
    const runs = Array.from({ length: 8 }, () => slots.run(check));
    const refused = await settle(runs.slice(5));
    expect(refused).toEqual([429, 429, 429]);
    while (releases.length > 0 || active > 0) {
      releases.shift()?.();
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(await settle(runs.slice(0, 5))).toEqual(["ok", "ok", "ok", "ok", "ok"]);
    expect(most).toBe(2);
  });
});
