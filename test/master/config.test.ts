// Configuration: defaults < profile < file < environment < flags, validated all at once.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../master/config.js";
import { removeTempDirs, tempDir } from "../helpers/temp.js";

afterEach(() => removeTempDirs());

describe("loadConfig", () => {
  it("uses the contract's defaults", () => {
    const config = loadConfig({ env: {} });
    expect(config).toMatchObject({
      db: "./data/gaffer.db",
      dbSynchronous: "full",
      host: "127.0.0.1",
      port: 8080,
      auth: "on",
      tokenTtlS: 3600,
      rateLimitPerMinute: 600,
      workerRateLimitPerMinute: 60_000,
      nodeTimeoutS: 60,
      sweepIntervalS: 10,
      maxRetries: 3,
      retryDelayS: 5,
      retryMaxDelayS: 300,
      jobTimeoutS: 3600,
      stallGraceS: 300,
      agingS: 300,
      maxPayloadBytes: 1_048_576,
      retentionDays: 30,
      metricsMaxTypes: 100,
      clientMaxQueued: 1_000_000,
      clientMaxSchedules: 100,
      clientMaxBatchBytes: 4 * 1_048_576,
      logLevel: "info",
      heartbeatIntervalS: 10,
    });
  });

  it("reads the client quotas from the environment and refuses a limit of no jobs", () => {
    const config = loadConfig({ env: { GAFFER_CLIENT_MAX_QUEUED: "5", GAFFER_CLIENT_MAX_SCHEDULES: "0", GAFFER_CLIENT_MAX_BATCH_BYTES: "2048" } });
    expect(config).toMatchObject({ clientMaxQueued: 5, clientMaxSchedules: 0, clientMaxBatchBytes: 2048 });
    expect(() => loadConfig({ env: { GAFFER_CLIENT_MAX_QUEUED: "0" } })).toThrow(/GAFFER_CLIENT_MAX_QUEUED/);
  });

  it("takes GAFFER_FAIR_SHARE off (the default) or clients, and refuses anything else by name", () => {
    // Unset: the master follows the database's mode.
    expect(loadConfig({ env: {} }).fairShare).toBeUndefined();
    expect(loadConfig({ env: { GAFFER_FAIR_SHARE: "clients" } }).fairShare).toBe("clients");
    expect(() => loadConfig({ env: { GAFFER_FAIR_SHARE: "fair" } })).toThrow(/fairShare \(GAFFER_FAIR_SHARE\): must be off .* or clients/);
  });

  it("takes GAFFER_STORE_THREAD off (the default) or on, and refuses anything else by name", () => {
    expect(loadConfig({ env: {} }).storeThread).toBe("off");
    expect(loadConfig({ env: { GAFFER_STORE_THREAD: "on" } }).storeThread).toBe("on");
    expect(() => loadConfig({ env: { GAFFER_STORE_THREAD: "yes" } })).toThrow(/GAFFER_STORE_THREAD/);
  });

  it("layers profile < file < environment < flags", () => {
    const file = join(tempDir(), "gaffer.json");
    writeFileSync(file, JSON.stringify({ nodeTimeoutS: 90, GAFFER_PORT: 9000, maxRetries: 7 }));
    const config = loadConfig({
      configFile: file,
      env: { GAFFER_PORT: "9100", GAFFER_PROFILE: "dev", GAFFER_MAX_RETRIES: "8" },
      flags: { port: "9200" },
    });
    expect(config.profile).toBe("dev");
    expect(config.auth).toBe("off");
    expect(config.nodeTimeoutS).toBe(90);
    expect(config.maxRetries).toBe(8);
    expect(config.port).toBe(9200);
  });

  it("takes fractional seconds, so tests can use short timeouts", () => {
    const config = loadConfig({ env: { GAFFER_NODE_TIMEOUT_S: "0.5", GAFFER_SWEEP_INTERVAL_S: "0.1" } });
    expect(config.nodeTimeoutS).toBe(0.5);
    expect(config.heartbeatIntervalS).toBeCloseTo(0.5 / 3);
  });

  it("lists every bad value at once, by its variable name", () => {
    try {
      loadConfig({ env: { GAFFER_PORT: "http", GAFFER_NODE_TIMEOUT_S: "-1", GAFFER_DB_SYNCHRONOUS: "off" } });
      expect.fail("loadConfig accepted bad values");
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      const message = (error as Error).message;
      expect(message).toMatch(/GAFFER_PORT/);
      expect(message).toMatch(/GAFFER_NODE_TIMEOUT_S/);
      expect(message).toMatch(/GAFFER_DB_SYNCHRONOUS/);
    }
  });

  it("with auth off, refuses to listen anywhere but loopback, and says why", () => {
    for (const env of [{ GAFFER_AUTH: "off", GAFFER_HOST: "0.0.0.0" }, { GAFFER_PROFILE: "dev", GAFFER_HOST: "::" }, { GAFFER_AUTH: "off", GAFFER_HOST: "192.168.1.10" }]) {
      expect(() => loadConfig({ env }), JSON.stringify(env)).toThrow(/host \(GAFFER_HOST\): with auth off .* listens only on loopback/);
    }
    for (const host of ["127.0.0.1", "::1", "localhost", "127.0.0.2"]) {
      expect(loadConfig({ env: { GAFFER_AUTH: "off", GAFFER_HOST: host } }).host).toBe(host);
    }
    expect(loadConfig({ env: { GAFFER_HOST: "0.0.0.0" } }).host).toBe("0.0.0.0");
    expect(loadConfig({ env: { GAFFER_PROFILE: "dev", GAFFER_AUTH: "on", GAFFER_HOST: "0.0.0.0" } }).host).toBe("0.0.0.0");
  });

  it("refuses an unknown profile and an unreadable config file", () => {
    expect(() => loadConfig({ env: { GAFFER_PROFILE: "staging" } })).toThrow(/dev or prod/);
    expect(() => loadConfig({ env: {}, configFile: "/nonexistent/gaffer.json" })).toThrow(ConfigError);
  });
});
