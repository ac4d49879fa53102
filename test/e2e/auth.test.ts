// Auth with real processes: the first admin made offline, clients through the CLI,
// a worker that authenticates and refreshes its token, the JWT key kept across restarts.
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { writeHandlers } from "../helpers/handlers.js";
import { http, startTestMaster } from "../helpers/master.js";
import { eventually, runGaffer, spawnMaster, spawnWorker, stopAll } from "../helpers/processes.js";
import { removeTempDirs, tempDir } from "../helpers/temp.js";

afterEach(async () => {
  await stopAll();
  removeTempDirs();
});

async function token(url: string, id: string, secret: string): Promise<string> {
  const result = await http<{ access_token: string }>(url, "POST", "/api/v1/auth/token", { client_id: id, client_secret: secret });
  expect(result.status).toBe(200);
  return result.body.access_token;
}

describe("auth end to end", () => {
  it("makes the first admin offline, then clients and a working worker through the API", async () => {
    const dir = tempDir();
    const db = join(dir, "m.db");
    const created = await runGaffer(["clients", "create", "--db", db, "--name", "first-admin", "--role", "admin", "--json"]);
    expect(created.code).toBe(0);
    const admin = JSON.parse(created.output) as { id: string; client_secret: string; role: string };
    expect(admin).toMatchObject({ role: "admin", id: expect.stringMatching(/^admin-/), client_secret: expect.stringMatching(/^gsk_/) });

    const master = await spawnMaster(db, { GAFFER_AUTH: "on", GAFFER_TOKEN_TTL_S: "2", GAFFER_HEARTBEAT_INTERVAL_S: "0.3" });
    expect(master.output()).not.toMatch(/AUTH IS OFF/);
    const adminEnv = { GAFFER_MASTER_URL: master.url, GAFFER_CLIENT_ID: admin.id, GAFFER_CLIENT_SECRET: admin.client_secret };
    const workerClient = await runGaffer(["clients", "create", "--name", "w", "--role", "worker", "--json"], adminEnv);
    expect(workerClient.code).toBe(0);
    const workerCreds = JSON.parse(workerClient.output) as { id: string; client_secret: string };
    const submitter = JSON.parse((await runGaffer(["clients", "create", "--name", "s", "--role", "client", "--json"], adminEnv)).output) as {
      id: string;
      client_secret: string;
    };
    const listed = await runGaffer(["clients", "list"], adminEnv);
    expect(listed.output).toMatch(/first-admin/);
    expect(listed.output).toMatch(new RegExp(workerCreds.id));

    const dirState = join(dir, "state");
    const worker = await spawnWorker(master.url, {
      name: "authed",
      handlers: writeHandlers(dir),
      stateDir: dirState,
      env: { GAFFER_CLIENT_ID: workerCreds.id, GAFFER_CLIENT_SECRET: workerCreds.client_secret },
    });
    // Tokens live 2 s: the worker must refresh them to keep working past several lifetimes.
    const submitterToken = () => token(master.url, submitter.id, submitter.client_secret);
    const jobIds: string[] = [];
    for (let i = 0; i < 3; i++) {
      const job = await http(master.url, "POST", "/api/v1/jobs", { type: "echo", payload: { result: i } }, { authorization: `Bearer ${await submitterToken()}` });
      expect(job.status).toBe(201);
      jobIds.push(String(job.body.id));
      await new Promise((resolve) => setTimeout(resolve, 1500));
    }
    for (const id of jobIds) {
      await eventually(async () => {
        const job = await http(master.url, "GET", `/api/v1/jobs/${id}`, undefined, { authorization: `Bearer ${await submitterToken()}` });
        return job.body.status === "completed";
      }, 10_000, `job ${id}`);
    }
    expect(worker.output()).not.toMatch(/"level":50/);

    const disabled = await runGaffer(["clients", "disable", submitter.id], adminEnv);
    expect(disabled.code).toBe(0);
    const refused = await http(master.url, "POST", "/api/v1/auth/token", { client_id: submitter.id, client_secret: submitter.client_secret });
    expect(refused.status).toBe(401);
    const noCredentials = await runGaffer(["clients", "list"], { GAFFER_MASTER_URL: master.url });
    expect(noCredentials.code).toBe(2);
    expect(noCredentials.output).toMatch(/401/);
  });

  it("says loudly that auth is off", async () => {
    const master = await spawnMaster(join(tempDir(), "m.db"), { GAFFER_AUTH: "off" });
    expect(master.output()).toMatch(/AUTH IS OFF/);
  });

  it("keeps its generated JWT key across restarts; GAFFER_JWT_SECRET replaces it", async () => {
    const db = join(tempDir(), "m.db");
    const first = await startTestMaster({ db, auth: "on" });
    const { createClient } = await import("../../master/auth/clients.js");
    const client = await createClient(first.store, { name: "c", role: "client", actor: null });
    const issued = await token(first.url, client.id, client.client_secret);
    await first.close();
    const second = await startTestMaster({ db, auth: "on" });
    expect((await http(second.url, "GET", "/api/v1/queue/stats", undefined, { authorization: `Bearer ${issued}` })).status).toBe(200);
    await second.close();
    const rekeyed = await startTestMaster({ db, auth: "on", jwtSecret: "a-completely-different-secret-of-40-chars" });
    expect((await http(rekeyed.url, "GET", "/api/v1/queue/stats", undefined, { authorization: `Bearer ${issued}` })).status).toBe(401);
    await rekeyed.close();
  });
});
