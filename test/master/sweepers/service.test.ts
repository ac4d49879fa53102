// Sweeps run in batches and let requests in between them: the store is synchronous,
// so a sweep over a large backlog must never hold the event loop for its whole length.
import { describe, expect, it } from "vitest";
import { inBatches } from "../../../master/sweepers/service.js";

describe("inBatches", () => {
  it("runs batches until one comes back short, yielding to waiting callbacks between them", async () => {
    const order: string[] = [];
    let calls = 0;
    setImmediate(() => order.push("request"));
    const total = await inBatches(2, async () => {
      calls += 1;
      order.push(`batch ${calls}`);
      return calls < 3 ? 2 : 1;
    });
    expect(total).toBe(5);
    expect(order).toEqual(["batch 1", "request", "batch 2", "batch 3"]);
  });

  it("stops after one empty batch", async () => {
    let calls = 0;
    const total = await inBatches(10, async () => {
      calls += 1;
      return 0;
    });
    expect(total).toBe(0);
    expect(calls).toBe(1);
  });
});
