// The store says what it committed (Store.onCommitted): once per transaction, after the
// commit, never for a write that was undone. The dispatcher and the timers are woken by
// it alone: no route wakes anything.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Dispatcher } from "../../../master/queue/dispatcher.js";
import type { Committed } from "../../../master/store/types.js";
import { heldFlushes, turn } from "../../helpers/flushes.js";
import { claim, dialects, jobParams, register, submit, type SqliteTestStore, type TestStore } from "../../helpers/store.js";
import { removeTempDirs } from "../../helpers/temp.js";

describe.each(dialects)("commit signal ($name)", (dialect) => {
  let t: TestStore;
  let heard: Committed[];
  beforeEach(async () => {
    t = await dialect.open();
    heard = [];
    t.store.onCommitted((change) => heard.push(change));
  });
  afterEach(async () => {
    await t.store.close();
    removeTempDirs();
  });

  it("tells a submission of ready jobs as claimable, of delayed jobs as scheduled", async () => {
    await t.store.jobs.submit([jobParams(), jobParams()]);
    expect(heard).toEqual([{ claimable: true, scheduled: false, schedules: false, finished: [] }]);
    heard = [];
    await submit(t.store, { runAt: new Date(t.clock.now().getTime() + 60_000) });
    expect(heard).toEqual([{ claimable: false, scheduled: true, schedules: false, finished: [] }]);
  });

  it("tells nothing for writes that give a waiting claim nothing", async () => {
    const job = await submit(t.store);
    const node = await register(t.store);
    heard = [];
    await t.store.jobs.setPriority({ id: job.id, actor: "admin", priority: "high" });
    await claim(t.store, node.id);
    await t.store.nodes.heartbeat({ nodeId: node.id, running: [{ jobId: job.id, attempt: 1 }] });
    expect(heard).toEqual([]);
    // A refused submission (an unknown dependency) commits nothing.
    const refused = await t.store.jobs.submit([jobParams({ dependsOn: ["00000000-0000-4000-8000-000000000000"] })]);
    expect(refused.ok).toBe(false);
    expect(heard).toEqual([]);
  });

  it("tells an accepted result as claimable (its slot is free) and a retry with backoff as scheduled", async () => {
    const [done, failing] = [await submit(t.store), await submit(t.store, { maxRetries: 1 })];
    const node = await register(t.store, "n", [], 2);
    await claim(t.store, node.id);
    heard = [];
    await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: done.id, attempt: 1, status: "completed" }] });
    expect(heard).toEqual([{ claimable: true, scheduled: false, schedules: false, finished: [done.id] }]);
    heard = [];
    await t.store.jobs.report({
      nodeId: node.id,
      reports: [{ jobId: failing.id, attempt: 1, status: "failed", error: { message: "boom", retryable: true } }],
    });
    expect(heard).toEqual([{ claimable: true, scheduled: true, schedules: false, finished: [] }]);
    heard = [];
    // A repeated report changes nothing.
    await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: done.id, attempt: 1, status: "completed" }] });
    expect(heard).toEqual([]);
  });

  it("tells which jobs reached a final state: canceled, and failed with the job they depended on", async () => {
    const parent = await submit(t.store);
    const child = await submit(t.store, { dependsOn: [parent.id] });
    const grandchild = await submit(t.store, { dependsOn: [child.id] });
    heard = [];
    await t.store.jobs.cancel({ id: parent.id, actor: "c" });
    expect(heard).toEqual([{ claimable: false, scheduled: false, schedules: false, finished: [parent.id, child.id, grandchild.id] }]);
  });

  it("tells promotions, resumed nodes and schedule changes", async () => {
    await submit(t.store, { runAt: new Date(t.clock.now().getTime() + 1000) });
    const node = await register(t.store);
    await t.store.nodes.drain({ id: node.id, actor: "admin" });
    heard = [];
    t.clock.advance(1000);
    await t.store.jobs.promoteScheduled();
    await t.store.nodes.resume({ id: node.id, actor: "admin" });
    expect(heard).toEqual([
      { claimable: true, scheduled: false, schedules: false, finished: [] },
      { claimable: true, scheduled: false, schedules: false, finished: [] },
    ]);
    heard = [];
    const created = await t.store.schedules.create({
      name: "nightly",
      cron: "0 3 * * *",
      timezone: "UTC",
      job: { type: "echo" },
      enabled: true,
      nextRunAt: new Date(t.clock.now().getTime() + 60_000),
      clientId: "c",
      actor: "c",
    });
    if (!created.ok) throw new Error("schedule refused");
    await t.store.schedules.delete({ id: created.schedule.id, actor: "c" });
    expect(heard).toEqual([
      { claimable: false, scheduled: false, schedules: true, finished: [] },
      { claimable: false, scheduled: false, schedules: true, finished: [] },
    ]);
  });

  it.runIf(dialect.name === "sqlite")("tells each commit once, and a rolled-back write never, when a group is undone and replayed", async () => {
    const { store, database } = t as SqliteTestStore;
    // One tick: two submissions and a write that throws. The group is undone; each item runs again alone.
    const first = store.jobs.submit([jobParams()]);
    const failing = database.grouped(() => {
      database.sqlite.prepare("INSERT INTO settings (key, value, updated_at) VALUES ('x', 'y', 'z')").run();
      throw new Error("an unexpected failure in the same group");
    });
    const second = store.jobs.submit([jobParams({ runAt: new Date(t.clock.now().getTime() + 60_000) })]);
    await expect(failing).rejects.toThrow("unexpected failure");
    await Promise.all([first, second]);
    expect(heard).toEqual([
      { claimable: true, scheduled: false, schedules: false, finished: [] },
      { claimable: false, scheduled: true, schedules: false, finished: [] },
    ]);
  });

  it.runIf(dialect.name === "sqlite")("neither replays committed work nor goes deaf when a callback throws after COMMIT", async () => {
    const { database } = t as SqliteTestStore;
    let runs = 0;
    await database.grouped(() => {
      runs += 1;
      database.sqlite.prepare("INSERT INTO settings (key, value, updated_at) VALUES ('cb', 'v', 'now')").run();
      database.onCommit(() => {
        throw new Error("a broken callback");
      });
    });
    expect(runs).toBe(1);
    heard = [];
    await submit(t.store);
    await submit(t.store);
    expect(heard).toHaveLength(2);
  });

  it("keeps telling the other listeners when one throws, and stops telling one that left", async () => {
    const others: Committed[] = [];
    t.store.onCommitted(() => {
      throw new Error("a broken listener");
    });
    const leave = t.store.onCommitted((change) => others.push(change));
    await submit(t.store);
    leave();
    await submit(t.store);
    expect(others).toHaveLength(1);
    expect(heard).toHaveLength(2);
  });
});

describe.each(dialects)("waiting claims woken by commits ($name)", (dialect) => {
  let t: TestStore;
  afterEach(async () => {
    await t.store.close();
    removeTempDirs();
  });

  // SQLite's one flush for a group: PostgreSQL flushes in its own COMMIT.
  it.runIf(dialect.name === "sqlite")("answers a waiting claim with a job submitted later, woken by the commit alone, in the submission's flush", async () => {
    const flushes = heldFlushes(false);
    let syncs = 0;
    t = await dialect.open({
      fdatasync: (fd) => {
        syncs += 1;
        return flushes.fdatasync(fd);
      },
    });
    const dispatcher = new Dispatcher({ jobs: t.store.jobs, nodes: t.store.nodes });
    t.store.onCommitted((change) => {
      if (change.claimable) dispatcher.notify();
    });
    const node = await register(t.store);
    const waiting = dispatcher.claim({ nodeId: node.id, max: 1, waitMs: 10_000 });
    await turn();
    await turn();
    expect(dispatcher.waiting).toBe(1);
    // Hold the flush: the submission and the claim it woke both wait for the one fdatasync.
    flushes.hold(true);
    syncs = 0;
    const submitting = t.store.jobs.submit([jobParams({ payload: { n: 1 } })]);
    let answered = false;
    void waiting.then(() => (answered = true));
    for (let i = 0; i < 5; i += 1) await turn();
    expect(flushes.calls).toHaveLength(1);
    expect(answered).toBe(false);
    flushes.releaseAll();
    const outcome = await submitting;
    const claimed = await waiting;
    if (!outcome.ok || !claimed.ok) throw new Error("refused");
    expect(claimed.items.map((job) => job.id)).toEqual([outcome.items[0]?.job.id]);
    expect(syncs).toBe(1);
    dispatcher.close();
  });
});

describe.each(dialects.filter((dialect) => dialect.name === "postgres"))("commits of other masters ($name)", (dialect) => {
  let t: TestStore;
  afterEach(async () => {
    await t.store.close();
  });

  it("wakes a claim waiting on one master with a job submitted through another, by NOTIFY alone", async () => {
    t = await dialect.open();
    const other = await t.reopen();
    try {
      const dispatcher = new Dispatcher({ jobs: t.store.jobs, nodes: t.store.nodes });
      const heard: Committed[] = [];
      t.store.onCommitted((change) => {
        heard.push(change);
        if (change.claimable) dispatcher.notify();
      });
      const node = await register(t.store);
      heard.length = 0;
      const waiting = dispatcher.claim({ nodeId: node.id, max: 1, waitMs: 10_000 });
      // Its first look (a round trip to the server) found nothing: it waits.
      await vi.waitFor(() => expect(dispatcher.waiting).toBe(1));
      const started = Date.now();
      const outcome = await other.jobs.submit([jobParams({ payload: { n: 1 } })]);
      const claimed = await waiting;
      if (!outcome.ok || !claimed.ok) throw new Error("refused");
      expect(claimed.items.map((job) => job.id)).toEqual([outcome.items[0]?.job.id]);
      // Heard through the other master's NOTIFY, well before the claim's 10 s wait ran out.
      expect(heard[0]).toEqual({ claimable: true, scheduled: false, schedules: false, finished: [] });
      expect(Date.now() - started).toBeLessThan(5_000);
      dispatcher.close();
    } finally {
      await other.close();
    }
  });

  it("tells another master which jobs finished, and this master its own commits once", async () => {
    t = await dialect.open();
    const other = await t.reopen();
    try {
      const here: Committed[] = [];
      const there: Committed[] = [];
      t.store.onCommitted((change) => here.push(change));
      const heardThere = new Promise<void>((resolve) =>
        other.onCommitted((change) => {
          there.push(change);
          if (change.finished.length > 0) resolve();
        }),
      );
      const job = await submit(t.store);
      await t.store.jobs.cancel({ id: job.id, actor: null });
      await heardThere;
      expect(here).toEqual([
        { claimable: true, scheduled: false, schedules: false, finished: [] },
        { claimable: false, scheduled: false, schedules: false, finished: [job.id] },
      ]);
      expect(there).toEqual(here);
    } finally {
      await other.close();
    }
  });
});
