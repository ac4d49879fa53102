// Several masters of one cluster (API.md §12): a client given their URLs calls one and moves
// to the next when it stops answering.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client, GafferConnectionError } from "../../client/index.js";
import { createClient } from "../../master/auth/clients.js";
import type { MasterInternals } from "../../master/index.js";
import { freePort } from "../helpers/processes.js";
import { startTestMaster } from "../helpers/master.js";
import { removeTempDirs } from "../helpers/temp.js";

let master: MasterInternals;
let credentials: { clientId: string; clientSecret: string };
let dead: string;

beforeAll(async () => {
  master = await startTestMaster({ auth: "on" });
  const made = await createClient(master.store, { name: "sdk", role: "client", actor: null });
  credentials = { clientId: made.id, clientSecret: made.client_secret };
  dead = `http://127.0.0.1:${await freePort()}`; // nothing listens there
});
afterAll(async () => {
  await master.close();
  removeTempDirs();
});

describe("a client of several masters", () => {
  it("moves to the next master when one does not answer, and stays there", async () => {
    const said: unknown[] = [];
    const log = { warn: (fields: unknown) => said.push(fields), info: () => undefined, debug: () => undefined, error: () => undefined };
    const gaffer = new Client({ masterUrl: `${dead},${master.url}`, ...credentials, log, backoff: { baseMs: 1, maxMs: 5 } });
    const job = await gaffer.submit({ type: "echo", idempotency_key: "k1" });
    expect((await gaffer.get(job.id)).id).toBe(job.id);
    expect(said).toContainEqual(expect.objectContaining({ event: "master.failover", from: dead, to: master.url }));
    expect(said.filter((fields) => (fields as { event?: string }).event === "master.failover")).toHaveLength(1);
  });

  it("says it cannot reach any when none answers", async () => {
    const gaffer = new Client({ masterUrl: [dead, dead.replace(/:(\d+)$/, (_m, port: string) => `:${Number(port) + 1}`)], ...credentials, attempts: 3, backoff: { baseMs: 1, maxMs: 5 } });
    await expect(gaffer.stats()).rejects.toBeInstanceOf(GafferConnectionError);
  });

  it("moves to the next master after one answered only 503 through all its tries", async () => {
    let asked = 0;
    const unavailable = createServer((_req, res) => {
      asked += 1;
      res.writeHead(503, { "content-type": "application/problem+json" });
      res.end(JSON.stringify({ type: "about:blank", title: "Service unavailable", status: 503, code: "unavailable", detail: "cut off from its database" }));
    });
    await new Promise<void>((resolve) => unavailable.listen(0, "127.0.0.1", resolve));
    try {
      const stuck = `http://127.0.0.1:${(unavailable.address() as AddressInfo).port}`;
      const gaffer = new Client({ masterUrl: [stuck, master.url], ...credentials, attempts: 2, backoff: { baseMs: 1, maxMs: 5 } });
      // Its token is asked for there first: 503 twice, then the next master gives it and the call goes on there.
      expect(await gaffer.stats()).toHaveProperty("jobs");
      expect(asked).toBe(2);
      expect(await gaffer.stats()).toHaveProperty("jobs");
      expect(asked).toBe(2);
    } finally {
      await new Promise((resolve) => unavailable.close(resolve));
    }
  });

  it("refuses an empty list of masters", () => {
    expect(() => new Client({ masterUrl: " , " })).toThrow("masterUrl is required");
  });
});
