// Several masters on one PostgreSQL database are one cluster (API.md §12): stores opened on
// the same schema at once, driven with the real verbs at the same moment, agree on one answer.
import pg from "pg";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Node, Schedule, Store, TakenJob } from "../../../master/store/types.js";
import { claim, dialects, jobParams, register, submit, TEST_DATABASE_URL, type TestStore } from "../../helpers/store.js";

const postgres = dialects.find((dialect) => dialect.name === "postgres");

describe.skipIf(postgres === undefined)("several masters on one PostgreSQL database", () => {
  let t: TestStore;
  let others: Store[];
  beforeEach(async () => {
    if (!postgres) throw new Error("no PostgreSQL");
    t = await postgres.open({ nodeTimeoutS: 60, stallGraceS: 30 });
    others = [];
  });
  afterEach(async () => {
    for (const store of others) await store.close();
    await t.store.close();
  });

  /** This master and `more` others on the same database. */
  async function masters(more: number): Promise<Store[]> {
    for (let i = 0; i < more; i++) others.push(await t.reopen());
    return [t.store, ...others];
  }
  const count = async (text: string, params: unknown[] = []) => Number((await t.query(text, params))[0]?.n ?? 0);
  const cutoff = () => new Date(t.clock.now().getTime() - 60_000);
  /** Time enough for a node that last beat now to be declared dead. */
  const silence = () => t.clock.advance(60_000 + t.policy.heartbeatWriteMs + 1000);

  describe("nodes", () => {
    it("gives one node to the same name registered through two masters at once", async () => {
      const [a, b] = await masters(1);
      for (let i = 0; i < 5; i++) {
        const params = { clientId: "w", name: `twin-${i}`, labels: [], capacity: 1, types: null, version: null, hardware: {} };
        const [first, second] = await Promise.all([a?.nodes.register(params), b?.nodes.register(params)]);
        expect(first?.node.id).toBe(second?.node.id);
        expect([first?.created, second?.created].sort()).toEqual([false, true]);
      }
      expect(await count("SELECT count(*) AS n FROM nodes")).toBe(5);
    });

    it("declares a node dead once, and re-queues its job once, when two masters sweep at once", async () => {
      const [a, b] = await masters(1);
      const job = await submit(t.store);
      const node = await register(t.store);
      await claim(t.store, node.id);
      silence();
      const [first, second] = await Promise.all([a?.nodes.markDead({ cutoff: cutoff(), limit: 100 }), b?.nodes.markDead({ cutoff: cutoff(), limit: 100 })]);
      expect([...(first ?? []), ...(second ?? [])].map((dead) => dead.nodeId)).toEqual([node.id]);
      expect(await t.store.jobs.get(job.id)).toMatchObject({ status: "pending", retry_count: 1 });
      expect((await t.store.audit.list({ limit: 10, entityId: node.id, eventType: "node.dead" })).items).toHaveLength(1);
      expect((await t.store.jobs.events({ jobId: job.id, limit: 10 })).items.filter((e) => e.event_type === "job.reassigned")).toHaveLength(1);
    });

    it("agrees with itself when a heartbeat through one master meets a dead-node sweep on another", async () => {
      const [a, b] = await masters(1);
      const job = await submit(t.store, { timeoutS: 3600 });
      const node = await register(t.store);
      await claim(t.store, node.id);
      silence();
      const [beat, dead] = await Promise.all([
        b?.nodes.heartbeat({ nodeId: node.id, running: [{ jobId: job.id, attempt: 1 }] }),
        a?.nodes.markDead({ cutoff: cutoff(), limit: 100 }),
      ]);
      // Whichever went first, the answer and the database agree: the heartbeat before the
      // sweep's mark, or between the mark and its batch (the node is revived and keeps its
      // job), or after the batch took the job back. The sweep's answer names the node in the
      // last two.
      const row = await t.store.jobs.get(job.id);
      if (row?.status === "running") {
        expect(beat).toEqual({ ok: true, status: "online", cancel: [] });
        expect(row).toMatchObject({ status: "running", attempt: 1 });
      } else {
        expect(beat).toEqual({ ok: true, status: "online", cancel: [{ job_id: job.id, attempt: 1, reason: "reassigned" }] });
        expect(row).toMatchObject({ status: "pending", retry_count: 1 });
        expect(dead?.map((node) => node.nodeId)).toEqual([node.id]);
      }
      expect((await t.store.nodes.get(node.id))?.status).toBe("online");
    });
  });

  /** A schedule due at 10:05 every five minutes, made through the first master. */
  async function tickSchedule(): Promise<Schedule> {
    const created = await t.store.schedules.create({
      name: "tick",
      cron: "*/5 * * * *",
      timezone: "UTC",
      job: { type: "report" },
      enabled: true,
      nextRunAt: new Date("2026-01-01T10:05:00.000Z"),
      clientId: "client-a",
      actor: "client-a",
    });
    if (!created.ok) throw new Error("schedule refused");
    return created.schedule;
  }

  it("submits one job per schedule tick however many masters fire it at once", async () => {
    const three = await masters(2);
    const schedule = await tickSchedule();
    const dueAt = schedule.next_run_at ?? "";
    const fire = (store: Store) =>
      store.schedules.fire({
        scheduleId: schedule.id,
        dueAt,
        nextRunAt: new Date("2026-01-01T10:10:00.000Z"),
        job: jobParams({ type: "report", tags: { schedule: schedule.id } }),
      });
    const fired = await Promise.all(three.map((store) => fire(store)));
    expect(fired.filter((outcome) => outcome.fired)).toHaveLength(1);
    expect(await count("SELECT count(*) AS n FROM jobs WHERE type = 'report'")).toBe(1);
    expect(await t.store.schedules.get(schedule.id)).toMatchObject({ last_run_at: dueAt, next_run_at: "2026-01-01T10:10:00.000Z" });
    expect((await t.store.audit.list({ limit: 10, entityId: schedule.id, eventType: "schedule.fired" })).items).toHaveLength(1);
    // The same tick again, on any master: already moved on.
    expect(await fire(three[2] ?? t.store)).toEqual({ fired: false });
  });

  it("lets one of the masters that fire or skip one schedule tick at once have it", async () => {
    const three = await masters(2);
    const { id, next_run_at } = await tickSchedule();
    const dueAt = next_run_at ?? "";
    const nextRunAt = new Date("2026-01-01T10:10:00.000Z");
    for (let round = 0; round < 5; round++) {
      const skip = (store: Store) => store.schedules.skip({ scheduleId: id, dueAt, nextRunAt, reason: "submit_failed", message: "refused" });
      const fire = (store: Store) => store.schedules.fire({ scheduleId: id, dueAt, nextRunAt, job: jobParams({ type: "report", tags: { schedule: id } }) });
      const [a, b, c] = three as [Store, Store, Store];
      const outcomes = await Promise.all([skip(a), skip(b), fire(c)]);
      const winners = outcomes.filter((outcome) => ("skipped" in outcome ? outcome.skipped : outcome.fired));
      expect(winners).toHaveLength(1);
      const jobs = await count("SELECT count(*) AS n FROM jobs WHERE type = 'report'");
      const skips = await count("SELECT count(*) AS n FROM audit_log WHERE event_type = 'schedule.skipped' AND entity_id = ?", [id]);
      expect(jobs + skips).toBe(round + 1);
      // Back to the same tick for the next round.
      await t.query("UPDATE schedules SET next_run_at = ? WHERE id = ?", [dueAt, id]);
    }
  });

  describe("claims at once", () => {
    /** Running jobs per node, and of one type, as the database has them. */
    const runningOn = async () => new Map((await t.query("SELECT node_id, count(*) AS n FROM jobs WHERE status = 'running' GROUP BY node_id")).map((row) => [row.node_id, Number(row.n)]));

    /**
     * Rounds until every job completed: each node asks two masters at once (a worker that moved
     * on while its old long poll still waits), all nodes together; then each hands back its
     * oldest `finish` jobs through a third. `check` runs after each round's claims.
     */
    /** `n` nodes of `capacity`, registered through the masters in turn. */
    async function registerEach(stores: Store[], n: number, capacity: number) {
      const nodes: Node[] = [];
      for (let i = 0; i < n; i++) nodes.push(await register(stores[i % stores.length] ?? t.store, `node-${i}`, [], capacity));
      return nodes;
    }

    async function drain(stores: Store[], nodes: { id: string }[], jobs: number, finish: number, check: (held: Map<string, TakenJob[]>) => Promise<void>) {
      const handed: string[] = [];
      const held = new Map<string, TakenJob[]>(nodes.map((node) => [node.id, []]));
      let completed = 0;
      for (let round = 0; completed < jobs; round++) {
        expect(round).toBeLessThan(10 * jobs);
        const asks = nodes.flatMap((node, i) => [0, 1].map((k) => ({ node, store: stores[(i + k + round) % stores.length] ?? t.store })));
        const outcomes = await Promise.all(asks.map(({ node, store }) => store.jobs.claim({ nodeId: node.id, max: 3 })));
        outcomes.forEach((outcome, i) => {
          if (!outcome.ok) throw new Error(`claim refused: ${outcome.reason}`);
          const nodeId = asks[i]?.node.id ?? "";
          held.get(nodeId)?.push(...outcome.items);
          handed.push(...outcome.items.map((job) => `${job.id}/${job.attempt}`));
        });
        await check(held);
        await Promise.all(
          nodes.map(async (node, i) => {
            const done = held.get(node.id)?.splice(0, finish) ?? [];
            if (done.length === 0) return;
            const store = stores[(i + 2 + round) % stores.length] ?? t.store;
            const result = await store.jobs.report({ nodeId: node.id, reports: done.map((job) => ({ jobId: job.id, attempt: job.attempt, status: "completed" })) });
            expect(result.items.map((item) => item.verdict)).toEqual(done.map(() => "accepted"));
            completed += done.length;
          }),
        );
      }
      return handed;
    }

    it("never hands one job out twice nor a node more than its capacity, three masters claiming at once, round after round", async () => {
      const stores = await masters(2);
      const jobs = 90;
      await t.store.jobs.submit(Array.from({ length: jobs }, (_, i) => jobParams({ payload: { i } })));
      const nodes = await registerEach(stores, 6, 3);
      const handed = await drain(stores, nodes, jobs, 2, async (held) => {
        const running = await runningOn();
        for (const node of nodes) {
          expect(held.get(node.id)?.length).toBeLessThanOrEqual(3);
          expect(running.get(node.id) ?? 0).toBe(held.get(node.id)?.length);
        }
      });
      expect(handed).toHaveLength(jobs);
      expect(new Set(handed).size).toBe(jobs);
      expect(handed.every((key) => key.endsWith("/1"))).toBe(true);
      expect(await count("SELECT count(*) AS n FROM jobs WHERE status = 'completed'")).toBe(jobs);
      expect(await count("SELECT count(*) AS n FROM job_attempts")).toBe(jobs);
    });

    it("never runs more of a limited type than its max_running across three masters claiming at once", async () => {
      const stores = await masters(2);
      await t.store.types.set({ type: "render", maxRunning: 2, actor: null, since: new Date(0) });
      await t.store.jobs.submit(Array.from({ length: 40 }, (_, i) => jobParams({ type: i % 2 === 0 ? "render" : "echo" })));
      const nodes = await registerEach(stores, 6, 3);
      let most = 0;
      const handed = await drain(stores, nodes, 40, 1, async (held) => {
        const renders = [...held.values()].flat().filter((job) => job.type === "render").length;
        expect(renders).toBeLessThanOrEqual(2);
        expect(await count("SELECT count(*) AS n FROM jobs WHERE status = 'running' AND type = 'render'")).toBe(renders);
        most = Math.max(most, renders);
      });
      expect(new Set(handed).size).toBe(40);
      expect(most).toBe(2);
    });

    it("takes the next job past rows another transaction holds locked, without waiting for it", async () => {
      const [, other] = await masters(1);
      const jobs = [await submit(t.store), await submit(t.store), await submit(t.store)];
      const node = await register(t.store, "n", [], 5);
      const [{ schema } = { schema: "" }] = (await t.query("SELECT current_schema() AS schema")) as { schema: string }[];
      const locker = new pg.Client({ connectionString: TEST_DATABASE_URL, options: `-c search_path=${schema}` });
      await locker.connect();
      /** The claim's answer, or a failure if it waited a second: the lock is held far longer. */
      const promptly = async (store: Store | undefined) => {
        let timer: NodeJS.Timeout | undefined;
        const waited = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("the claim waited on a locked row")), 1000)));
        try {
          return (await Promise.race([claim(store ?? t.store, node.id, 1), waited])).map((job) => job.id);
        } finally {
          clearTimeout(timer);
        }
      };
      try {
        // Another master's claim in flight holds the head of the queue.
        await locker.query("BEGIN");
        await locker.query("SELECT id FROM jobs WHERE id = $1 FOR UPDATE", [jobs[0]?.id]);
        expect(await promptly(other)).toEqual([jobs[1]?.id]);
        await locker.query("SELECT id FROM jobs WHERE status = 'pending' FOR UPDATE");
        expect(await promptly(other)).toEqual([]);
        await locker.query("ROLLBACK");
        expect(await promptly(t.store)).toEqual([jobs[0]?.id]);
      } finally {
        await locker.end();
      }
    });

    it("holds a max_running set while another master's claim that read no limit is in flight", async () => {
      const [, other] = await masters(1);
      // A limited type beside it makes the claim lock that type's row after reading the gates:
      // another connection holding that row keeps the claim in flight, past its read.
      await t.store.types.set({ type: "other", maxRunning: 5, actor: null, since: new Date(0) });
      const renders = [await submit(t.store, { type: "render" }), await submit(t.store, { type: "render" })];
      await submit(t.store, { type: "other" });
      const first = await register(t.store, "first", [], 5);
      const second = await register(t.store, "second", [], 5, "worker-a", ["render"]);
      const [{ schema } = { schema: "" }] = (await t.query("SELECT current_schema() AS schema")) as { schema: string }[];
      const holder = new pg.Client({ connectionString: TEST_DATABASE_URL, options: `-c search_path=${schema}` });
      await holder.connect();
      const pid = async (blockedBy: number) =>
        Number((await t.query("SELECT pid FROM pg_stat_activity WHERE ? = ANY(pg_blocking_pids(pid))", [blockedBy]))[0]?.pid ?? 0);
      /** Until `work` has settled, or a session waits behind `blocker`: that session's pid (0 if none). */
      const settledOrBlocked = async (work: Promise<unknown>, blocker: number) => {
        let settled = false;
        void work.then(
          () => (settled = true),
          () => (settled = true),
        );
        for (;;) {
          const blocked = await pid(blocker);
          if (settled || blocked !== 0) return blocked;
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      };
      try {
        await holder.query("BEGIN");
        await holder.query("SELECT type FROM job_types WHERE type = 'other' FOR UPDATE");
        const holderPid = Number((await holder.query("SELECT pg_backend_pid() AS pid")).rows[0]?.pid);
        const inFlight = claim(t.store, first.id, 1);
        const claimPid = await settledOrBlocked(inFlight, holderPid);
        expect(claimPid).not.toBe(0);
        // The limit, then a claim on the other master: each may only come after the claim in flight.
        const limited = other?.types.set({ type: "render", maxRunning: 1, actor: null, since: new Date(0) }) ?? Promise.resolve();
        const setPid = await settledOrBlocked(limited, claimPid);
        const next = claim(other ?? t.store, second.id, 1);
        await settledOrBlocked(next, setPid === 0 ? claimPid : setPid);
        await holder.query("ROLLBACK");
        expect((await inFlight).map((job) => job.id)).toEqual([renders[0]?.id]);
        await limited;
        expect(await next).toEqual([]);
        expect(await count("SELECT count(*) AS n FROM jobs WHERE status = 'running' AND type = 'render'")).toBe(1);
      } finally {
        await holder.end();
      }
    });
  });

  describe("claims beside held rows", () => {
    /** Run `during` while another session holds the rows `lock` selects (FOR UPDATE), as a claim, a bulk cancel or an aging batch of another master would. */
    async function holding(lock: string, params: unknown[], during: () => Promise<void>): Promise<void> {
      const [{ schema } = { schema: "" }] = (await t.query("SELECT current_schema() AS schema")) as { schema: string }[];
      const holder = new pg.Client({ connectionString: TEST_DATABASE_URL, options: `-c search_path=${schema}` });
      await holder.connect();
      try {
        await holder.query("BEGIN");
        await holder.query(`${lock} FOR UPDATE`, params);
        await during();
      } finally {
        await holder.query("ROLLBACK").catch(() => undefined);
        await holder.end();
      }
    }

    it("takes a free job of another lane while every job of one lane is held", async () => {
      const [, other] = await masters(1);
      for (let i = 0; i < 10; i++) await submit(t.store, { type: "a" });
      const b1 = await submit(t.store, { type: "b" });
      const node = await register(t.store, "node", [], 5);
      await holding("SELECT id FROM jobs WHERE type = 'a'", [], async () => {
        expect((await claim(other ?? t.store, node.id, 5)).map((job) => job.id)).toEqual([b1.id]);
      });
    });

    it("never skips a free job for a worse one across lanes: priority first, whatever another claim holds", async () => {
      const [, other] = await masters(1);
      const a1 = await submit(t.store, { type: "a", priority: "high" });
      const a2 = await submit(t.store, { type: "a", priority: "high" });
      await submit(t.store, { type: "a", priority: "low" });
      const b1 = await submit(t.store, { type: "b", priority: "medium" });
      const node = await register(t.store, "node", [], 5);
      await holding("SELECT id FROM jobs WHERE id = $1", [a1.id], async () => {
        expect((await claim(other ?? t.store, node.id, 2)).map((job) => job.id)).toEqual([a2.id, b1.id]);
      });
    });
  });

  describe("results from two masters", () => {
    it("accepts one of the same result sent through two masters at once; the other is a duplicate", async () => {
      const [a, b] = await masters(1);
      await t.store.jobs.submit(Array.from({ length: 10 }, () => jobParams()));
      const node = await register(t.store, "n", [], 10);
      const claimed = await claim(t.store, node.id);
      for (const job of claimed) {
        const report = { nodeId: node.id, reports: [{ jobId: job.id, attempt: 1, status: "completed" as const, result: { ok: true } }] };
        const answers = await Promise.all([a?.jobs.report(report), b?.jobs.report(report)]);
        expect(answers.map((answer) => answer?.items[0]?.verdict).sort()).toEqual(["accepted", "duplicate"]);
        expect(await t.store.jobs.get(job.id)).toMatchObject({ status: "completed", result: { ok: true } });
      }
      expect(await count("SELECT count(*) AS n FROM job_attempts WHERE outcome = 'completed'")).toBe(10);
    });

    it("keeps one outcome when a job's node says completed through one master and failed through another at once", async () => {
      const [a, b] = await masters(1);
      await t.store.jobs.submit(Array.from({ length: 10 }, () => jobParams({ maxRetries: 0 })));
      const node = await register(t.store, "n", [], 10);
      for (const job of await claim(t.store, node.id)) {
        const [done, failed] = await Promise.all([
          a?.jobs.report({ nodeId: node.id, reports: [{ jobId: job.id, attempt: 1, status: "completed" }] }),
          b?.jobs.report({ nodeId: node.id, reports: [{ jobId: job.id, attempt: 1, status: "failed", error: { message: "boom", retryable: false } }] }),
        ]);
        const verdicts = [done?.items[0]?.verdict, failed?.items[0]?.verdict];
        expect([...verdicts].sort()).toEqual(["accepted", "stale_attempt"]);
        expect((await t.store.jobs.get(job.id))?.status).toBe(verdicts[0] === "accepted" ? "completed" : "failed");
      }
    });

    it("takes the current attempt's result and calls the old lease's stale, when both arrive through two masters at once", async () => {
      const [a, b] = await masters(1);
      const jobs = [await submit(t.store, { timeoutS: 1 }), await submit(t.store, { timeoutS: 1 })];
      const first = await register(t.store, "first", [], 5);
      const second = await register(t.store, "second", [], 5);
      await claim(t.store, first.id);
      t.clock.advanceSeconds(2 + 30 + 1);
      expect(await t.store.jobs.rescueStalled({ limit: 10 })).toHaveLength(2);
      expect((await claim(t.store, second.id)).map((job) => job.attempt)).toEqual([2, 2]);
      for (const job of jobs) {
        const [late, current] = await Promise.all([
          a?.jobs.report({ nodeId: first.id, reports: [{ jobId: job.id, attempt: 1, status: "completed", result: "old" }] }),
          b?.jobs.report({ nodeId: second.id, reports: [{ jobId: job.id, attempt: 2, status: "completed", result: "new" }] }),
        ]);
        expect(late?.items[0]?.verdict).toBe("stale_attempt");
        expect(current?.items[0]?.verdict).toBe("accepted");
        expect(await t.store.jobs.get(job.id)).toMatchObject({ status: "completed", attempt: 2, result: "new" });
      }
    });
  });
});
