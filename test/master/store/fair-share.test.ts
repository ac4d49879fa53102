// Fair share between clients (API.md §5a, GAFFER_FAIR_SHARE=clients) on every store: within
// one effective priority the next job goes to the client with the fewest jobs running (ties:
// the oldest head), FIFO within each client; priorities, lanes, paused and limited types as
// without it. And the tables behind it always equal what `jobs` says.
import fc from "fast-check";
import { sql } from "kysely";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { whyWaiting } from "../../../master/queue/why.js";
import { PostgresDatabase } from "../../../master/store/postgres/database.js";
import { chooseFair } from "../../../master/store/postgres/fair-share.js";
import type { Store, SubmitJobParams } from "../../../master/store/types.js";
import { claim, dialects, jobParams, register, submit, TEST_DATABASE_URL, type TestStore, type TestStoreOptions } from "../../helpers/store.js";
import { removeTempDirs } from "../../helpers/temp.js";

async function submitMany(store: Store, count: number, overrides: Partial<SubmitJobParams>) {
  const ids: string[] = [];
  for (let done = 0; done < count; done += 1000) {
    const outcome = await store.jobs.submit(Array.from({ length: Math.min(1000, count - done) }, () => jobParams(overrides)));
    if (!outcome.ok) throw new Error(`submit refused: ${outcome.reason}`);
    ids.push(...outcome.items.map((item) => item.job.id));
  }
  return ids;
}

/** The fair-share tables, and what a GROUP BY over jobs says they must be. */
async function tables(t: TestStore) {
  const sort = (rows: Record<string, unknown>[]) => rows.map((row) => JSON.stringify(Object.values(row).map((value) => Number.isFinite(Number(value)) ? Number(value) : value))).sort();
  const [queue, clients, expectedQueue, expectedClients] = await Promise.all([
    t.query("SELECT lane, effective_priority, client_id, head_seq, pending, running FROM fair_queue"),
    t.query("SELECT client_id, running FROM fair_clients WHERE running > 0"),
    t.query(`SELECT j.lane, j.effective_priority, j.client_id, min(j.seq) AS head_seq, count(*) AS pending,
               (SELECT count(*) FROM jobs r WHERE r.status = 'running' AND r.client_id = j.client_id) AS running
             FROM jobs j WHERE j.status = 'pending' GROUP BY j.lane, j.effective_priority, j.client_id`),
    t.query("SELECT client_id, count(*) AS running FROM jobs WHERE status = 'running' GROUP BY client_id"),
  ]);
  return { actual: { queue: sort(queue), clients: sort(clients) }, expected: { queue: sort(expectedQueue), clients: sort(expectedClients) } };
}

async function expectTablesExact(t: TestStore) {
  const { actual, expected } = await tables(t);
  expect(actual).toEqual(expected);
}

describe.each(dialects)("fair share ($name)", (dialect) => {
  let t: TestStore;
  const open = async (options: TestStoreOptions = {}) => {
    t = await dialect.open(options);
    await t.store.jobs.setFairShare("clients");
    return t;
  };
  afterEach(async () => {
    await t.store.close();
    removeTempDirs();
  });
  const clientOf = async (ids: string[]) => Promise.all(ids.map(async (id) => (await t.store.jobs.get(id))?.client_id));

  it("does not make a client's 10 jobs wait behind another's 2,000 of the same priority", async () => {
    await open();
    const many = await submitMany(t.store, 2000, { clientId: "big" });
    const few = await submitMany(t.store, 10, { clientId: "small" });
    const node = await register(t.store, "n", [], 100);
    const items = await claim(t.store, node.id, 20);
    // Turn about: the big client's oldest head goes first, then one each.
    expect(items.map((item) => item.id).sort()).toEqual([...many.slice(0, 10), ...few].sort());
    await expectTablesExact(t);
  });

  it("is strict FIFO when off, and the mode turned off leaves its tables empty", async () => {
    t = await dialect.open();
    expect(await t.store.jobs.fairShare()).toBe("off");
    const many = await submitMany(t.store, 30, { clientId: "big" });
    await submitMany(t.store, 5, { clientId: "small" });
    const node = await register(t.store, "n", [], 100);
    expect((await claim(t.store, node.id, 10)).map((item) => item.id)).toEqual(many.slice(0, 10));
    expect(await t.store.jobs.setFairShare("clients")).toEqual({ from: "off" });
    expect(await t.store.jobs.fairShare()).toBe("clients");
    await expectTablesExact(t);
    expect((await t.query("SELECT count(*) AS n FROM fair_queue"))[0]?.n).not.toBe(0);
    expect(await t.store.jobs.setFairShare("off")).toEqual({ from: "clients" });
    expect(await t.query("SELECT * FROM fair_queue")).toEqual([]);
    expect(await t.query("SELECT * FROM fair_clients")).toEqual([]);
    expect(await t.query("SELECT value FROM settings WHERE key = 'fair_share'")).toEqual([{ value: "off" }]);
    // Nothing keeps them while off.
    await submitMany(t.store, 3, { clientId: "third" });
    expect(await t.query("SELECT * FROM fair_queue")).toEqual([]);
  });

  // One master per SQLite file: several masters are PostgreSQL's (API.md §12).
  it.runIf(dialect.name === "postgres")("hands each job out once to claims of several masters at once, and stays exact", async () => {
    await open();
    const second = await t.reopen();
    try {
      for (const client of ["a", "b", "c", "d"]) await submitMany(t.store, 30, { clientId: client });
      const nodes = await Promise.all(Array.from({ length: 6 }, (_, i) => register(t.store, `n${i}`, [], 100)));
      const outcomes = await Promise.all(nodes.map((node, i) => (i % 2 === 0 ? t.store : second).jobs.claim({ nodeId: node.id, max: 10 })));
      const ids = outcomes.flatMap((outcome) => (outcome.ok ? outcome.items.map((item) => item.id) : []));
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids.length).toBe(60);
      await expectTablesExact(t);
      // Shared: no client ran more than one job beyond another.
      const running = await t.query("SELECT client_id, count(*) AS n FROM jobs WHERE status = 'running' GROUP BY client_id");
      const counts = running.map((row) => Number(row.n));
      expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(6);
    } finally {
      await second.close();
    }
  });

  // Another master's claim in flight holds all of a's high jobs: this claim's fill gives the
  // one job to a (the older head), locks none of a's, and must fill the priority again
  // without a rather than go down to low while b's high job is free. Then a's low job is
  // a's turn at low as if nothing were held.
  it.runIf(dialect.name === "postgres")("takes another client's job of the same priority when the chosen client's are all held by another claim", async () => {
    await open();
    const held = await submitMany(t.store, 2, { clientId: "a", priority: "high" });
    const [aLow] = await submitMany(t.store, 1, { clientId: "a", priority: "low" });
    const [b] = await submitMany(t.store, 1, { clientId: "b", priority: "high" });
    const [cLow] = await submitMany(t.store, 1, { clientId: "c", priority: "low" });
    const node = await register(t.store, "n", [], 5);
    const [{ schema } = { schema: "" }] = (await t.query("SELECT current_schema() AS schema")) as { schema: string }[];
    const locker = new pg.Client({ connectionString: TEST_DATABASE_URL, options: `-c search_path=${schema}` });
    await locker.connect();
    try {
      await locker.query("BEGIN");
      await locker.query("SELECT id FROM jobs WHERE id = ANY($1) FOR UPDATE", [held]);
      expect((await claim(t.store, node.id, 1)).map((item) => item.id)).toEqual([b]);
      expect((await claim(t.store, node.id, 3)).map((item) => item.id).sort()).toEqual([aLow, cLow].sort());
      await locker.query("ROLLBACK");
    } finally {
      await locker.end();
    }
    await expectTablesExact(t);
  });

  // Two statements that each move jobs of clients a and b: the first meets a's job first (seq
  // order), the second b's. Row triggers locked a's fair_clients row then b's in the first and
  // b's then a's in the second: a third session holding a line of b's makes the second stop
  // between the two, and the two statements deadlocked (40P01). Written in client order per
  // statement, the first waits for the second, which finishes once the line is free.
  it.runIf(dialect.name === "postgres")("writes each statement's fair-share rows in client order: two statements over clients a, b and b, a do not deadlock", async () => {
    await open();
    const [a1] = await submitMany(t.store, 1, { clientId: "a" });
    const [b1] = await submitMany(t.store, 1, { clientId: "b" });
    const [b2] = await submitMany(t.store, 1, { clientId: "b" });
    const [a2] = await submitMany(t.store, 1, { clientId: "a" });
    await submitMany(t.store, 1, { clientId: "b", priority: "low" });
    const [{ schema } = { schema: "" }] = (await t.query("SELECT current_schema() AS schema")) as { schema: string }[];
    const [{ low } = { low: 0 }] = (await t.query("SELECT effective_priority AS low FROM jobs WHERE client_id = 'b' ORDER BY seq DESC LIMIT 1")) as { low: number }[];
    const session = async () => {
      const client = new pg.Client({ connectionString: TEST_DATABASE_URL, options: `-c search_path=${schema}` });
      await client.connect();
      await client.query("BEGIN");
      const [row] = (await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows;
      return { client, pid: row?.pid ?? 0 };
    };
    const [holder, first, second] = [await session(), await session(), await session()];
    const waiting = async (pid: number) => {
      for (;;) {
        const { rows } = await holder.client.query<{ wait: string | null }>("SELECT wait_event_type AS wait FROM pg_stat_activity WHERE pid = $1", [pid]);
        if (rows[0]?.wait === "Lock") return;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    };
    try {
      await holder.client.query("SELECT 1 FROM fair_queue WHERE client_id = 'b' AND effective_priority = $1 FOR UPDATE", [low]);
      // b2 then a2 (seq order) down to low: stops at b's low line.
      const moved = second.client.query("UPDATE jobs SET effective_priority = $1 WHERE id = ANY($2)", [low, [b2, a2]]).then(() => true, (error: { code?: string }) => error.code ?? "error");
      await waiting(second.pid);
      // a1 then b1 up.
      const raised = first.client.query("UPDATE jobs SET effective_priority = effective_priority + 1 WHERE id = ANY($1)", [[a1, b1]]).then(() => true, (error: { code?: string }) => error.code ?? "error");
      await waiting(first.pid);
      await holder.client.query("COMMIT");
      const movedOutcome = await moved;
      if (movedOutcome === true) await second.client.query("COMMIT");
      const raisedOutcome = await raised;
      if (raisedOutcome === true) await first.client.query("COMMIT");
      expect([movedOutcome, raisedOutcome]).toEqual([true, true]);
    } finally {
      for (const { client } of [holder, first, second]) {
        await client.query("ROLLBACK").catch(() => undefined);
        await client.end();
      }
    }
    await expectTablesExact(t);
  });

  // A claim reads fair_queue, then the jobs of the clients it read, in two statements (two
  // snapshots). Another master's claim that commits between them takes a's high job: a's line
  // comes back empty, and b's high job (past the read window of one row) must go before c's
  // low one: the claim reads the priority again without a, rather than go down to low.
  it.runIf(dialect.name === "postgres")("reads a priority again when another claim empties a line between its read of fair_queue and of the jobs", async () => {
    await open();
    const [aHigh] = await submitMany(t.store, 1, { clientId: "a", priority: "high" });
    const [bHigh] = await submitMany(t.store, 1, { clientId: "b", priority: "high" });
    await submitMany(t.store, 1, { clientId: "c", priority: "low" });
    const other = await register(t.store, "other", [], 5);
    const [{ schema } = { schema: "" }] = (await t.query("SELECT current_schema() AS schema")) as { schema: string }[];
    const lanes = (await t.query("SELECT id FROM lanes")).map((row) => Number(row.id));
    const db = new PostgresDatabase({ url: TEST_DATABASE_URL, schema, max: 1 });
    let statements = 0;
    let between: string[] = [];
    try {
      const chosen = await db.transaction(async (tx) => {
        const hooked = tx.db.withPlugin({
          transformQuery: (args) => args.node,
          transformResult: async (args) => {
            statements += 1;
            // After the claim's first read (fair_queue): the other master claims one job and commits.
            if (statements === 1) between = (await claim(t.store, other.id, 1)).map((item) => item.id);
            return args.result;
          },
        });
        const seqs = await chooseFair({ ...tx, db: hooked }, lanes, 1);
        return (await sql<{ id: string }>`SELECT id FROM jobs WHERE seq = ANY(${seqs}::bigint[])`.execute(tx.db)).rows.map((row) => row.id);
      });
      expect(between).toEqual([aHigh]);
      expect(chosen).toEqual([bHigh]);
    } finally {
      await db.close();
    }
  });

  it("says why a job waits for other clients, and calls the next one's job next", async () => {
    await open();
    const node = await register(t.store, "n", [], 100);
    await submitMany(t.store, 3, { clientId: "a" });
    expect(await claim(t.store, node.id, 2)).toHaveLength(2); // a runs 2
    const [b1, b2] = await submitMany(t.store, 2, { clientId: "b" });
    const [c1] = await submitMany(t.store, 1, { clientId: "c" });
    const a = (await t.query("SELECT id FROM jobs WHERE status = 'pending' AND client_id = 'a'"))[0]?.id as string;
    const answer = async (id: string | undefined) => {
      const facts = await t.store.jobs.whyFacts(id ?? "");
      if (!facts) throw new Error("no job");
      return whyWaiting({ ...facts, paused: false });
    };
    // b is next (none running, oldest head); c waits for b; a (2 running) for both.
    expect(await answer(b1)).toMatchObject({ ready: true, jobs_ahead: 0, reasons: [{ code: "queued" }] });
    expect(await answer(b2)).toMatchObject({ ready: true, jobs_ahead: null });
    expect(await answer(c1)).toMatchObject({ ready: false, jobs_ahead: null, reasons: [{ code: "fair_share", client_id: "c", running: 0, clients_ahead: 1 }, { code: "queued" }] });
    expect(await answer(a)).toMatchObject({ ready: false, reasons: [{ code: "fair_share", client_id: "a", running: 2, clients_ahead: 2 }, { code: "queued" }] });
    expect((await claim(t.store, node.id, 1)).map((item) => item.id)).toEqual([b1]);
    expect(await answer(c1)).toMatchObject({ ready: true, jobs_ahead: 0 });
  });

  it("keeps the mode in the database: a store opened again claims by it", async () => {
    await open();
    const second = await t.reopen();
    try {
      expect(await second.jobs.fairShare()).toBe("clients");
    } finally {
      await second.close();
    }
  });

  it("gives the next job to the client with the fewest running, even with a younger head", async () => {
    await open();
    const node = await register(t.store, "n", [], 100);
    await submitMany(t.store, 2, { clientId: "a" });
    expect(await claim(t.store, node.id, 2)).toHaveLength(2); // a runs 2
    const a = await submitMany(t.store, 3, { clientId: "a" });
    const b = await submitMany(t.store, 3, { clientId: "b" });
    const c = await submitMany(t.store, 1, { clientId: "c" });
    // b and c run none: b (older head), c, then b again (1 vs a's 2), then a and b tie at 2: a's head is older.
    const items = await claim(t.store, node.id, 5);
    expect(items.map((item) => item.id).sort()).toEqual([b[0], c[0], b[1], a[0], b[2]].sort());
    await expectTablesExact(t);
  });

  // The property test's counterexample (seed -1763145810): the claim read each lane's first
  // `want` fair_queue rows (the jobs still to fill: 1 at low) in (running, head) order, but
  // a's high jobs, given by the same claim, put a behind b at low; lane t2's first row was
  // a's, and b was never read.
  it("counts what the claim gave at a higher priority: the next client is read past those it moved back", async () => {
    await open();
    const node = await register(t.store, "n", [], 3);
    const high = await submitMany(t.store, 2, { clientId: "a", priority: "high", type: "t1" });
    await submitMany(t.store, 1, { clientId: "a", priority: "low", type: "t2" });
    const [b] = await submitMany(t.store, 1, { clientId: "b", priority: "low", type: "t2" });
    await submitMany(t.store, 1, { clientId: "a", priority: "low", type: "t1" });
    const items = await claim(t.store, node.id, 3);
    expect(items.map((item) => item.id).sort()).toEqual([...high, b].sort());
    await expectTablesExact(t);
  });

  it("breaks ties by the oldest head and keeps FIFO within each client", async () => {
    await open();
    const node = await register(t.store, "n", [], 100);
    const a1 = await submit(t.store, { clientId: "a" });
    const b1 = await submit(t.store, { clientId: "b" });
    const a2 = await submit(t.store, { clientId: "a" });
    const a3 = await submit(t.store, { clientId: "a" });
    const b2 = await submit(t.store, { clientId: "b" });
    const order: string[] = [];
    for (let i = 0; i < 5; i++) for (const item of await claim(t.store, node.id, 1)) order.push(item.id);
    expect(order).toEqual([a1.id, b1.id, a2.id, b2.id, a3.id]);
  });

  it("puts priorities first, then shares each priority", async () => {
    await open();
    const node = await register(t.store, "n", [], 100);
    const low = await submit(t.store, { clientId: "b", priority: "low" });
    await submitMany(t.store, 3, { clientId: "a", priority: "high" });
    const bHigh = await submit(t.store, { clientId: "b", priority: "high" });
    const first = await claim(t.store, node.id, 2);
    expect(first.map((item) => item.priority)).toEqual(["high", "high"]);
    expect(first.map((item) => item.id)).toContain(bHigh.id);
    const rest = await claim(t.store, node.id, 10);
    expect(rest.map((item) => item.id).at(-1)).toBe(low.id);
    expect(await clientOf(rest.slice(0, 2).map((item) => item.id))).toEqual(["a", "a"]);
  });

  it("holds back nothing for paused or limited types, and keeps to a node's lanes", async () => {
    await open();
    await submitMany(t.store, 5, { clientId: "a", type: "paused" });
    await submitMany(t.store, 5, { clientId: "b", type: "limited" });
    const gpu = await submitMany(t.store, 2, { clientId: "c", requires: ["gpu"] });
    const plain = await submitMany(t.store, 3, { clientId: "d" });
    await t.store.types.set({ type: "paused", paused: true, actor: null, since: new Date(0) });
    await t.store.types.set({ type: "limited", maxRunning: 2, actor: null, since: new Date(0) });
    const node = await register(t.store, "n", [], 100);
    const items = await claim(t.store, node.id, 20);
    const ids = items.map((item) => item.id);
    expect(items.filter((item) => item.type === "paused")).toEqual([]);
    expect(items.filter((item) => item.type === "limited")).toHaveLength(2);
    expect(ids).toEqual(expect.arrayContaining(plain));
    expect(ids).not.toContain(gpu[0]);
    const gpuNode = await register(t.store, "g", ["gpu"], 100);
    expect((await claim(t.store, gpuNode.id, 20)).map((item) => item.id)).toEqual(gpu);
    await expectTablesExact(t);
  });

  it("follows every change of a job: reports, retries, cancels, priorities, aging, dependencies, deletes", async () => {
    await open({ retryDelayS: 0, agingS: 60 });
    const node = await register(t.store, "n", [], 100);
    const parent = await submit(t.store, { clientId: "a" });
    const child = await submit(t.store, { clientId: "a", dependsOn: [parent.id], priority: "low" });
    await submit(t.store, { clientId: "b", priority: "low" });
    const later = await submit(t.store, { clientId: "c", runAt: new Date(t.clock.now().getTime() + 1000) });
    await expectTablesExact(t);
    const [taken] = await claim(t.store, node.id, 1);
    if (!taken) throw new Error("nothing claimed");
    await expectTablesExact(t);
    await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: taken.id, attempt: taken.attempt, status: "failed", error: { message: "x", retryable: true } }] });
    await expectTablesExact(t);
    const again = await claim(t.store, node.id, 1);
    await t.store.jobs.report({ nodeId: node.id, reports: again.map((item) => ({ jobId: item.id, attempt: item.attempt, status: "completed" as const })) });
    expect((await t.store.jobs.get(child.id))?.status).toBe("pending");
    await expectTablesExact(t);
    await t.store.jobs.setPriority({ id: child.id, priority: "high", actor: null });
    await expectTablesExact(t);
    await t.store.jobs.cancel({ id: child.id, actor: null });
    await expectTablesExact(t);
    await t.store.jobs.retry({ id: child.id, actor: null });
    await expectTablesExact(t);
    t.clock.advance(120_000);
    await t.store.jobs.promoteScheduled();
    expect((await t.store.jobs.get(later.id))?.status).toBe("pending");
    expect(await t.store.jobs.age({ limit: 100 })).toBeGreaterThan(0);
    await expectTablesExact(t);
    await t.store.jobs.cancelMatching({ filter: { clientId: "a" }, max: 100, actor: null, shownFilter: {} });
    await expectTablesExact(t);
  });
});

interface JobState {
  seq: number;
  id: string;
  client_id: string;
  type: string;
  effective_priority: number;
  status: string;
  node_id: string | null;
}

/**
 * The rule of API.md §5a read naively over every job: up to `limit` times, the highest
 * priority among the jobs the claim may take, then the client with the fewest running
 * (counting what this claim gave it), ties to its oldest job, and that client's oldest job.
 */
function referenceClaim(jobs: JobState[], limit: number, room: Map<string, number>, paused: Set<string>): string[] {
  const running = new Map<string, number>();
  for (const job of jobs) if (job.status === "running") running.set(job.client_id, (running.get(job.client_id) ?? 0) + 1);
  const left = new Map(room);
  const open = jobs.filter((job) => job.status === "pending" && !paused.has(job.type)).sort((a, b) => a.seq - b.seq);
  const chosen: string[] = [];
  while (chosen.length < limit) {
    const candidates = open.filter((job) => !chosen.includes(job.id) && (left.get(job.type) ?? 1) > 0);
    if (candidates.length === 0) break;
    const top = Math.max(...candidates.map((job) => job.effective_priority));
    const level = candidates.filter((job) => job.effective_priority === top);
    let best: JobState | undefined;
    for (const job of level) {
      if (!best) best = job;
      else {
        const load = (c: string) => running.get(c) ?? 0;
        if (load(job.client_id) < load(best.client_id)) best = job;
      }
    }
    if (!best) break;
    chosen.push(best.id);
    running.set(best.client_id, (running.get(best.client_id) ?? 0) + 1);
    const type = best.type;
    if (left.has(type)) left.set(type, (left.get(type) ?? 0) - 1);
  }
  return chosen;
}

const opArbitrary = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant("submit" as const), client: fc.constantFrom("a", "b", "c"), priority: fc.constantFrom("high", "medium", "low" as const), type: fc.constantFrom("t1", "t2"), count: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("claim" as const), node: fc.integer({ min: 0, max: 1 }), max: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("report" as const), pick: fc.nat(), ok: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("cancel" as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("retry" as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("priority" as const), pick: fc.nat(), priority: fc.constantFrom("high", "medium", "batch" as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("age" as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("type" as const), paused: fc.boolean(), max: fc.option(fc.integer({ min: 0, max: 3 })) }) },
);

describe.each(dialects)("fair share, random histories ($name)", (dialect) => {
  it("keeps its tables equal to jobs, every claim's choice equal to the naive rule, and hands out what why calls next", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArbitrary, { minLength: 5, maxLength: 40 }), async (ops) => {
        const t = await dialect.open({ retryDelayS: 0, agingS: 60 });
        try {
          const store = t.store;
          await store.jobs.setFairShare("clients");
          const nodes = [await register(store, "n0", [], 3), await register(store, "n1", [], 5)];
          const capacity = [3, 5];
          const typeSetting = { paused: false, max: null as number | null };
          const jobsNow = async () =>
            (await t.query("SELECT seq, id, client_id, type, effective_priority, status, node_id FROM jobs ORDER BY seq")).map((row) => ({
              ...(row as unknown as JobState),
              seq: Number(row.seq),
              effective_priority: Number(row.effective_priority),
            }));
          const pick = async (n: number, statuses: string[]) => {
            const candidates = (await jobsNow()).filter((job) => statuses.includes(job.status));
            return candidates.length === 0 ? undefined : candidates[n % candidates.length];
          };
          for (const op of ops) {
            if (op.op === "submit") {
              const outcome = await store.jobs.submit(Array.from({ length: op.count }, () => jobParams({ clientId: op.client, priority: op.priority, type: op.type })));
              expect(outcome.ok).toBe(true);
            } else if (op.op === "claim") {
              const jobs = await jobsNow();
              const node = nodes[op.node];
              if (!node) throw new Error("no node");
              const onNode = jobs.filter((job) => job.status === "running" && job.node_id === node.id).length;
              const limit = Math.min(op.max, (capacity[op.node] ?? 0) - onNode);
              const room = new Map<string, number>();
              if (typeSetting.max !== null && !typeSetting.paused) {
                room.set("t1", Math.max(0, typeSetting.max - jobs.filter((job) => job.status === "running" && job.type === "t1").length));
              }
              const expected = limit <= 0 ? [] : referenceClaim(jobs, limit, room, typeSetting.paused ? new Set(["t1"]) : new Set());
              // What why calls ready and next goes out on this claim (API.md §5).
              const next: string[] = [];
              if (limit > 0) {
                for (const job of jobs.filter((pending) => pending.status === "pending")) {
                  const facts = await store.jobs.whyFacts(job.id);
                  const answer = facts && whyWaiting({ ...facts, paused: false });
                  if (answer?.ready && answer.jobs_ahead === 0) next.push(job.id);
                }
              }
              const items = await claim(store, node.id, op.max);
              expect(items.map((item) => item.id)).toEqual(expect.arrayContaining(next));
              expect(items.map((item) => item.id).sort()).toEqual([...expected].sort());
            } else if (op.op === "report") {
              const job = await pick(op.pick, ["running"]);
              if (job) {
                const full = await store.jobs.get(job.id);
                await store.jobs.report({
                  nodeId: job.node_id ?? "",
                  reports: [{ jobId: job.id, attempt: full?.attempt ?? 0, status: op.ok ? "completed" : "failed", error: op.ok ? undefined : { message: "x", retryable: true } }],
                });
              }
            } else if (op.op === "cancel") {
              const job = await pick(op.pick, ["pending", "running", "scheduled"]);
              if (job) await store.jobs.cancel({ id: job.id, actor: null });
            } else if (op.op === "retry") {
              const job = await pick(op.pick, ["failed", "canceled"]);
              if (job) await store.jobs.retry({ id: job.id, actor: null });
            } else if (op.op === "priority") {
              const job = await pick(op.pick, ["pending"]);
              if (job) await store.jobs.setPriority({ id: job.id, priority: op.priority, actor: null });
            } else if (op.op === "age") {
              t.clock.advance(61_000);
              await store.jobs.age({ limit: 1000 });
            } else {
              typeSetting.paused = op.paused;
              typeSetting.max = op.max;
              await store.types.set({ type: "t1", paused: op.paused, maxRunning: op.max, actor: null, since: new Date(0) });
            }
            await expectTablesExact(t);
          }
        } finally {
          await t.store.close();
          removeTempDirs();
        }
      }),
      { numRuns: 25 },
    );
  }, 120_000);
});
