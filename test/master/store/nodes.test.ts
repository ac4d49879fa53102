// Nodes: registration, heartbeats and leases, leaving, draining and resuming (the sweepers
// that take work back: test/master/sweepers/).
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DeadNodeSweeper } from "../../../master/sweepers/dead-nodes.js";
import { claim, dialects, register, submit, type TestStore } from "../../helpers/store.js";
import { removeTempDirs } from "../../helpers/temp.js";

const silent = pino({ level: "silent" });

describe.each(dialects)("nodes ($name)", (dialect) => {
  let t: TestStore;
  beforeEach(async () => {
    t = await dialect.open({ nodeTimeoutS: 60, stallGraceS: 30 });
  });
  afterEach(async () => {
    await t.store.close();
    removeTempDirs();
  });

  /** Time enough for a node that last beat now to be declared dead: the timeout, and the lag of last_heartbeat. */
  function silence() {
    t.clock.advance(60_000 + t.policy.heartbeatWriteMs + 1000);
  }

  function deadNodeSweeper(startedAt = new Date(0)) {
    return new DeadNodeSweeper({
      store: t.store,
      clock: t.clock,
      log: silent,
      nodeTimeoutMs: 60_000,
      intervalMs: 10_000,
      reportingSince: () => startedAt,
    });
  }

  describe("register", () => {
    it("answers the same name from the same client with the same node, back online", async () => {
      const first = await t.store.nodes.register({ clientId: "w", name: "n1", labels: ["b", "a"], capacity: 2, types: ["resize", "echo"], version: "1", hardware: { cpus: 8 } });
      expect(first.created).toBe(true);
      expect(first.node).toMatchObject({ name: "n1", labels: ["a", "b"], capacity: 2, types: ["echo", "resize"], status: "online", running: 0, hardware: { cpus: 8 } });
      await t.store.nodes.drain({ id: first.node.id, actor: "admin" });
      const again = await t.store.nodes.register({ clientId: "w", name: "n1", labels: ["gpu"], capacity: 4, types: null, version: "2", hardware: {} });
      expect(again.created).toBe(false);
      expect(again.node).toMatchObject({ id: first.node.id, status: "online", labels: ["gpu"], capacity: 4, types: null, version: "2" });
      const otherClient = await t.store.nodes.register({ clientId: "v", name: "n1", labels: [], capacity: 1, types: null, version: null, hardware: {} });
      expect(otherClient.node.id).not.toBe(first.node.id);
      const audit = await t.store.audit.list({ limit: 10, entityId: first.node.id });
      expect(audit.items.map((e) => [e.event_type, e.details.from ?? null])).toEqual([
        ["node.registered", "draining"],
        ["node.draining", "online"],
        ["node.registered", null],
      ]);
    });
  });

  describe("heartbeat", () => {
    it("renews the node and answers an empty cancel list for its own jobs", async () => {
      const job = await submit(t.store);
      const node = await register(t.store);
      await claim(t.store, node.id);
      t.clock.advanceSeconds(30);
      const beat = await t.store.nodes.heartbeat({ nodeId: node.id, running: [{ jobId: job.id, attempt: 1, progress: 40, message: "half way" }] });
      expect(beat).toEqual({ ok: true, status: "online", cancel: [] });
      expect(await t.store.nodes.get(node.id)).toMatchObject({ last_heartbeat: t.clock.now().toISOString(), running: 1 });
      expect(await t.store.jobs.get(job.id)).toMatchObject({ progress: 40, progress_message: "half way" });
    });

    it("writes at most one job.progress audit row a minute per job", async () => {
      const job = await submit(t.store);
      const node = await register(t.store);
      await claim(t.store, node.id);
      for (let p = 10; p <= 50; p += 10) {
        await t.store.nodes.heartbeat({ nodeId: node.id, running: [{ jobId: job.id, attempt: 1, progress: p }] });
        t.clock.advanceSeconds(10);
      }
      t.clock.advanceSeconds(20);
      await t.store.nodes.heartbeat({ nodeId: node.id, running: [{ jobId: job.id, attempt: 1, progress: 90 }] });
      const events = await t.store.jobs.events({ jobId: job.id, limit: 50 });
      const progress = events.items.filter((e) => e.event_type === "job.progress").map((e) => e.details.progress);
      expect(progress).toEqual([10, 90]);
      expect((await t.store.jobs.get(job.id))?.progress).toBe(90);
    });

    it("tells a node to stop jobs that are unknown, reassigned, stalled or canceled", async () => {
      const node = await register(t.store);
      const other = await register(t.store, "node-2");
      // Handed to this node, stalled, then handed to the other one.
      const moved = await submit(t.store, { timeoutS: 1 });
      await claim(t.store, node.id);
      t.clock.advanceSeconds(2 + 30 + 1);
      await t.store.jobs.rescueStalled({ limit: 10 });
      await claim(t.store, other.id);
      // Only ever the other node's: to this one it is as unknown as a job that does not exist.
      const elsewhere = await submit(t.store);
      await claim(t.store, other.id);
      const canceled = await submit(t.store);
      await claim(t.store, node.id);
      await t.store.jobs.cancel({ id: canceled.id, actor: null });
      // Stalled, and waiting in the queue again.
      const stalled = await submit(t.store, { timeoutS: 1 });
      await claim(t.store, node.id);
      t.clock.advanceSeconds(2 + 30 + 1);
      await t.store.jobs.rescueStalled({ limit: 10 });
      const beat = await t.store.nodes.heartbeat({
        nodeId: node.id,
        running: [
          { jobId: "ghost", attempt: 1 },
          { jobId: moved.id, attempt: 1 },
          { jobId: stalled.id, attempt: 1 },
          { jobId: elsewhere.id, attempt: 1 },
          { jobId: canceled.id, attempt: 1 },
        ],
      });
      expect(beat.ok && beat.cancel).toEqual([
        { job_id: "ghost", attempt: 1, reason: "unknown" },
        { job_id: moved.id, attempt: 1, reason: "reassigned" },
        { job_id: stalled.id, attempt: 1, reason: "stalled" },
        { job_id: elsewhere.id, attempt: 1, reason: "unknown" },
        { job_id: canceled.id, attempt: 1, reason: "canceled" },
      ]);
    });

    it("tells a node about a cancel for a job it did not list yet", async () => {
      const job = await submit(t.store);
      const node = await register(t.store);
      await claim(t.store, node.id);
      await t.store.jobs.cancel({ id: job.id, actor: null });
      const beat = await t.store.nodes.heartbeat({ nodeId: node.id, running: [] });
      expect(beat.ok && beat.cancel).toEqual([{ job_id: job.id, attempt: 1, reason: "canceled" }]);
    });

    it("rewrites last_heartbeat only once the stored one is older than heartbeatWriteMs", async () => {
      const node = await register(t.store);
      const registered = t.clock.now().toISOString();
      t.clock.advance(t.policy.heartbeatWriteMs - 1000);
      expect(await t.store.nodes.heartbeat({ nodeId: node.id, running: [] })).toEqual({ ok: true, status: "online", cancel: [] });
      expect((await t.store.nodes.get(node.id))?.last_heartbeat).toBe(registered);
      t.clock.advance(2000);
      await t.store.nodes.heartbeat({ nodeId: node.id, running: [] });
      expect((await t.store.nodes.get(node.id))?.last_heartbeat).toBe(t.clock.now().toISOString());
    });

    it("records progress even while last_heartbeat needs no rewrite", async () => {
      const job = await submit(t.store);
      const node = await register(t.store);
      await claim(t.store, node.id);
      t.clock.advanceSeconds(1);
      await t.store.nodes.heartbeat({ nodeId: node.id, running: [{ jobId: job.id, attempt: 1, progress: 10, message: "started" }] });
      expect(await t.store.jobs.get(job.id)).toMatchObject({ progress: 10, progress_message: "started" });
    });

    it("renews a lease due for it even while last_heartbeat needs no rewrite", async () => {
      const node = await register(t.store);
      t.clock.advanceSeconds(1);
      const job = await submit(t.store, { timeoutS: 3600 });
      await claim(t.store, node.id);
      const leaseEnd = async () => (await t.query("SELECT lease_expires_at FROM jobs WHERE id = ?", [job.id]))[0]?.lease_expires_at;
      const running = [{ jobId: job.id, attempt: 1 }];
      const claimed = await leaseEnd();
      t.clock.advanceSeconds(29);
      await t.store.nodes.heartbeat({ nodeId: node.id, running }); // last_heartbeat rewritten; the lease has 31 s left
      expect(await leaseEnd()).toBe(claimed);
      t.clock.advanceSeconds(2);
      await t.store.nodes.heartbeat({ nodeId: node.id, running }); // 29 s left: past half its life
      expect(await leaseEnd()).toBe(new Date(t.clock.now().getTime() + t.policy.leaseMs).toISOString());
    });

    it("revives a dead node that heartbeats again", async () => {
      const node = await register(t.store);
      silence();
      await deadNodeSweeper().runOnce();
      expect((await t.store.nodes.get(node.id))?.status).toBe("dead");
      const beat = await t.store.nodes.heartbeat({ nodeId: node.id, running: [] });
      expect(beat.ok && beat.status).toBe("online");
      const audit = await t.store.audit.list({ limit: 10, entityId: node.id });
      expect(audit.items.map((e) => e.event_type)).toEqual(["node.recovered", "node.dead", "node.registered"]);
    });

    it("answers draining to a draining node, offline to one that left, not_found to a stranger", async () => {
      const node = await register(t.store);
      await t.store.nodes.drain({ id: node.id, actor: null });
      expect(await t.store.nodes.heartbeat({ nodeId: node.id, running: [] })).toEqual({ ok: true, status: "draining", cancel: [] });
      await t.store.nodes.deregister({ id: node.id, actor: null });
      expect(await t.store.nodes.heartbeat({ nodeId: node.id, running: [] })).toEqual({ ok: false, reason: "offline" });
      expect(await t.store.nodes.heartbeat({ nodeId: "nope", running: [] })).toEqual({ ok: false, reason: "not_found" });
    });
  });

  describe("deregister, drain, resume", () => {
    it("hands a leaving node's jobs back to the queue", async () => {
      const job = await submit(t.store);
      const node = await register(t.store);
      await claim(t.store, node.id);
      const outcome = await t.store.nodes.deregister({ id: node.id, actor: "worker-a" });
      expect(outcome.ok && outcome.node.status).toBe("offline");
      expect(outcome.ok && outcome.requeued).toBe(1);
      expect(await t.store.jobs.get(job.id)).toMatchObject({ status: "pending", retry_count: 1 });
      expect(await t.query("SELECT lease_end_reason FROM jobs WHERE id = ?", [job.id])).toEqual([{ lease_end_reason: "node_left" }]);
      const audit = await t.store.audit.list({ limit: 10, entityId: node.id });
      expect(audit.items.map((e) => [e.event_type, e.details.from ?? null])).toEqual([["node.offline", "online"], ["node.registered", null]]);
    });

    it("refuses to drain a dead node and to resume an offline one", async () => {
      const node = await register(t.store);
      silence();
      await deadNodeSweeper().runOnce();
      expect(await t.store.nodes.drain({ id: node.id, actor: null })).toEqual({ ok: false, reason: "conflict", status: "dead" });
      await t.store.nodes.deregister({ id: node.id, actor: null });
      expect(await t.store.nodes.resume({ id: node.id, actor: null })).toEqual({ ok: false, reason: "conflict", status: "offline" });
      expect(await t.store.nodes.drain({ id: "nope", actor: null })).toEqual({ ok: false, reason: "not_found" });
    });

    it("lists nodes newest first, filtered by status and client", async () => {
      const a = await register(t.store, "a");
      const b = await register(t.store, "b");
      const c = await register(t.store, "c", [], 1, "worker-b");
      await t.store.nodes.drain({ id: a.id, actor: null });
      const page = await t.store.nodes.list({ limit: 2 });
      expect(page.items.map((n) => n.id)).toEqual([c.id, b.id]);
      const next = await t.store.nodes.list({ limit: 2, cursor: page.next_cursor ?? undefined });
      expect(next).toEqual({ items: [expect.objectContaining({ id: a.id, status: "draining" })], next_cursor: null });
      expect((await t.store.nodes.list({ limit: 10, status: "draining" })).items.map((n) => n.id)).toEqual([a.id]);
      expect((await t.store.nodes.list({ limit: 10, clientId: "worker-a" })).items.map((n) => n.id)).toEqual([b.id, a.id]);
    });
  });
});
