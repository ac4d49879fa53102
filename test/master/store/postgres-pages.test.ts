// A walk through the job list's pages on PostgreSQL, while a job that drew its seq earlier
// commits late (README, Scaling out): every job committed before the first page is shown
// once; the late one, sorting among the jobs already shown by then (older than some of
// them), is left out of that walk and shown by the next.
import { describe, expect, it } from "vitest";
import type { Job, Store } from "../../../master/store/types.js";
import { dialects, storePerTest, submit, type TestStore } from "../../helpers/store.js";

const postgres = dialects.find((dialect) => dialect.name === "postgres");

async function walk(store: Store, limit: number, between?: () => Promise<void>): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | undefined;
  for (let page = 0; ; page++) {
    const { items, next_cursor } = await store.jobs.list({ limit, cursor });
    ids.push(...items.map((job: Job) => job.id));
    if (page === 0) await between?.();
    if (next_cursor === null) return ids;
    cursor = next_cursor;
  }
}

describe.runIf(postgres)("paging jobs while another transaction commits late (postgres)", () => {
  let t: TestStore;
  if (postgres) storePerTest(postgres, (opened) => (t = opened));

  it("shows every job committed before the first page once; one committed during the walk comes in the next walk", async () => {
    const before: string[] = [];
    for (let i = 0; i < 3; i++) before.push((await submit(t.store)).id);
    // A submit on another master that drew its seq and has not committed yet.
    await t.query("BEGIN");
    const [drawn] = await t.query("SELECT nextval(pg_get_serial_sequence('jobs', 'seq')) AS seq");
    for (let i = 0; i < 3; i++) before.push((await submit(t.store)).id);

    const first = await walk(t.store, 5, async () => {
      await t.query(
        `INSERT INTO jobs SELECT (jsonb_populate_record(NULL::jobs, to_jsonb(j) || jsonb_build_object('id', 'late-job', 'seq', ?::bigint))).*
         FROM jobs j WHERE j.id = ?`,
        [drawn?.seq, before[0]],
      );
      await t.query("COMMIT");
    });
    expect([...first].sort()).toEqual([...before].sort());
    expect(first).not.toContain("late-job");
    expect(await walk(t.store, 5)).toContain("late-job");
  });
});
