// The master's warnings about its threads come at most once a minute, per kind: a thread
// that stops right after one of its reads failed is still told.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { throttled } from "../../master/index.js";

describe("throttled", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("passes one call a period for each kind and drops the rest", () => {
    const told: string[] = [];
    const warn = throttled(60_000, (message: string, _kind: string) => told.push(message), (_message, kind) => kind);
    warn("read 1 failed", "read failed");
    warn("read 2 failed", "read failed");
    warn("the thread stopped", "stopped");
    expect(told).toEqual(["read 1 failed", "the thread stopped"]);
    vi.advanceTimersByTime(59_999);
    warn("read 3 failed", "read failed");
    vi.advanceTimersByTime(1);
    warn("read 4 failed", "read failed");
    expect(told).toEqual(["read 1 failed", "the thread stopped", "read 4 failed"]);
  });

  it("is one kind when no kind is given", () => {
    const told: string[] = [];
    const warn = throttled(1_000, (message: string) => told.push(message));
    warn("a");
    warn("b");
    vi.advanceTimersByTime(1_000);
    warn("c");
    expect(told).toEqual(["a", "c"]);
  });
});
