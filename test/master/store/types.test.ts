// Flow control per job type (API.md §5a): a paused type or one at its limit holds back
// nothing else, and its jobs go out in their normal order once it may run again.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { claim, dialects, jobParams, register, submit, type TestStore } from "../../helpers/store.js";
import { removeTempDirs } from "../../helpers/temp.js";

describe.each(dialects)("job types ($name)", (dialect) => {
  let t: TestStore;
  beforeEach(async () => {
    t = await dialect.open();
  });
  afterEach(async () => {
    await t.store.close();
    removeTempDirs();
  });
  const since = () => new Date(t.clock.now().getTime() - 3_600_000);
  const set = (type: string, change: { maxRunning?: number | null; paused?: boolean }) => t.store.types.set({ type, ...change, actor: "admin", since: since() });

  it("hands out no job of a paused type, others still, then the paused ones in order once resumed", async () => {
    const held = [];
    for (let i = 0; i < 3; i++) held.push(await submit(t.store, { type: "a", priority: "high" }));
    const other = await submit(t.store, { type: "b", priority: "low" });
    await set("a", { paused: true });
    const node = await register(t.store, "n", [], 10);
    expect((await claim(t.store, node.id)).map((job) => job.id)).toEqual([other.id]);
    const why = await t.store.jobs.whyFacts(held[0]?.id ?? "");
    expect(why?.typeControl).toEqual({ paused: true, maxRunning: null, running: 0 });
    const resumed = await set("a", { paused: false });
    expect(resumed).toMatchObject({ type: "a", paused: false, pending: 3 });
    expect((await claim(t.store, node.id)).map((job) => job.id)).toEqual(held.map((job) => job.id));
  });

  it("never runs more of a limited type than its limit across nodes and lanes, and gives the rest as slots free", async () => {
    await set("a", { maxRunning: 2 });
    const first = await t.store.jobs.submit([jobParams({ type: "a" }), jobParams({ type: "a", requires: ["gpu"] }), jobParams({ type: "a" }), jobParams({ type: "b" })]);
    if (!first.ok) throw new Error("refused");
    const [a1, a2, a3, b1] = first.items.map((item) => item.job.id);
    const gpu = await register(t.store, "gpu", ["gpu"], 10);
    const plain = await register(t.store, "plain", [], 10);
    // Two lanes of type a (with and without gpu): the limit is the type's, over both.
    expect((await claim(t.store, gpu.id)).map((job) => job.id)).toEqual([a1, a2, b1]);
    expect(await claim(t.store, plain.id)).toEqual([]);
    expect(await t.store.types.list({ since: since() })).toEqual(
      expect.arrayContaining([expect.objectContaining({ type: "a", max_running: 2, running: 2, pending: 1 })]),
    );
    await t.store.jobs.report({ nodeId: gpu.id, reports: [{ jobId: a1 ?? "", attempt: 1, status: "completed" }] });
    expect((await claim(t.store, plain.id)).map((job) => job.id)).toEqual([a3]);
    // Lifting the limit: a waiting claim is told.
    const heard: boolean[] = [];
    t.store.onCommitted((change) => heard.push(change.claimable));
    await set("a", { maxRunning: null });
    expect(heard).toEqual([true]);
  });

  it("lists every type with jobs or a setting, with its counts", async () => {
    await submit(t.store, { type: "a" });
    await submit(t.store, { type: "a", requires: ["gpu"] });
    const failing = await submit(t.store, { type: "b", maxRetries: 0 });
    const node = await register(t.store, "n", [], 2);
    // The node has no gpu: the first a, then b; the other a waits.
    expect((await claim(t.store, node.id)).map((job) => job.type)).toEqual(["a", "b"]);
    await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: failing.id, attempt: 1, status: "failed", error: { message: "boom", retryable: false } }] });
    await set("render", { maxRunning: 3, paused: true });
    expect(await t.store.types.list({ since: since() })).toEqual([
      { type: "a", max_running: null, paused: false, pending: 1, running: 1, completed_1h: 0, failed_1h: 0 },
      { type: "b", max_running: null, paused: false, pending: 0, running: 0, completed_1h: 0, failed_1h: 1 },
      { type: "render", max_running: 3, paused: true, pending: 0, running: 0, completed_1h: 0, failed_1h: 0 },
    ]);
  });

  it("records each change, and tells waiting claims only when a type may run more", async () => {
    await submit(t.store, { type: "render" });
    const heard: boolean[] = [];
    t.store.onCommitted((change) => heard.push(change.claimable));
    expect(await set("render", { maxRunning: 3, paused: true })).toMatchObject({ type: "render", max_running: 3, paused: true, pending: 1 });
    await set("render", { maxRunning: 2 }); // lowered: nothing more may run
    await set("render", { paused: false }); // resumed
    await set("render", { maxRunning: 5 }); // raised
    expect(heard).toEqual([true, true]);
    const events = await t.store.audit.list({ limit: 10, entityId: "render", eventType: "type.changed" });
    expect(events.items.map((e) => e.details).reverse()).toEqual([
      { from: { max_running: null, paused: false }, to: { max_running: 3, paused: true } },
      { from: { max_running: 3, paused: true }, to: { max_running: 2, paused: true } },
      { from: { max_running: 2, paused: true }, to: { max_running: 2, paused: false } },
      { from: { max_running: 2, paused: false }, to: { max_running: 5, paused: false } },
    ]);
  });

  it("keeps a type's setting across a restart and records who changed it", async () => {
    await set("render", { maxRunning: 3, paused: true });
    const events = await t.store.audit.list({ limit: 10, eventType: "type.changed" });
    expect(events.items[0]).toMatchObject({
      entity_type: "type",
      entity_id: "render",
      client_id: "admin",
      details: { from: { max_running: null, paused: false }, to: { max_running: 3, paused: true } },
    });
    expect(await t.store.types.list({ since: since() })).toEqual([
      { type: "render", max_running: 3, paused: true, pending: 0, running: 0, completed_1h: 0, failed_1h: 0 },
    ]);
    // After a restart the pause still holds.
    const job = await submit(t.store, { type: "render" });
    await t.store.close();
    const reopened = await t.reopen();
    try {
      expect((await reopened.types.list({ since: since() }))[0]).toMatchObject({ type: "render", paused: true, pending: 1 });
      const node = await register(reopened, "n", [], 5);
      expect(await claim(reopened, node.id)).toEqual([]);
      await reopened.types.set({ type: "render", paused: false, actor: "admin", since: since() });
      expect((await claim(reopened, node.id)).map((claimed) => claimed.id)).toEqual([job.id]);
    } finally {
      await reopened.close();
      t = await dialect.open(); // afterEach closes one
    }
  });
});
