// The worker's settings from flags and environment (API.md §9, §10).
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { loadWorkerConfig } from "../../worker/config.js";
import { removeTempDirs, tempDir } from "../helpers/temp.js";

afterEach(() => removeTempDirs());

describe("worker config", () => {
  it("takes its secret and token out of the environment once read, and keeps the rest", () => {
    const env: NodeJS.ProcessEnv = {
      GAFFER_CLIENT_ID: "worker-1",
      GAFFER_CLIENT_SECRET: "gsk_secret",
      GAFFER_TOKEN: "eyJ.token",
      GAFFER_WORKER_NAME: "w1",
    };
    const config = loadWorkerConfig({}, env);
    expect(config).toMatchObject({ clientId: "worker-1", clientSecret: "gsk_secret", token: "eyJ.token", name: "w1" });
    expect(env).toEqual({ GAFFER_CLIENT_ID: "worker-1", GAFFER_WORKER_NAME: "w1" });
  });

  it("takes them out of the environment even when a flag gives the secret", () => {
    const env: NodeJS.ProcessEnv = { GAFFER_CLIENT_SECRET: "gsk_from_env" };
    expect(loadWorkerConfig({ clientSecret: "gsk_from_flag" }, env).clientSecret).toBe("gsk_from_flag");
    expect(env).toEqual({});
  });

  it("reads the secret from --client-secret-file or GAFFER_CLIENT_SECRET_FILE, and drops the variable", () => {
    const file = join(tempDir(), "secret");
    writeFileSync(file, "gsk_in_file\n", { mode: 0o600 });
    expect(loadWorkerConfig({ clientSecretFile: file }, {})).toMatchObject({ clientSecret: "gsk_in_file", warnings: [] });
    const env: NodeJS.ProcessEnv = { GAFFER_CLIENT_SECRET_FILE: file, GAFFER_WORKER_NAME: "w1" };
    expect(loadWorkerConfig({}, env).clientSecret).toBe("gsk_in_file");
    expect(env).toEqual({ GAFFER_WORKER_NAME: "w1" });
  });

  it("refuses a secret file it cannot read, still dropping the secrets from the environment", () => {
    const env: NodeJS.ProcessEnv = { GAFFER_CLIENT_SECRET_FILE: join(tempDir(), "missing"), GAFFER_TOKEN: "eyJ.token" };
    expect(() => loadWorkerConfig({}, env)).toThrow(/cannot read the client secret from .*missing: no such file/);
    expect(env).toEqual({});
  });

  it("warns about a secret given as an argument and about each plain-http master on another host", () => {
    const config = loadWorkerConfig({ clientSecret: "gsk_argv", master: "http://127.0.0.1:8080,http://gaffer-2.internal:8080" }, {});
    expect(config.warnings).toEqual([expect.stringMatching(/--client-secret on the command line.*\/proc/), expect.stringMatching(/gaffer-2\.internal.*plain http/)]);
    expect(loadWorkerConfig({ master: "https://gaffer.example.com" }, { GAFFER_CLIENT_SECRET: "s" }).warnings).toEqual([]);
  });
});

