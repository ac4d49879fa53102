// Backoff and the circuit breaker.
import { describe, expect, it } from "vitest";
import { backoffDelayMs, CircuitBreaker, CircuitOpenError } from "../../worker/resilience.js";

describe("backoff", () => {
  it("grows exponentially to its cap, with half of it random", () => {
    const params = { baseMs: 100, maxMs: 1000 };
    expect([1, 2, 3, 4, 5, 9].map((n) => backoffDelayMs(n, params, () => 1))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect([1, 2, 3].map((n) => backoffDelayMs(n, params, () => 0))).toEqual([50, 100, 200]);
  });
});

describe("circuit breaker", () => {
  it("opens after repeated failures, lets one probe through after a while, and closes on its success", () => {
    let now = 0;
    const states: string[] = [];
    const breaker = new CircuitBreaker({ failureThreshold: 3, openMs: 1000, now: () => now, onChange: (s) => states.push(s) });
    for (let i = 0; i < 3; i++) {
      breaker.check();
      breaker.failed();
    }
    expect(breaker.state).toBe("open");
    expect(() => breaker.check()).toThrow(CircuitOpenError);
    now = 1000;
    breaker.check(); // the probe
    expect(breaker.state).toBe("half_open");
    expect(() => breaker.check()).toThrow(CircuitOpenError); // only one probe at a time
    breaker.succeeded();
    expect(breaker.state).toBe("closed");
    breaker.check();
    expect(states).toEqual(["open", "half_open", "closed"]);
  });

  it("opens again at once when the probe fails", () => {
    let now = 0;
    const breaker = new CircuitBreaker({ failureThreshold: 2, openMs: 500, now: () => now });
    breaker.failed();
    breaker.failed();
    now = 600;
    breaker.check();
    breaker.failed();
    expect(breaker.state).toBe("open");
    expect(() => breaker.check()).toThrow(/trying again/);
  });

  it("forgets failures after a success", () => {
    const breaker = new CircuitBreaker({ failureThreshold: 2, openMs: 500 });
    breaker.failed();
    breaker.succeeded();
    breaker.failed();
    expect(breaker.state).toBe("closed");
  });

  it("ends the wait of a call held back while open as soon as another call closes the circuit", async () => {
    let now = 0;
    const breaker = new CircuitBreaker({ failureThreshold: 1, openMs: 60_000, now: () => now });
    breaker.failed();
    const held = breaker.wait(60_000).then(() => "woken");
    now = 60_000;
    breaker.check(); // a heartbeat's probe goes out and finds the master back
    breaker.succeeded();
    const timeout = new Promise((resolve) => setTimeout(() => resolve("still waiting"), 2000));
    expect(await Promise.race([held, timeout])).toBe("woken");
  });

  it("still ends the wait on the caller's signal", async () => {
    const breaker = new CircuitBreaker({ failureThreshold: 1, openMs: 60_000 });
    breaker.failed();
    const stop = new AbortController();
    const held = breaker.wait(60_000, stop.signal).then(() => "stopped");
    stop.abort();
    expect(await held).toBe("stopped");
  });
});
