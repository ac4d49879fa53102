// Fair share over HTTP (API.md §5a, GAFFER_FAIR_SHARE=clients): two clients through the API,
// the mode in /api/v1/state, and `why` naming the clients that go first.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MasterInternals } from "../../../master/index.js";
import type { WhyAnswer } from "../../../master/queue/why.js";
import { http, signedIn, startTestMaster } from "../../helpers/master.js";
import { removeTempDirs } from "../../helpers/temp.js";

let master: MasterInternals;
let headers: Record<string, Record<string, string>>;
const call = <T = Record<string, unknown>>(who: string, method: string, path: string, body?: unknown) =>
  http<T>(master.url, method, path, body, headers[who]);

beforeAll(async () => {
  master = await startTestMaster({ auth: "on", fairShare: "clients" });
  headers = await signedIn(master, { big: "client", small: "client", admin: "admin", worker: "worker" });
});
afterAll(async () => {
  await master.close();
  removeTempDirs();
});

describe("fair share between clients", () => {
  it("hands a small client's jobs out beside a big client's backlog, and says why one waits", async () => {
    expect((await call("admin", "GET", "/api/v1/state")).body).toMatchObject({ fair_share: "clients" });
    const node = await call<{ id: string }>("worker", "POST", "/api/v1/nodes", { name: "fair-node", capacity: 8 });
    for (let i = 0; i < 3; i++) {
      const batch = await call("big", "POST", "/api/v1/jobs/batch", { jobs: Array.from({ length: 200 }, () => ({ type: "fair" })) });
      expect(batch.status).toBe(201);
    }
    const small = await call<{ items: { id: string }[] }>("small", "POST", "/api/v1/jobs/batch", { jobs: Array.from({ length: 4 }, () => ({ type: "fair" })) });
    const smallIds = small.body.items.map((job) => job.id);
    // Before any runs: the big client's head is older, so the small client's first job waits for it.
    const waiting = await call<WhyAnswer>("small", "GET", `/api/v1/jobs/${smallIds[0]}/why`);
    expect(waiting.body).toMatchObject({ ready: false, reasons: [{ code: "fair_share", clients_ahead: 1, running: 0 }, { code: "queued" }] });
    const claimed = await call<{ items: { id: string }[] }>("worker", "POST", `/api/v1/nodes/${node.body.id}/claim`, { max: 8 });
    const ids = claimed.body.items.map((job) => job.id);
    expect(ids).toHaveLength(8);
    expect(ids).toEqual(expect.arrayContaining(smallIds));
  });

  it("keeps the database's mode when a master starts without GAFFER_FAIR_SHARE, and changes it when one starts with it", async () => {
    const db = master.config.db;
    await master.close();
    master = await startTestMaster({ db, auth: "on" });
    headers = await signedIn(master, { admin: "admin" });
    expect((await call("admin", "GET", "/api/v1/state")).body).toMatchObject({ fair_share: "clients" });
    await master.close();
    master = await startTestMaster({ db, auth: "on", fairShare: "off" });
    headers = await signedIn(master, { admin: "admin" });
    expect((await call("admin", "GET", "/api/v1/state")).body).toMatchObject({ fair_share: "off" });
  });
});
