// Several masters on one PostgreSQL database are one cluster (API.md §12), whichever master
// a request reaches: tokens, claims woken across masters, results, revocations, one leader.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MasterInternals } from "../../../master/index.js";
import { http, signedIn, startTestMaster } from "../../helpers/master.js";
import { createTestDatabase, dropTestDatabase } from "../../helpers/postgres.js";
import { dialects } from "../../helpers/store.js";

const havePostgres = dialects.some((dialect) => dialect.name === "postgres");

describe.runIf(havePostgres)("several masters on one PostgreSQL database", () => {
  let url: string;
  let a: MasterInternals;
  let b: MasterInternals;
  let as: Record<string, Record<string, string>>;

  beforeAll(async () => {
    url = await createTestDatabase();
    a = await startTestMaster({ databaseUrl: url, auth: "on" });
    b = await startTestMaster({ databaseUrl: url, auth: "on" });
    as = await signedIn(a, { admin: "admin", client: "client", worker: "worker" });
  });

  afterAll(async () => {
    await Promise.allSettled([a?.close(), b?.close()]);
    if (url) await dropTestDatabase(url);
  });

  it("answers a claim waiting on one master with a job submitted through the other, and takes its result there", async () => {
    const node = await http<{ id: string }>(b.url, "POST", "/api/v1/nodes", { name: "n1", capacity: 2 }, as.worker);
    expect(node.status).toBe(201);
    const started = Date.now();
    const claiming = http<{ items: { id: string; attempt: number }[] }>(b.url, "POST", `/api/v1/nodes/${node.body.id}/claim`, { max: 1, wait_s: 20 }, as.worker);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const submitted = await http<{ id: string }>(a.url, "POST", "/api/v1/jobs", { type: "echo", payload: { n: 1 } }, as.client);
    expect(submitted.status).toBe(201);
    const claimed = await claiming;
    expect(claimed.status).toBe(200);
    expect(claimed.body.items.map((job) => job.id)).toEqual([submitted.body.id]);
    // Woken by the other master's NOTIFY, not by the end of the 20 s wait.
    expect(Date.now() - started).toBeLessThan(10_000);
    const waiting = http<{ status: string; result: unknown }>(a.url, "GET", `/api/v1/jobs/${submitted.body.id}?wait_s=20`, undefined, as.client);
    const done = await http(b.url, "POST", `/api/v1/jobs/${submitted.body.id}/complete`, { node_id: node.body.id, attempt: 1, result: { ok: true } }, as.worker);
    expect(done.status).toBe(200);
    const final = await waiting;
    expect(final.body).toMatchObject({ status: "completed", result: { ok: true } });
  });

  it("answers 400 to a payload PostgreSQL cannot store (a NUL), single or in a batch, and stores the submits beside it", async () => {
    const single = (payload: unknown) => http<{ id: string; payload: unknown }>(a.url, "POST", "/api/v1/jobs", { type: "nul", payload }, as.client);
    const [before, nul, after] = await Promise.all([single({ n: 1 }), single({ text: "nul\u0000here" }), single(null)]);
    expect([before.status, nul.status, after.status]).toEqual([201, 400, 201]);
    expect(nul.body).toMatchObject({ code: "invalid_request" });
    const batch = await http(a.url, "POST", "/api/v1/jobs/batch", { jobs: [{ type: "nul" }, { type: "nul", payload: ["\u0000"] }] }, as.client);
    expect(batch.status).toBe(400);
    const stored = await http<{ items: { payload: unknown }[] }>(b.url, "GET", "/api/v1/jobs?type=nul", undefined, as.client);
    // The two singles were sent at once: stored in either order.
    expect(stored.body.items.map((job) => JSON.stringify(job.payload)).sort()).toEqual(["null", '{"n":1}']);
  });

  it("shares one JWT key: a token issued by one master works on the other, and a revocation reaches it", async () => {
    const jobs = await http(b.url, "GET", "/api/v1/jobs?limit=1", undefined, as.client);
    expect(jobs.status).toBe(200);
    const revoked = await http(a.url, "POST", "/api/v1/auth/revoke", undefined, as.client);
    expect(revoked.status).toBeLessThan(300);
    // Refused by the other master within a second (its cached grant dropped by NOTIFY).
    let status = 0;
    for (const deadline = Date.now() + 1_000; Date.now() < deadline; ) {
      status = (await http(b.url, "GET", "/api/v1/jobs?limit=1", undefined, as.client)).status;
      if (status === 401) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(status).toBe(401);
  });

  it("runs the sweepers on one master at a time", async () => {
    const leads = [await a.store.leads(), await b.store.leads()];
    expect(leads.filter(Boolean)).toHaveLength(1);
  });

  it("gives masters that start at once on a new database one JWT key", async () => {
    const fresh = await createTestDatabase();
    const masters = await Promise.all([startTestMaster({ databaseUrl: fresh, auth: "on" }), startTestMaster({ databaseUrl: fresh, auth: "on" })]);
    try {
      const [first, second] = masters as [MasterInternals, MasterInternals];
      const { client } = await signedIn(first, { client: "client" });
      expect((await http(second.url, "GET", "/api/v1/jobs?limit=1", undefined, client)).status).toBe(200);
    } finally {
      await Promise.allSettled(masters.map((master) => master.close()));
      await dropTestDatabase(fresh);
    }
  });

  it("pauses and resumes every master when an admin sets the mode through one", async () => {
    const paused = await http(a.url, "PUT", "/api/v1/state/mode", { mode: "paused" }, as.admin);
    expect(paused.status).toBe(200);
    let seen = "";
    for (const deadline = Date.now() + 1_000; Date.now() < deadline && seen !== "paused"; ) {
      seen = (await http<{ mode: string }>(b.url, "GET", "/api/v1/state", undefined, as.admin)).body.mode;
      if (seen !== "paused") await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(seen).toBe("paused");
    // A node asking the other master for work gets none while paused.
    const node = await http<{ id: string }>(b.url, "POST", "/api/v1/nodes", { name: "paused-node", capacity: 1 }, as.worker);
    const { submitter } = await signedIn(a, { submitter: "client" }); // the first client's token was revoked above
    expect((await http(a.url, "POST", "/api/v1/jobs", { type: "echo" }, submitter)).status).toBe(201);
    const claimed = await http<{ items: unknown[] }>(b.url, "POST", `/api/v1/nodes/${node.body.id}/claim`, { max: 1 }, as.worker);
    expect(claimed.body.items).toEqual([]);
    expect((await http(a.url, "PUT", "/api/v1/state/mode", { mode: "normal" }, as.admin)).status).toBe(200);
    for (const deadline = Date.now() + 1_000; Date.now() < deadline && seen !== "normal"; ) {
      seen = (await http<{ mode: string }>(b.url, "GET", "/api/v1/state", undefined, as.admin)).body.mode;
      if (seen !== "normal") await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(seen).toBe("normal");
    const after = await http<{ items: unknown[] }>(b.url, "POST", `/api/v1/nodes/${node.body.id}/claim`, { max: 1, wait_s: 5 }, as.worker);
    expect(after.body.items).toHaveLength(1);
  });
});
