// Retry backoff: GAFFER_RETRY_DELAY_S × 2^(n−1), capped, ±20 % jitter.
import { describe, expect, it } from "vitest";
import { retryDelayMs } from "../../../master/queue/policy.js";

const params = { retryDelayS: 5, retryMaxDelayS: 300 };

describe("retry backoff", () => {
  it("doubles from the base delay with no jitter at the middle of the range", () => {
    expect([1, 2, 3, 4].map((n) => retryDelayMs(n, params, () => 0.5))).toEqual([5000, 10_000, 20_000, 40_000]);
  });

  it("stops growing at the cap", () => {
    expect(retryDelayMs(20, params, () => 0.5)).toBe(300_000);
  });

  it("varies by at most 20 % either way", () => {
    expect(retryDelayMs(1, params, () => 0)).toBe(4000);
    expect(retryDelayMs(1, params, () => 0.999_999)).toBe(6000);
    for (let i = 0; i < 1000; i++) {
      const delay = retryDelayMs(3, params);
      expect(delay).toBeGreaterThanOrEqual(16_000);
      expect(delay).toBeLessThanOrEqual(24_000);
    }
  });
});
