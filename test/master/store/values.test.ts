// Values as the API shows them, the same on every dialect: JSON keeps the client's key order,
// and text a database cannot hold (PostgreSQL: NUL) is refused as the caller's fault, or
// dropped from what a handler printed rather than refusing its result.
import { describe, expect, it } from "vitest";
import { UnstorableValueError } from "../../../master/store/types.js";
import { claim, dialects, jobParams, register, submit, type TestStore, storePerTest } from "../../helpers/store.js";

describe.each(dialects)("stored values ($name)", (dialect) => {
  let t: TestStore;
  storePerTest(dialect, (opened) => (t = opened));

  it("keeps a payload's, a result's and the tags' keys in the order the client wrote them", async () => {
    const payload = { zeta: 1, alpha: { y: 2, b: [{ z: 1, a: 0 }] }, mid: "x" };
    const job = await submit(t.store, { payload, tags: { zone: "b", app: "a" } });
    const node = await register(t.store);
    const [taken] = await claim(t.store, node.id);
    expect(taken?.payloadJson).toBe(JSON.stringify(payload));
    const result = { z: true, a: false };
    await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: job.id, attempt: 1, status: "completed", result }] });
    const stored = await t.store.jobs.get(job.id);
    expect(JSON.stringify(stored?.payload)).toBe(JSON.stringify(payload));
    expect(JSON.stringify(stored?.result)).toBe(JSON.stringify(result));
    expect(Object.keys(stored?.tags ?? {})).toEqual(["zone", "app"]);
  });

  it.runIf(dialect.name === "sqlite")("hands a payload that is not JSON (its row edited by hand) to its node as null, and the rest as kept", async () => {
    const edited = await submit(t.store, { payload: { n: 1 } });
    // JSON up to a NUL, and more after it: SQLite's json_valid stops reading at the NUL.
    const cut = await submit(t.store, { payload: { n: 2 } });
    const kept = await submit(t.store, { payload: { n: 3 } });
    await t.query("UPDATE jobs SET payload = ? WHERE id = ?", ["{not json", edited.id]);
    await t.query("UPDATE jobs SET payload = '{\"n\":2}' || char(0) || 'junk' WHERE id = ?", [cut.id]);
    const node = await register(t.store);
    const taken = await claim(t.store, node.id);
    expect(taken.map((job) => [job.id, job.payloadJson, job.payloadUnreadable])).toEqual([
      [edited.id, "null", true],
      [cut.id, "null", true],
      [kept.id, '{"n":3}', undefined],
    ]);
  });

  it.runIf(dialect.name === "sqlite")("shows a job whose JSON columns were edited by hand into text that is not JSON, those columns as their defaults", async () => {
    const job = await submit(t.store, { payload: { n: 1 }, tags: { k: "v" }, requires: ["gpu"], maxRetries: 1 });
    const node = await register(t.store, "node-1", ["gpu"]);
    await claim(t.store, node.id);
    const failed = { jobId: job.id, attempt: 1, status: "failed" as const, error: { message: "boom", retryable: true } };
    expect((await t.store.jobs.report({ nodeId: node.id, reports: [failed] })).items[0]?.verdict).toBe("accepted");
    await t.query("UPDATE jobs SET payload = '{not json', tags = '{', requires = '[', depends_on = 'x', result = 'nope', error = '{' WHERE id = ?", [job.id]);
    await t.query("UPDATE job_attempts SET error = '{' WHERE job_id = ?", [job.id]);
    // Audit rows about the job that its history shows: a job.failed (read for its node) and a cancel asked.
    for (const event of ["job.failed", "job.cancel_requested"]) {
      await t.query("INSERT INTO audit_log (event_type, entity_type, entity_id, client_id, details, created_at) VALUES (?, 'job', ?, NULL, '{', ?)", [
        event,
        job.id,
        new Date().toISOString(),
      ]);
    }
    const shown = await t.store.jobs.get(job.id);
    expect(shown).toMatchObject({ id: job.id, payload: null, tags: {}, requires: [], depends_on: [], result: null, error: null, status: "scheduled" });
    expect((await t.store.jobs.list({ limit: 10 })).items.map((item) => item.id)).toEqual([job.id]);
    expect((await t.store.jobs.attempts(job.id)).map((attempt) => [attempt.outcome, attempt.error])).toEqual([["failed", null]]);
    const events = (await t.store.jobs.events({ jobId: job.id, limit: 50 })).items;
    expect(events.filter((event) => event.event_type === "job.failed" || event.event_type === "job.cancel_requested")).toEqual([
      expect.objectContaining({ event_type: "job.failed", details: {} }),
      expect.objectContaining({ event_type: "job.cancel_requested", details: {} }),
    ]);
    expect((await t.store.jobs.whyFacts(job.id))?.requires).toEqual([]);
  });

  // A batch's completions go to SQLite with their texts inside a JSON list when they are short
  // on average, and packed into one BLOB when they are long (packed-texts.ts): both ways keep
  // every byte, and each text on its own job, past a report refused in the middle.
  it.each([
    ["short", 1],
    ["long", 60],
  ])("keeps a batch's %s results and log tails byte for byte, each on its own job", async (_, repeat) => {
    const jobs = [];
    for (let i = 0; i < 5; i++) jobs.push(await submit(t.store));
    const node = await register(t.store);
    await claim(t.store, node.id);
    const texts = ['quote " back \\ slash', "line\nfeed\ttab", "é, 雪, 😀", "\u2028\u2029 and \u007f", "plain"];
    const results = texts.map((text, i) => ({ i, text: text.repeat(repeat), list: [i, -0.5, 1e21, null, true] }));
    // A null tail and an empty one beside the others.
    const tails = texts.map((text, i) => (i === 1 ? null : i === 3 ? "" : `${text}\n`.repeat(repeat)));
    const reports = jobs.map((job, i) => ({
      jobId: job.id,
      // The last names an attempt never handed out, refused: the ones before it still get their own texts.
      attempt: i === 4 ? 7 : 1,
      status: "completed" as const,
      result: results[i],
      ...(tails[i] === null ? {} : { logTail: tails[i] }),
    }));
    const outcome = await t.store.jobs.report({ nodeId: node.id, reports });
    expect(outcome.items.map((item) => item.verdict)).toEqual(["accepted", "accepted", "accepted", "accepted", "not_found"]);
    for (const [i, job] of jobs.entries()) {
      if (i === 4) continue;
      expect(JSON.stringify((await t.store.jobs.get(job.id))?.result)).toBe(JSON.stringify(results[i]));
      expect((await t.store.jobs.attempts(job.id))[0]?.log_tail ?? null).toBe(tails[i]);
      if (dialect.name !== "sqlite") continue;
      const [row] = await t.query("SELECT j.result, typeof(j.result) AS kind, a.log_tail, typeof(a.log_tail) AS tail_kind FROM jobs j JOIN job_attempts a ON a.job_id = j.id WHERE j.id = ?", [job.id]);
      expect(row).toEqual({ result: JSON.stringify(results[i]), kind: "text", log_tail: tails[i], tail_kind: tails[i] === null ? "null" : "text" });
    }
    expect((await t.store.jobs.get(jobs[4]?.id ?? ""))?.status).toBe("running");
  });

  it("accepts a result whose log tail and error hold NUL characters", async () => {
    const job = await submit(t.store, { maxRetries: 0 });
    const node = await register(t.store);
    await claim(t.store, node.id);
    const outcome = await t.store.jobs.report({
      nodeId: node.id,
      reports: [{ jobId: job.id, attempt: 1, status: "failed", error: { message: "bad\u0000byte", retryable: true }, logTail: "a\u0000b\n" }],
    });
    expect(outcome.items[0]?.verdict).toBe("accepted");
    const [attempt] = await t.store.jobs.attempts(job.id);
    expect(attempt?.log_tail?.replaceAll("\u0000", "")).toBe("ab\n");
    expect((await t.store.jobs.get(job.id))?.status).toBe("failed");
  });

  it.runIf(dialect.name === "postgres")("refuses a payload PostgreSQL cannot store as the caller's fault, storing nothing", async () => {
    await expect(t.store.jobs.submit([jobParams({ payload: { text: "nul\u0000here" } })])).rejects.toBeInstanceOf(UnstorableValueError);
    expect((await t.store.jobs.list({ limit: 10 })).items).toEqual([]);
  });
});
