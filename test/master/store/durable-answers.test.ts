// A heartbeat with nothing to write is answered from a read (no transaction, no
// commit, no flush of its own), yet never tells a node of anything a crash could
// undo. One that writes writes soft state only, and waits for no flush of its own.
// Seen here through a flush the test holds; a claim, which writes, waits for it.
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { defaultQueuePolicy } from "../../../master/queue/policy.js";
import { SqliteDatabase } from "../../../master/store/sqlite/database.js";
import { createSqliteStore } from "../../../master/store/sqlite/index.js";
import type { Store } from "../../../master/store/types.js";
import { FakeClock } from "../../helpers/clock.js";
import { heldFlushes, turn } from "../../helpers/flushes.js";
import { claim, register, submit } from "../../helpers/store.js";
import { removeTempDirs, tempDir } from "../../helpers/temp.js";

/** Whether `promise` settles within a few turns of the event loop. */
async function settlesSoon(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  void promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let i = 0; i < 5 && !settled; i++) await turn();
  return settled;
}

describe("answers that tell of writes", () => {
  const policy = defaultQueuePolicy(() => 0.5);
  let store: Store;
  let clock: FakeClock;
  let flushes: ReturnType<typeof heldFlushes>;

  beforeEach(() => {
    flushes = heldFlushes(false);
    clock = new FakeClock();
    const path = join(tempDir(), "gaffer.db");
    store = createSqliteStore(new SqliteDatabase({ path, syncOffThread: true, fdatasync: flushes.fdatasync }), { path, clock, policy });
  });
  afterEach(async () => {
    flushes.releaseAll();
    await store.close();
    removeTempDirs();
  });

  /** Two cancels in one group (a lone write may be flushed on the spot, not by the fdatasync above), their flush held. */
  async function cancelsCommittedNotFlushed(ids: string[]): Promise<void> {
    flushes.hold(true);
    for (const id of ids) void store.jobs.cancel({ id, actor: null });
    while (flushes.calls.length === 0) await turn();
  }

  it.each([
    ["only reads", false],
    ["writes (its last_heartbeat is due)", true],
  ])("a heartbeat that %s waits until every commit it could have read is on disk", async (_, due) => {
    const job = await submit(store);
    const other = await submit(store);
    const node = await register(store);
    await claim(store, node.id);
    if (due) clock.advance(policy.heartbeatWriteMs + 1);
    await cancelsCommittedNotFlushed([job.id, other.id]);
    // The cancels are committed, their flush held: a heartbeat that reads them must not tell the node yet.
    const running = [{ jobId: job.id, attempt: 1 }, { jobId: other.id, attempt: 1 }];
    const beat = store.nodes.heartbeat({ nodeId: node.id, running });
    expect(await settlesSoon(beat)).toBe(false);
    flushes.releaseAll();
    expect(await beat).toEqual({
      ok: true,
      status: "online",
      cancel: [job, other].map((canceled) => ({ job_id: canceled.id, attempt: 1, reason: "canceled" })),
    });
  });

  it("a heartbeat that writes waits for no flush of its own, nor does a heartbeat after it", async () => {
    const job = await submit(store);
    const nodes = [await register(store, "node-1"), await register(store, "node-2")];
    await claim(store, nodes[0]?.id ?? "");
    clock.advance(policy.heartbeatWriteMs + 1);
    const third = await register(store, "node-3");
    flushes.hold(true);
    // Both nodes' last_heartbeat is due: two writes at once (a group of two would wait for the held flush).
    const beats = nodes.map((node, i) => store.nodes.heartbeat({ nodeId: node.id, running: i === 0 ? [{ jobId: job.id, attempt: 1 }] : [] }));
    expect(await settlesSoon(Promise.all(beats))).toBe(true);
    expect(await Promise.all(beats)).toEqual([
      { ok: true, status: "online", cancel: [] },
      { ok: true, status: "online", cancel: [] },
    ]);
    for (const node of nodes) expect((await store.nodes.get(node.id))?.last_heartbeat).toBe(clock.now().toISOString());
    // A heartbeat that reads after those commits does not wait for their flush either.
    expect(await settlesSoon(store.nodes.heartbeat({ nodeId: third.id, running: [] }))).toBe(true);
    expect(flushes.calls).toHaveLength(0);
  });

  it("a claim that takes jobs answers only after they are on disk", async () => {
    const jobs = [await submit(store), await submit(store)];
    const first = await register(store, "node-1", [], 1);
    const second = await register(store, "node-2", [], 1);
    flushes.hold(true);
    // Two claims in one group, so that their flush is the held one.
    const claims = [store.jobs.claim({ nodeId: first.id, max: 1 }), store.jobs.claim({ nodeId: second.id, max: 1 })];
    expect(await settlesSoon(Promise.race(claims))).toBe(false);
    flushes.releaseAll();
    const taken = (await Promise.all(claims)).flatMap((outcome) => (outcome.ok ? outcome.items.map((item) => item.id) : []));
    expect(taken.sort()).toEqual(jobs.map((job) => job.id).sort());
  });
});
