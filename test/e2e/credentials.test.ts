// The CLI and the worker daemon take their secret from a file, and warn about a secret in
// argv and a plain-http master on another host (API.md §9). No test here reaches another host:
// each command given such a URL stops on a usage error before it connects.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeHandlers } from "../helpers/handlers.js";
import { runGaffer, spawnMaster, spawnWorker, stopAll, type MasterProcess } from "../helpers/processes.js";
import { removeTempDirs, tempDir } from "../helpers/temp.js";

let master: MasterProcess;
let admin: { id: string; client_secret: string };
let worker: { id: string; client_secret: string };
let adminFile: string;

/** A documentation address (RFC 5737): never reached, since every command below stops first. */
const REMOTE = "http://192.0.2.10:8080";

beforeAll(async () => {
  const db = join(tempDir(), "credentials.db");
  const create = async (name: string, role: string) =>
    JSON.parse((await runGaffer(["clients", "create", "--db", db, "--name", name, "--role", role, "--json"])).output) as { id: string; client_secret: string };
  admin = await create("root", "admin");
  worker = await create("host-1", "worker");
  adminFile = join(tempDir(), "admin.secret");
  writeFileSync(adminFile, `${admin.client_secret}\n`, { mode: 0o600 });
  master = await spawnMaster(db, { GAFFER_AUTH: "on" });
});
afterAll(async () => {
  await stopAll();
  removeTempDirs();
});

describe("gaffer with --client-secret-file", () => {
  it("signs in with the secret in a file (its trailing newline dropped), by flag or variable, and warns of nothing", async () => {
    const byFlag = await runGaffer(["stats", "--json", "--client-id", admin.id, "--client-secret-file", adminFile], { GAFFER_MASTER_URL: master.url });
    expect(byFlag.code).toBe(0);
    expect(byFlag.output).not.toMatch(/warning/);
    const byVariable = await runGaffer(["stats", "--json"], { GAFFER_MASTER_URL: master.url, GAFFER_CLIENT_ID: admin.id, GAFFER_CLIENT_SECRET_FILE: adminFile });
    expect(byVariable.code).toBe(0);
  });

  it("stops with a clear error when the file is missing", async () => {
    const missing = join(tempDir(), "no-such.secret");
    const result = await runGaffer(["stats", "--client-id", admin.id, "--client-secret-file", missing], { GAFFER_MASTER_URL: master.url });
    expect(result.code).toBe(2);
    expect(result.output).toContain(`gaffer: cannot read the client secret from ${missing}: no such file`);
  });

  it("warns on stderr about --client-secret on the command line, and still works", async () => {
    const result = await runGaffer(["stats", "--json", "--client-id", admin.id, "--client-secret", admin.client_secret], { GAFFER_MASTER_URL: master.url });
    expect(result.code).toBe(0);
    expect(result.output).toMatch(/gaffer: warning: --client-secret on the command line .*\/proc\/PID\/cmdline.*--client-secret-file PATH or GAFFER_CLIENT_SECRET/);
  });

  it("warns about a plain-http master on another host", async () => {
    const result = await runGaffer(["stats", "--master", REMOTE, "--client-id", admin.id], {});
    expect(result.code).toBe(2);
    expect(result.output).toContain(`gaffer: warning: ${REMOTE} is plain http to another host`);
    expect(result.output).toMatch(/no secret/);
  });
});

describe("gaffer worker start with --client-secret-file", () => {
  it("registers with the secret read from the file", async () => {
    const dir = tempDir();
    const file = join(dir, "worker.secret");
    writeFileSync(file, `${worker.client_secret}\n`, { mode: 0o600 });
    const running = await spawnWorker(master.url, {
      name: "from-file",
      handlers: writeHandlers(dir),
      stateDir: join(dir, "state"),
      env: { GAFFER_CLIENT_ID: worker.id },
      args: ["--client-secret-file", file],
    });
    expect(running.output()).not.toMatch(/warning/);
    running.proc.kill("SIGTERM");
    expect(await running.exited).toBe(0);
  });

  it("stops with a clear error when the file is missing, and warns about argv secrets and plain http elsewhere", async () => {
    const dir = tempDir();
    const missing = await runGaffer(["worker", "start", "--handlers", writeHandlers(dir), "--client-id", worker.id, "--client-secret-file", join(dir, "none")], {
      GAFFER_MASTER_URL: master.url,
    });
    expect(missing.code).toBe(2);
    expect(missing.output).toContain(`cannot read the client secret from ${join(dir, "none")}: no such file`);
    // No --handlers: a usage error after the warnings, before any connection.
    const warned = await runGaffer(["worker", "start", "--master", `${master.url},${REMOTE}`, "--client-id", worker.id, "--client-secret", "gsk_x"], {});
    expect(warned.code).toBe(2);
    expect(warned.output).toMatch(/gaffer: warning: --client-secret on the command line/);
    expect(warned.output).toContain(`gaffer: warning: ${REMOTE} is plain http to another host`);
    expect(warned.output).not.toContain(`${master.url} is plain http`);
  });
});
