// The worker's settings from flags and environment (API.md §9, §10).
import { describe, expect, it } from "vitest";
import { loadWorkerConfig } from "../../worker/config.js";

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
});
