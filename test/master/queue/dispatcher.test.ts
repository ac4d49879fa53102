// Long-poll claims wait for work and are woken by notify(), not by polling.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Dispatcher } from "../../../master/queue/dispatcher.js";
import { dialects, register, submit, type TestStore } from "../../helpers/store.js";
import { removeTempDirs } from "../../helpers/temp.js";

describe("dispatcher", () => {
  let t: TestStore;
  let dispatcher: Dispatcher;
  beforeEach(() => {
    const sqlite = dialects[0];
    if (!sqlite) throw new Error("no dialect");
    t = sqlite.open();
    dispatcher = new Dispatcher(t.store.jobs);
  });
  afterEach(async () => {
    dispatcher.close();
    await t.store.close();
    removeTempDirs();
  });

  it("answers at once when a job is ready", async () => {
    const job = await submit(t.store);
    const node = await register(t.store);
    const outcome = await dispatcher.claim({ nodeId: node.id, max: 1, waitMs: 10_000 });
    expect(outcome.ok && outcome.items.map((j) => j.id)).toEqual([job.id]);
  });

  it("waits, then answers within a tick of notify()", async () => {
    const node = await register(t.store);
    const waiting = dispatcher.claim({ nodeId: node.id, max: 1, waitMs: 10_000 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(dispatcher.waiting).toBe(1);
    const job = await submit(t.store);
    const started = performance.now();
    dispatcher.notify();
    const outcome = await waiting;
    expect(performance.now() - started).toBeLessThan(50);
    expect(outcome.ok && outcome.items.map((j) => j.id)).toEqual([job.id]);
    expect(dispatcher.waiting).toBe(0);
  });

  it("answers an empty list when the wait ends", async () => {
    const node = await register(t.store);
    const outcome = await dispatcher.claim({ nodeId: node.id, max: 1, waitMs: 30 });
    expect(outcome).toEqual({ ok: true, items: [] });
  });

  it("serves the longest-waiting node first", async () => {
    const first = await register(t.store, "first");
    const second = await register(t.store, "second");
    const a = dispatcher.claim({ nodeId: first.id, max: 1, waitMs: 10_000 });
    const b = dispatcher.claim({ nodeId: second.id, max: 1, waitMs: 200 });
    await new Promise((resolve) => setTimeout(resolve, 10));
    const job = await submit(t.store);
    dispatcher.notify();
    expect((await a).ok && ((await a) as { items: { id: string }[] }).items[0]?.id).toBe(job.id);
    expect(await b).toEqual({ ok: true, items: [] });
  });

  it("skips a waiter whose labels do not fit and wakes the one that fits", async () => {
    const cpu = await register(t.store, "cpu");
    const gpu = await register(t.store, "gpu", ["gpu"]);
    const onCpu = dispatcher.claim({ nodeId: cpu.id, max: 1, waitMs: 150 });
    const onGpu = dispatcher.claim({ nodeId: gpu.id, max: 1, waitMs: 10_000 });
    await new Promise((resolve) => setTimeout(resolve, 10));
    const job = await submit(t.store, { requires: ["gpu"] });
    dispatcher.notify();
    const gpuOutcome = await onGpu;
    expect(gpuOutcome.ok && gpuOutcome.items.map((j) => j.id)).toEqual([job.id]);
    expect(await onCpu).toEqual({ ok: true, items: [] });
  });

  it("stops waiting when the caller goes away, and on close", async () => {
    const node = await register(t.store);
    const abort = new AbortController();
    const aborted = dispatcher.claim({ nodeId: node.id, max: 1, waitMs: 10_000, signal: abort.signal });
    const closing = dispatcher.claim({ nodeId: node.id, max: 1, waitMs: 10_000 });
    await new Promise((resolve) => setTimeout(resolve, 10));
    abort.abort();
    expect(await aborted).toEqual({ ok: true, items: [] });
    dispatcher.close();
    expect(await closing).toEqual({ ok: true, items: [] });
  });
});
