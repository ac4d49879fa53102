// `npm start` (gaffer dev): a master and a local worker; a newcomer submits a job with the CLI and sees it complete.
import { statSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { loadHandlers } from "../../worker/config.js";
import { runCommand } from "../../worker/runner.js";
import { http } from "../helpers/master.js";
import { eventually, runGaffer, spawnGaffer, stopAll, waitForOutput } from "../helpers/processes.js";
import { removeTempDirs, tempDir } from "../helpers/temp.js";

afterEach(async () => {
  await stopAll();
  removeTempDirs();
});

function envFile(path: string): Record<string, string> {
  return Object.fromEntries(
    readFileSync(path, "utf8")
      .split("\n")
      .filter((line) => /^[A-Z_]+=/.test(line))
      .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
  );
}

describe("gaffer dev (npm start)", () => {
  it("writes the first admin's credentials for the user only, runs a job submitted with the CLI, keeps them across restarts", async () => {
    const dir = tempDir();
    const dev = spawnGaffer(["dev", "--db", join(dir, "gaffer.db"), "--port", "0"]);
    await waitForOutput(dev, /"event":"dev.ready"/);
    const file = join(dir, "credentials.env");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const env = envFile(file);
    expect(env.GAFFER_CLIENT_ID).toMatch(/^admin-/);
    const submitted = await runGaffer(["jobs", "submit", "--type", "echo", "--payload", '{"hello":"world"}', "--wait", "--json"], env);
    expect(submitted.code).toBe(0);
    expect(JSON.parse(submitted.output.slice(submitted.output.indexOf("{")))).toMatchObject({
      status: "completed",
      result: { echo: { hello: "world" }, attempt: 1 },
    });
    expect((await http(env.GAFFER_MASTER_URL ?? "", "GET", "/api/v1/jobs")).status).toBe(401);
    dev.proc.kill("SIGINT");
    expect(await dev.exited).toBe(0);

    const again = spawnGaffer(["dev", "--db", join(dir, "gaffer.db"), "--port", "0"]);
    await waitForOutput(again, /"event":"dev.ready"/);
    expect(envFile(file).GAFFER_CLIENT_ID).toBe(env.GAFFER_CLIENT_ID);
  });
});

describe("gaffer dev's messages", () => {
  it("says what the first start made and where to sign in; stopping says how long, and a second Ctrl-C stops at once", async () => {
    const dir = tempDir();
    const file = join(dir, "credentials.env");
    const dev = spawnGaffer(["dev", "--db", join(dir, "gaffer.db"), "--port", "0"]);
    await waitForOutput(dev, /"event":"dev.ready"/);
    expect(dev.output()).not.toMatch(/no admin client yet/);
    expect(dev.output()).toMatch(/made an admin client for you: admin-/);
    expect(dev.output()).not.toMatch(/below/);
    expect(dev.output()).toContain(`sign in with GAFFER_CLIENT_ID and GAFFER_CLIENT_SECRET from ${file}`);

    const env = envFile(file);
    const submitted = await runGaffer(["jobs", "submit", "--type", "sleep", "--payload", '{"seconds":60}', "--json"], env);
    const { id } = JSON.parse(submitted.output) as { id: string };
    await eventually(async () => JSON.parse((await runGaffer(["jobs", "get", id, "--json"], env)).output).status === "running", 20_000, "a running job");
    dev.proc.kill("SIGINT");
    await waitForOutput(dev, /waiting up to 30 s for 1 running job to finish/);
    expect(dev.output()).toMatch(/Ctrl-C again stops at once/);
    const secondAt = Date.now();
    dev.proc.kill("SIGINT");
    expect(await dev.exited).toBe(1);
    expect(Date.now() - secondAt).toBeLessThan(5000);
  });
});

describe("worker/examples/handlers.json", () => {
  it("runs the example echo command as the README shows it", async () => {
    const root = fileURLToPath(new URL("../..", import.meta.url));
    const handlers = loadHandlers(join(root, "worker", "examples", "handlers.json"));
    const echo = handlers.echo;
    if (!echo) throw new Error("no echo handler");
    expect(echo.cwd).toBe(join(root, "worker", "examples"));
    const progress: number[] = [];
    const outcome = await runCommand(echo, { id: "j1", type: "echo", payload: { a: 1 }, attempt: 1 }, {
      timeoutMs: 10_000,
      onProgress: (p) => progress.push(p),
    });
    expect(outcome).toMatchObject({ status: "completed", result: { echo: { a: 1 }, job_id: "j1" } });
    expect(progress).toEqual([50]);
    const bad = await runCommand(echo, { id: "j2", type: "echo", payload: "text", attempt: 1 }, {
      timeoutMs: 10_000,
      onProgress: () => undefined,
    });
    expect(bad).toMatchObject({ status: "failed", error: { code: "exit_65", retryable: false } });
  });
});
