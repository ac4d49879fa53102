// Long-poll claims wait for work and are woken by notify(), not by polling.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Dispatcher, type DispatchOutcome } from "../../../master/queue/dispatcher.js";
import { heldFlushes, turn } from "../../helpers/flushes.js";
import { claim, dialects, jobParams, register, submit, type TestStore } from "../../helpers/store.js";
import { removeTempDirs } from "../../helpers/temp.js";

describe("dispatcher", () => {
  let t: TestStore;
  let dispatcher: Dispatcher;
  const flushes = heldFlushes(false);
  beforeEach(async () => {
    const sqlite = dialects[0];
    if (!sqlite) throw new Error("no dialect");
    // Group commits flushed with an fdatasync the tests can hold (and see).
    t = await sqlite.open({ fdatasync: flushes.fdatasync });
    dispatcher = new Dispatcher({ jobs: t.store.jobs, nodes: t.store.nodes });
  });
  afterEach(async () => {
    flushes.releaseAll();
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

  it("waits, then answers on notify(), not at the end of its wait", async () => {
    const node = await register(t.store);
    const waiting = dispatcher.claim({ nodeId: node.id, max: 1, waitMs: 10_000 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(dispatcher.waiting).toBe(1);
    const job = await submit(t.store);
    const started = performance.now();
    dispatcher.notify();
    const outcome = await waiting;
    // Far under the 10 s wait; wide, as the suite's other files share the machine's 2 cores.
    expect(performance.now() - started).toBeLessThan(1000);
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

  /** Waits (a few turns at most) for `outcome`'s claim to settle; undefined if it did not. */
  async function settled(outcome: Promise<DispatchOutcome>): Promise<DispatchOutcome | undefined> {
    let value: DispatchOutcome | undefined;
    void outcome.then((v) => (value = v));
    for (let i = 0; i < 20 && value === undefined; i++) await turn();
    return value;
  }

  // notify() right after a write is queued: the waiting claims join that write's group commit.
  it("hands a waiting claim a job in the submission's own commit: one flush for both", async () => {
    const node = await register(t.store);
    const waiting = dispatcher.claim({ nodeId: node.id, max: 1, waitMs: 10_000 });
    await turn();
    expect(dispatcher.waiting).toBe(1);
    flushes.hold(true);
    const submitted = t.store.jobs.submit([jobParams()]);
    dispatcher.notify();
    for (let i = 0; i < 10 && flushes.calls.length === 0; i++) await turn();
    expect(flushes.calls).toHaveLength(1);
    flushes.calls[0]?.resolve();
    const outcome = await submitted;
    const claimed = await settled(waiting);
    expect(flushes.calls).toHaveLength(1);
    const job = outcome.ok ? outcome.items[0]?.job : undefined;
    expect(claimed?.ok && claimed.items.map((j) => j.id)).toEqual([job?.id]);
  });

  it("gives a full node its next job in the commit of the result that freed its slot", async () => {
    const node = await register(t.store, "node-1", [], 1);
    const first = await submit(t.store);
    const second = await submit(t.store);
    expect((await claim(t.store, node.id, 1)).map((j) => j.id)).toEqual([first.id]);
    // Its worker claims again as its handler ends, before the result lands: it waits.
    const waiting = dispatcher.claim({ nodeId: node.id, max: 1, waitMs: 10_000 });
    await turn();
    expect(dispatcher.waiting).toBe(1);
    flushes.hold(true);
    const reported = t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: first.id, attempt: 1, status: "completed" }] });
    dispatcher.notify();
    for (let i = 0; i < 10 && flushes.calls.length === 0; i++) await turn();
    expect(flushes.calls).toHaveLength(1);
    flushes.calls[0]?.resolve();
    expect((await reported).items.map((item) => item.verdict)).toEqual(["accepted"]);
    const claimed = await settled(waiting);
    expect(flushes.calls).toHaveLength(1);
    expect(claimed?.ok && claimed.items.map((j) => j.id)).toEqual([second.id]);
  });

  it("retries every waiting claim in one store call a wake, oldest first", async () => {
    const nodes = [await register(t.store, "a"), await register(t.store, "b"), await register(t.store, "c")];
    const calls: string[][] = [];
    const claimEach = t.store.jobs.claimEach.bind(t.store.jobs);
    t.store.jobs.claimEach = (claims) => {
      calls.push(claims.map((c) => c.nodeId));
      return claimEach(claims);
    };
    const waiting = nodes.map((node) => dispatcher.claim({ nodeId: node.id, max: 1, waitMs: 10_000 }));
    for (let i = 0; i < 20 && dispatcher.waiting < 3; i++) await turn();
    expect(dispatcher.waiting).toBe(3);
    const job = await submit(t.store);
    dispatcher.notify();
    const claimed = await Promise.race(waiting);
    expect(claimed.ok && claimed.items.map((j) => j.id)).toEqual([job.id]);
    expect(calls).toEqual([nodes.map((node) => node.id)]);
    expect(await settled(waiting[0] as Promise<DispatchOutcome>)).toEqual(claimed);
    expect(dispatcher.waiting).toBe(2);
  });

  it("lets a node have at most its capacity of claims waiting, and refuses the next at once", async () => {
    const node = await register(t.store, "node-1", [], 2);
    const other = await register(t.store, "node-2", [], 1);
    const abort = new AbortController();
    const first = dispatcher.claim({ nodeId: node.id, max: 1, waitMs: 10_000, signal: abort.signal });
    const second = dispatcher.claim({ nodeId: node.id, max: 1, waitMs: 10_000 });
    for (let i = 0; i < 20 && dispatcher.waiting < 2; i++) await turn();
    expect(dispatcher.waiting).toBe(2);
    const started = performance.now();
    expect(await dispatcher.claim({ nodeId: node.id, max: 1, waitMs: 10_000 })).toEqual({ ok: false, reason: "too_many_waiting" });
    expect(performance.now() - started).toBeLessThan(1000);
    // A claim that does not wait is not one more waiting claim; another node has its own count.
    expect(await dispatcher.claim({ nodeId: node.id, max: 1, waitMs: 0 })).toEqual({ ok: true, items: [] });
    const onOther = dispatcher.claim({ nodeId: other.id, max: 1, waitMs: 10_000 });
    for (let i = 0; i < 20 && dispatcher.waiting < 3; i++) await turn();
    expect(dispatcher.waiting).toBe(3);
    // One of the node's claims ends: another may wait in its place.
    abort.abort();
    expect(await first).toEqual({ ok: true, items: [] });
    const third = dispatcher.claim({ nodeId: node.id, max: 1, waitMs: 10_000 });
    for (let i = 0; i < 20 && dispatcher.waiting < 3; i++) await turn();
    expect(dispatcher.waiting).toBe(3);
    dispatcher.close();
    expect(await Promise.all([second, third, onOther])).toEqual([{ ok: true, items: [] }, { ok: true, items: [] }, { ok: true, items: [] }]);
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
  it.each([
    { took: ["taken"], says: "with what that pass took for it, not empty" },
    { took: [], says: "empty when it took nothing" },
  ])("answers a claim whose wait ends during a pass $says", async ({ took }) => {
    // A store whose claims for the waiting ones are answered only when the test says, after the wait ended.
    let answer: (outcomes: { ok: true; items: { id: string }[] }[]) => void = () => undefined;
    const jobs = {
      claim: async () => ({ ok: true as const, items: [] }),
      claimEach: () => new Promise((resolve) => (answer = resolve)),
    } as unknown as ConstructorParameters<typeof Dispatcher>[0]["jobs"];
    const slow = new Dispatcher({ jobs, nodes: t.store.nodes });
    try {
      const waiting = slow.claim({ nodeId: "n", max: 1, waitMs: 30 });
      await new Promise((resolve) => setTimeout(resolve, 5));
      slow.notify();
      // The wait ends while the pass's store call is out; what it took is the claim's answer.
      await new Promise((resolve) => setTimeout(resolve, 80));
      answer([{ ok: true, items: took.map((id) => ({ id })) }]);
      const outcome = await waiting;
      expect(outcome.ok && outcome.items.map((job) => job.id)).toEqual(took);
      expect(slow.waiting).toBe(0);
    } finally {
      slow.close();
    }
  });

  it("wakes a node's waiting claim when the node registers again and may now take a ready job", async () => {
    const unsubscribe = t.store.onCommitted((change) => {
      if (change.claimable) dispatcher.notify();
    });
    try {
      const node = await register(t.store, "node-1", [], 1, "worker-a", ["a"]);
      const job = await submit(t.store, { type: "b" });
      const waiting = dispatcher.claim({ nodeId: node.id, max: 1, waitMs: 10_000 });
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(dispatcher.waiting).toBe(1);
      // The same node again, now running any type: its claim waiting since before takes the job.
      await register(t.store, "node-1", [], 1, "worker-a", null);
      const outcome = await waiting;
      expect(outcome.ok && outcome.items.map((j) => j.id)).toEqual([job.id]);
    } finally {
      unsubscribe();
    }
  });
});
