// Dispatch order, labels, capacity and aging, for every store dialect.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { claim, dialects, jobParams, register, submit, type TestStore } from "../../helpers/store.js";
import { removeTempDirs } from "../../helpers/temp.js";

describe.each(dialects)("dispatch ($name)", (dialect) => {
  let t: TestStore;
  beforeEach(async () => {
    t = await dialect.open({ agingS: 60 });
  });
  afterEach(async () => {
    await t.store.close();
    removeTempDirs();
  });

  it("gives a live job out before an older high job", async () => {
    const high = await submit(t.store, { priority: "high" });
    const live = await submit(t.store, { priority: "live" });
    const node = await register(t.store);
    const claimed = await claim(t.store, node.id, 1);
    expect(claimed.map((j) => j.id)).toEqual([live.id]);
    expect((await claim(t.store, node.id, 1)).map((j) => j.id)).toEqual([high.id]);
  });

  it("answers claims of one node made at once each with its own jobs, never past its capacity, one after the other in FIFO", async () => {
    const outcome = await t.store.jobs.submit(Array.from({ length: 30 }, (_, i) => jobParams({ payload: { i } })));
    if (!outcome.ok) throw new Error("batch failed");
    const node = await register(t.store, "busy", [], 25);
    const answers = await Promise.all([4, 10, 10, 10, 4].map((max) => t.store.jobs.claim({ nodeId: node.id, max })));
    const taken = answers.map((answer) => (answer.ok ? answer.items.map((job) => (JSON.parse(job.payloadJson) as { i: number }).i) : []));
    // The capacity of 25 is filled by the claims in the order they were made, the last gets nothing.
    expect(taken.map((items) => items.length)).toEqual([4, 10, 10, 1, 0]);
    expect(taken.flat()).toEqual(Array.from({ length: 25 }, (_, i) => i));
    // A claim of a node that does not exist fails on its own: the node's next claim is answered.
    const [missing, after] = await Promise.all([t.store.jobs.claim({ nodeId: "no-such-node", max: 1 }), t.store.jobs.claim({ nodeId: node.id, max: 1 })]);
    expect(missing).toEqual({ ok: false, reason: "not_found" });
    expect(after).toEqual({ ok: true, items: [] });
  });

  it("orders all five classes by weight, then by submission", async () => {
    const order = ["batch", "low", "medium", "high", "live", "medium", "batch"] as const;
    const jobs = [];
    for (const priority of order) jobs.push(await submit(t.store, { priority }));
    const node = await register(t.store);
    const claimed = await claim(t.store, node.id, 10);
    const expected = [jobs[4], jobs[3], jobs[2], jobs[5], jobs[1], jobs[0], jobs[6]].map((j) => j?.id);
    expect(claimed.map((j) => j.id)).toEqual(expected);
  });

  it("keeps strict FIFO inside one batch submitted in the same millisecond", async () => {
    const outcome = await t.store.jobs.submit(
      Array.from({ length: 50 }, (_, i) => jobParams({ payload: { i } })),
    );
    if (!outcome.ok) throw new Error("batch failed");
    const node = await register(t.store, "big", [], 100);
    const claimed = [];
    for (let i = 0; i < 5; i++) claimed.push(...(await claim(t.store, node.id, 10)));
    expect(claimed.map((j) => (JSON.parse(j.payloadJson) as { i: number }).i)).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it("hands a job out only to a node whose labels cover its requires", async () => {
    const gpuJob = await submit(t.store, { requires: ["gpu", "cuda"] });
    const plain = await submit(t.store);
    const cpu = await register(t.store, "cpu", ["linux"]);
    const partial = await register(t.store, "partial", ["gpu"]);
    const gpu = await register(t.store, "gpu", ["gpu", "cuda", "linux"]);
    expect((await claim(t.store, cpu.id)).map((j) => j.id)).toEqual([plain.id]);
    expect(await claim(t.store, partial.id)).toEqual([]);
    expect((await claim(t.store, gpu.id)).map((j) => j.id)).toEqual([gpuJob.id]);
  });

  it("lets a node skip past jobs it cannot run at the head of the queue", async () => {
    for (let i = 0; i < 20; i++) await submit(t.store, { priority: "live", requires: ["gpu"] });
    const plain = await submit(t.store, { priority: "batch" });
    const cpu = await register(t.store, "cpu");
    expect((await claim(t.store, cpu.id)).map((j) => j.id)).toEqual([plain.id]);
  });

  it("hands a node only jobs of the types it runs, and any type to a node that names none", async () => {
    const resize = await submit(t.store, { type: "resize" });
    const echo = await submit(t.store, { type: "echo" });
    const echoes = await register(t.store, "echoes", [], 10, "worker-a", ["echo", "sleep"]);
    expect((await claim(t.store, echoes.id)).map((j) => j.id)).toEqual([echo.id]);
    const later = await submit(t.store, { type: "transcode" });
    const any = await register(t.store, "any", [], 10, "worker-a", null);
    expect((await claim(t.store, any.id)).map((j) => j.id)).toEqual([resize.id, later.id]);
  });

  it("lets a node skip past jobs of types it does not run at the head of the queue", async () => {
    for (let i = 0; i < 20; i++) await submit(t.store, { type: "resize", priority: "live" });
    const echo = await submit(t.store, { type: "echo", priority: "batch" });
    const echoes = await register(t.store, "echoes", [], 10, "worker-a", ["echo"]);
    expect((await claim(t.store, echoes.id)).map((j) => j.id)).toEqual([echo.id]);
  });

  it("keeps a job of a type no node runs waiting, not failed, until a node that runs it registers", async () => {
    const resize = await submit(t.store, { type: "resize" });
    const echoes = await register(t.store, "echoes", [], 10, "worker-a", ["echo"]);
    expect(await claim(t.store, echoes.id)).toEqual([]);
    expect((await t.store.jobs.get(resize.id))?.status).toBe("pending");
    // Registering again with new handlers updates what the node runs.
    const again = await register(t.store, "echoes", [], 10, "worker-a", ["echo", "resize"]);
    expect(again.id).toBe(echoes.id);
    expect(again.types).toEqual(["echo", "resize"]);
    expect((await claim(t.store, echoes.id)).map((j) => j.id)).toEqual([resize.id]);
  });

  it("needs both the type and the labels of a job", async () => {
    const gpuResize = await submit(t.store, { type: "resize", requires: ["gpu"] });
    const cpuResize = await register(t.store, "cpu-resize", [], 10, "worker-a", ["resize"]);
    const gpuEcho = await register(t.store, "gpu-echo", ["gpu"], 10, "worker-a", ["echo"]);
    expect(await claim(t.store, cpuResize.id)).toEqual([]);
    expect(await claim(t.store, gpuEcho.id)).toEqual([]);
    const gpuResizer = await register(t.store, "gpu-resize", ["gpu"], 10, "worker-a", ["resize"]);
    expect((await claim(t.store, gpuResizer.id)).map((j) => j.id)).toEqual([gpuResize.id]);
  });

  it("merges lanes of several types in priority, then submission order", async () => {
    const a = await submit(t.store, { type: "a", priority: "low" });
    const b = await submit(t.store, { type: "b", priority: "high" });
    await submit(t.store, { type: "c", priority: "live" });
    const c = await submit(t.store, { type: "a", priority: "high" });
    const d = await submit(t.store, { type: "b", priority: "low" });
    const node = await register(t.store, "ab", [], 10, "worker-a", ["a", "b"]);
    expect((await claim(t.store, node.id)).map((j) => j.id)).toEqual([b.id, c.id, a.id, d.id]);
  });

  it("merges requirement sets in priority order for a node that covers several", async () => {
    const a = await submit(t.store, { priority: "low", requires: ["gpu"] });
    const b = await submit(t.store, { priority: "high" });
    const c = await submit(t.store, { priority: "high", requires: ["gpu"] });
    const gpu = await register(t.store, "gpu", ["gpu"]);
    expect((await claim(t.store, gpu.id)).map((j) => j.id)).toEqual([b.id, c.id, a.id]);
  });

  it("gives a job the same lease whether its node covers one requirement set or several", async () => {
    // A node with no labels takes the head of its one set in one statement; a node covering
    // several reads each set's head first, then takes the chosen by seq.
    const timeoutS = 7.23478; // twice is 14,469.56 ms: a stall time in whole milliseconds drops the fraction, as a Date does
    const plain = [await submit(t.store, { timeoutS }), await submit(t.store, { timeoutS })];
    await submit(t.store, { requires: ["gpu"], priority: "low" });
    const cpu = await register(t.store, "cpu");
    const gpu = await register(t.store, "gpu", ["gpu"]);
    t.clock.advanceSeconds(0.0017);
    expect((await claim(t.store, cpu.id, 1)).map((j) => j.id)).toEqual([plain[0]?.id]);
    expect((await claim(t.store, gpu.id, 1)).map((j) => j.id)).toEqual([plain[1]?.id]);
    const now = t.clock.now().getTime();
    const leases = await t.query("SELECT node_id, started_at, stall_at, lease_expires_at FROM jobs WHERE status = 'running' ORDER BY seq");
    expect(leases).toEqual(
      [cpu.id, gpu.id].map((nodeId) => ({
        node_id: nodeId,
        started_at: new Date(now).toISOString(),
        stall_at: new Date(now + 2 * timeoutS * 1000 + t.policy.stallGraceMs).toISOString(),
        lease_expires_at: new Date(now + t.policy.leaseMs).toISOString(),
      })),
    );
  });

  it("never runs more jobs on a node than its capacity", async () => {
    for (let i = 0; i < 5; i++) await submit(t.store);
    const node = await register(t.store, "small", [], 2);
    expect(await claim(t.store, node.id, 10)).toHaveLength(2);
    expect(await claim(t.store, node.id, 10)).toHaveLength(0);
    const [first] = (await t.store.jobs.list({ limit: 10, status: "running" })).items;
    if (!first) throw new Error("no running job");
    await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: first.id, attempt: 1, status: "completed" }] });
    expect(await claim(t.store, node.id, 10)).toHaveLength(1);
  });

  it("gives a draining node nothing and a resumed one its work", async () => {
    await submit(t.store);
    const node = await register(t.store);
    await t.store.nodes.drain({ id: node.id, actor: "admin" });
    expect(await claim(t.store, node.id)).toEqual([]);
    await t.store.nodes.resume({ id: node.id, actor: "admin" });
    expect(await claim(t.store, node.id)).toHaveLength(1);
  });

  it("answers not_found for an unknown node and offline for one that left", async () => {
    expect(await t.store.jobs.claim({ nodeId: "nope", max: 1 })).toEqual({ ok: false, reason: "not_found" });
    const node = await register(t.store);
    await t.store.nodes.deregister({ id: node.id, actor: null });
    expect(await t.store.jobs.claim({ nodeId: node.id, max: 1 })).toEqual({ ok: false, reason: "offline" });
  });

  // SQLite's claimEach shares one transaction and skips the emptied lanes; PostgreSQL's claims each node apart.
  it.runIf(dialect.name === "sqlite")("claims for many nodes in order, and stops looking once every set is emptied", async () => {
    const plain = await submit(t.store);
    const gpuJob = await submit(t.store, { requires: ["gpu"] });
    const first = await register(t.store, "first");
    const second = await register(t.store, "second");
    const gpu = await register(t.store, "gpu", ["gpu"]);
    const outcomes = await t.store.jobs.claimEach([
      { nodeId: first.id, max: 10 }, // takes the plain job, fewer than it could: no plain job is left
      { nodeId: second.id, max: 10 }, // covers only the emptied set: nothing, without looking
      { nodeId: gpu.id, max: 10 }, // covers the gpu set too: takes that job
      { nodeId: "no-such-node", max: 10 }, // every set is emptied: not even read
    ]);
    const taken = outcomes.map((outcome) => (outcome.ok ? outcome.items.map((job) => job.id) : outcome.reason));
    expect(taken).toEqual([[plain.id], [], [gpuJob.id], []]);
    // On its own, the unknown node is read and refused, as ever.
    expect(await t.store.jobs.claimEach([{ nodeId: "no-such-node", max: 10 }])).toEqual([{ ok: false, reason: "not_found" }]);
  });

  it("counts the lease: attempt grows by one each time a job is handed out", async () => {
    const job = await submit(t.store);
    const node = await register(t.store);
    const [first] = await claim(t.store, node.id);
    expect(first?.attempt).toBe(1);
    await t.store.nodes.deregister({ id: node.id, actor: null });
    const other = await register(t.store, "node-2");
    const [second] = await claim(t.store, other.id);
    expect(second?.id).toBe(job.id);
    expect(second?.attempt).toBe(2);
  });

  describe("aging", () => {
    it("lifts a waiting batch job one class per interval, never above high", async () => {
      const old = await submit(t.store, { priority: "batch" });
      t.clock.advanceSeconds(61);
      expect(await t.store.jobs.age({ limit: 100 })).toBe(1);
      expect((await t.store.jobs.get(old.id))?.effective_priority).toBe("low");
      t.clock.advanceSeconds(60);
      await t.store.jobs.age({ limit: 100 });
      expect((await t.store.jobs.get(old.id))?.effective_priority).toBe("medium");
      t.clock.advanceSeconds(600);
      for (let i = 0; i < 5; i++) await t.store.jobs.age({ limit: 100 });
      const aged = await t.store.jobs.get(old.id);
      expect(aged?.effective_priority).toBe("high");
      expect(aged?.priority).toBe("batch");
    });

    it("lets an aged low job out before a newer medium job, but never before live", async () => {
      const low = await submit(t.store, { priority: "low" });
      t.clock.advanceSeconds(130);
      const medium = await submit(t.store, { priority: "medium" });
      const live = await submit(t.store, { priority: "live" });
      await t.store.jobs.age({ limit: 100 });
      await t.store.jobs.age({ limit: 100 });
      expect((await t.store.jobs.get(low.id))?.effective_priority).toBe("high");
      const node = await register(t.store);
      expect((await claim(t.store, node.id)).map((j) => j.id)).toEqual([live.id, low.id, medium.id]);
    });

    it("leaves live and high jobs where they are", async () => {
      const live = await submit(t.store, { priority: "live" });
      const high = await submit(t.store, { priority: "high" });
      t.clock.advanceSeconds(3600);
      expect(await t.store.jobs.age({ limit: 100 })).toBe(0);
      expect((await t.store.jobs.get(live.id))?.effective_priority).toBe("live");
      expect((await t.store.jobs.get(high.id))?.effective_priority).toBe("high");
    });
  });
});
