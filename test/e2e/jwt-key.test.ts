// `gaffer master start` with another GAFFER_JWT_SECRET than the database's masters: refused on
// PostgreSQL (exit 2, naming the fix) unless --rotate-jwt-secret, after which a master still
// running with the old key answers 503 on /ready; on SQLite, its one master takes the new key
// and warns that the old tokens now get 401.
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { http } from "../helpers/master.js";
import { createTestDatabase, dropTestDatabase } from "../helpers/postgres.js";
import { eventually, runGaffer, spawnMaster, stopAll } from "../helpers/processes.js";
import { dialects } from "../helpers/store.js";
import { removeTempDirs, tempDir } from "../helpers/temp.js";

const havePostgres = dialects.some((dialect) => dialect.name === "postgres");
const KEY_A = "a-key-of-the-cluster-".padEnd(40, "a");
const KEY_B = "b-key-of-another-master-".padEnd(40, "b");

afterEach(async () => {
  await stopAll();
  removeTempDirs();
});

async function adminToken(masterUrl: string, admin: { id: string; client_secret: string }): Promise<Record<string, string>> {
  const login = await http<{ access_token: string }>(masterUrl, "POST", "/api/v1/auth/token", { client_id: admin.id, client_secret: admin.client_secret });
  expect(login.status).toBe(200);
  return { authorization: `Bearer ${login.body.access_token}` };
}

describe.runIf(havePostgres)("the token signing key on PostgreSQL", () => {
  const databases: string[] = [];
  afterAll(async () => {
    for (const url of databases) await dropTestDatabase(url);
  });

  it("refuses a master with another key, and rotates on purpose: the old key's master then answers 503 on /ready", async () => {
    const url = await createTestDatabase();
    databases.push(url);
    const unused = join(tempDir(), "unused.db");
    const on = { GAFFER_AUTH: "on" };
    const first = await spawnMaster(unused, { ...on, GAFFER_JWT_SECRET: KEY_A }, ["--database-url", url]);

    const refused = await runGaffer(["master", "start", "--database-url", url, "--port", "0"], { ...on, GAFFER_JWT_SECRET: KEY_B });
    expect(refused.code).toBe(2);
    expect(refused.output).toMatch(/GAFFER_JWT_SECRET: this master's token signing key is not the one on record in this database/);
    expect(refused.output).toMatch(/--rotate-jwt-secret/);
    // Nor may a master without the secret start there (it would sign with the generated key).
    expect((await runGaffer(["master", "start", "--database-url", url, "--port", "0"], on)).code).toBe(2);
    expect((await http(first.url, "GET", "/ready")).status).toBe(200);

    const made = await runGaffer(["clients", "create", "--database-url", url, "--name", "admin", "--role", "admin", "--json"]);
    const admin = JSON.parse(made.output) as { id: string; client_secret: string };
    const oldToken = await adminToken(first.url, admin);

    const rotated = await spawnMaster(unused, { ...on, GAFFER_JWT_SECRET: KEY_B }, ["--database-url", url, "--rotate-jwt-secret"]);
    expect(rotated.output()).toMatch(/"event":"jwt.rotated"/);
    expect((await http(rotated.url, "GET", "/api/v1/jobs", undefined, oldToken)).status).toBe(401);
    expect((await http(rotated.url, "GET", "/api/v1/jobs", undefined, await adminToken(rotated.url, admin))).status).toBe(200);
    // The master still on the old key hears of it, says so, and leaves the load balancer's rotation.
    await eventually(async () => (await http(first.url, "GET", "/ready")).status === 503, 15_000, "/ready 503 on the old key's master");
    expect(first.output()).toMatch(/"event":"jwt.key_mismatch"/);
    // Nor does it answer requests or logins with its stale key: a 503 says why, where a 401 would drop the token.
    const stale = await http(first.url, "GET", "/api/v1/jobs", undefined, oldToken);
    expect(stale.status).toBe(503);
    expect(JSON.stringify(stale.body)).toMatch(/restart this master with the new GAFFER_JWT_SECRET/);
    expect((await http(first.url, "POST", "/api/v1/auth/token", { client_id: admin.id, client_secret: admin.client_secret })).status).toBe(503);
    // Started again with the new key, it is one of the cluster again.
    first.proc.kill("SIGTERM");
    expect(await first.exited).toBe(0);
    const restarted = await spawnMaster(unused, { ...on, GAFFER_JWT_SECRET: KEY_B }, ["--database-url", url]);
    expect((await http(restarted.url, "GET", "/ready")).status).toBe(200);
    // The rotation flag left on, with the key unchanged: a warning to remove it.
    const leftOn = await spawnMaster(unused, { ...on, GAFFER_JWT_SECRET: KEY_B }, ["--database-url", url, "--rotate-jwt-secret"]);
    expect(leftOn.output()).toMatch(/"event":"jwt.rotate_unused"/);
  }, 60_000);
});

describe("the token signing key on SQLite", () => {
  it("a master restarted with another key takes it, and warns that tokens issued before get 401", async () => {
    const db = join(tempDir(), "m.db");
    const on = { GAFFER_AUTH: "on" };
    const made = await runGaffer(["clients", "create", "--db", db, "--name", "admin", "--role", "admin", "--json"]);
    const admin = JSON.parse(made.output) as { id: string; client_secret: string };
    const first = await spawnMaster(db, { ...on, GAFFER_JWT_SECRET: KEY_A });
    const oldToken = await adminToken(first.url, admin);
    first.proc.kill("SIGTERM");
    expect(await first.exited).toBe(0);

    const second = await spawnMaster(db, { ...on, GAFFER_JWT_SECRET: KEY_B });
    expect(second.output()).toMatch(/"event":"jwt.replaced"/);
    expect((await http(second.url, "GET", "/api/v1/jobs", undefined, oldToken)).status).toBe(401);
    expect((await http(second.url, "GET", "/ready")).status).toBe(200);
  }, 30_000);
});
