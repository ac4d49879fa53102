// `npm start` (gaffer dev): a master and a local worker; a submitted job completes.
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { loadHandlers } from "../../worker/config.js";
import { runCommand } from "../../worker/runner.js";
import { http } from "../helpers/master.js";
import { eventually, spawnGaffer, stopAll, waitForOutput } from "../helpers/processes.js";
import { removeTempDirs, tempDir } from "../helpers/temp.js";

afterEach(async () => {
  await stopAll();
  removeTempDirs();
});

describe("gaffer dev (npm start)", () => {
  it("runs a master with a local worker that completes a submitted job, and stops on SIGINT", async () => {
    const dev = spawnGaffer(["dev", "--db", join(tempDir(), "gaffer.db"), "--port", "0"]);
    const [, url] = await waitForOutput(dev, /listening on (http:\/\/[0-9.:]+)/);
    await waitForOutput(dev, /"event":"dev.ready"/);
    const base = url ?? "";
    const job = await http(base, "POST", "/api/v1/jobs", { type: "echo", payload: { hello: "world" } });
    const done = await eventually(async () => {
      const current = await http(base, "GET", `/api/v1/jobs/${String(job.body.id)}`);
      return current.body.status === "completed" ? current.body : undefined;
    }, 10_000, "the echo job");
    expect(done.result).toEqual({ echo: { hello: "world" }, attempt: 1 });
    dev.proc.kill("SIGINT");
    expect(await dev.exited).toBe(0);
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
      signal: new AbortController().signal,
      onProgress: (p) => progress.push(p),
    });
    expect(outcome).toEqual({ status: "completed", result: { echo: { a: 1 }, job_id: "j1" } });
    expect(progress).toEqual([50]);
    const bad = await runCommand(echo, { id: "j2", type: "echo", payload: "text", attempt: 1 }, {
      timeoutMs: 10_000,
      signal: new AbortController().signal,
      onProgress: () => undefined,
    });
    expect(bad).toMatchObject({ status: "failed", error: { code: "exit_65", retryable: false } });
  });
});
