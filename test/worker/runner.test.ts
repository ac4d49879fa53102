// Command and function handlers (API.md §10), with real child processes.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { longTimeout, runCommand, runFunction, type FunctionHandler, type Outcome, type RunParams } from "../../worker/runner.js";
import { removeTempDirs, tempDir } from "../helpers/temp.js";

const dir = tempDir("gaffer-runner-");
afterAll(() => removeTempDirs());

function script(name: string, body: string): string[] {
  const path = join(dir, name);
  writeFileSync(path, body);
  return [process.execPath, path];
}

const job = { id: "job-1", type: "t", payload: { n: 1 }, attempt: 2 };

function params(overrides: Partial<RunParams> = {}): RunParams & { progress: [number, string | undefined][] } {
  const progress: [number, string | undefined][] = [];
  return { timeoutMs: 10_000, onProgress: (p, m) => progress.push([p, m]), progress, ...overrides };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const READ_STDIN = `let input = ""; process.stdin.on("data", (c) => (input += c)); process.stdin.on("end", () => main(JSON.parse(input)));\n`;

describe("command handlers", () => {
  it("gets the job on stdin and in its environment, and its last stdout line is the result", async () => {
    const command = script(
      "echo.js",
      READ_STDIN +
        `function main(job) { console.log("working"); console.log(JSON.stringify({ job, env: [process.env.GAFFER_JOB_ID, process.env.GAFFER_JOB_TYPE, process.env.GAFFER_JOB_ATTEMPT, process.env.EXTRA] })); console.log(""); }`,
    );
    const outcome = await runCommand({ command, env: { EXTRA: "x" } }, job, params());
    expect(outcome).toMatchObject({ status: "completed", result: { job, env: ["job-1", "t", "2", "x"] } });
  });

  it("gets only PATH, HOME, LANG, LC_*, TZ and TMPDIR of the worker: never its credentials or other settings", async () => {
    const worker = {
      LANG: "C.UTF-8",
      LC_ALL: "C",
      TZ: "UTC",
      TMPDIR: dir,
      GAFFER_CLIENT_ID: "worker-1",
      GAFFER_CLIENT_SECRET: "gsk_secret",
      GAFFER_TOKEN: "eyJ.token",
      GAFFER_LOG_LEVEL: "debug",
      AWS_SECRET_ACCESS_KEY: "aws-secret",
    };
    for (const [name, value] of Object.entries(worker)) vi.stubEnv(name, value);
    try {
      const command = script("env.js", `console.log(JSON.stringify(process.env));`);
      const outcome = await runCommand({ command, env: { EXTRA: "x", GAFFER_HANDLER_SETTING: "y" } }, job, params());
      expect(outcome).toMatchObject({
        status: "completed",
        result: {
          PATH: process.env.PATH,
          HOME: process.env.HOME,
          LANG: "C.UTF-8",
          LC_ALL: "C",
          TZ: "UTC",
          TMPDIR: dir,
          EXTRA: "x",
          GAFFER_HANDLER_SETTING: "y",
          GAFFER_JOB_ID: "job-1",
          GAFFER_JOB_TYPE: "t",
          GAFFER_JOB_ATTEMPT: "2",
        },
      });
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it("is never run through a shell", async () => {
    const command = script("args.js", `console.log(JSON.stringify(process.argv.slice(2)));`);
    const outcome = await runCommand({ command: [...command, "$HOME", "a b", ";", "rm -rf /"] }, job, params());
    expect(outcome).toMatchObject({ status: "completed", result: ["$HOME", "a b", ";", "rm -rf /"] });
  });

  it("answers the last 4 KiB of stdout when the last line is not JSON", async () => {
    const command = script("text.js", `process.stdout.write("x".repeat(10000) + "\\nthe end\\n");`);
    const outcome = (await runCommand({ command }, job, params())) as Extract<Outcome, { status: "completed" }>;
    const stdout = (outcome.result as { stdout: string }).stdout;
    expect(stdout.length).toBe(4096);
    expect(stdout.endsWith("the end\n")).toBe(true);
  });

  it("fails exit 65 as not retryable, with the end of stderr", async () => {
    const command = script("bad.js", `console.error("line 1"); console.error("bad input: no field x"); process.exit(65);`);
    expect(await runCommand({ command }, job, params())).toMatchObject({
      status: "failed",
      error: { message: "line 1\nbad input: no field x", code: "exit_65", retryable: false },
    });
  });

  it("fails any other exit as retryable and keeps only the end of a huge stderr", async () => {
    const command = script("crash.js", `process.stderr.write("e".repeat(100000) + "TAIL"); process.exit(3);`);
    const outcome = (await runCommand({ command }, job, params())) as Extract<Outcome, { status: "failed" }>;
    expect(outcome.error.code).toBe("exit_3");
    expect(outcome.error.retryable).toBe(true);
    expect(outcome.error.message.length).toBeLessThanOrEqual(4096);
    expect(outcome.error.message.endsWith("TAIL")).toBe(true);
  });

  it("reports ::progress lines and leaves them out of the result", async () => {
    const command = script("progress.js", `console.log("::progress 10 starting"); console.log("::progress 150"); console.log('{"done":true}'); console.log("::progress 100 finished");`);
    const p = params();
    expect(await runCommand({ command }, job, p)).toMatchObject({ status: "completed", result: { done: true } });
    expect(p.progress).toEqual([[10, "starting"], [100, undefined], [100, "finished"]]);
  });

  it("kills a command past its timeout, with everything it started", async () => {
    const pidFile = join(dir, "timeout.pid");
    const command = script(
      "slow.js",
      `const { spawn } = require("node:child_process");
       const child = spawn(process.execPath, ["-e", "setTimeout(() => {}, 60000)"], { stdio: "ignore" });
       require("node:fs").writeFileSync(${JSON.stringify(pidFile)}, String(child.pid));
       process.on("SIGTERM", () => {}); // ignores the polite signal
       setTimeout(() => {}, 60000);`,
    );
    const started = Date.now();
    const outcome = await runCommand({ command }, job, params({ timeoutMs: 500, killGraceMs: 300 }));
    expect(outcome).toMatchObject({ status: "failed", error: { code: "timeout", retryable: true } });
    expect(Date.now() - started).toBeLessThan(5000);
    const grandchild = Number(readFileSync(pidFile, "utf8"));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(alive(grandchild)).toBe(false);
  });

  it("stops a canceled command with SIGTERM to its process group", async () => {
    const marker = join(dir, "terminated");
    const command = script(
      "cancel.js",
      `process.on("SIGTERM", () => { require("node:fs").writeFileSync(${JSON.stringify(marker)}, "yes"); process.exit(143); });
       console.log("ready"); setTimeout(() => {}, 60000);`,
    );
    const running = runCommand({ command }, job, params());
    await new Promise((resolve) => setTimeout(resolve, 300));
    running.stop();
    expect(await running).toMatchObject({ status: "failed", error: { code: "canceled", retryable: true } });
    expect(existsSync(marker)).toBe(true);
  });

  it("fails a command that cannot start", async () => {
    const outcome = await runCommand({ command: [join(dir, "no-such-program")] }, job, params());
    expect(outcome).toMatchObject({ status: "failed", error: { code: "spawn_failed", retryable: true } });
  });

  it("runs in the handler's cwd", async () => {
    const command = script("cwd.js", `console.log(JSON.stringify(process.cwd()));`);
    expect(await runCommand({ command, cwd: dir }, job, params())).toMatchObject({ status: "completed", result: dir });
  });
});

describe("function handlers", () => {
  it("answers the returned value as the result and reports progress", async () => {
    const p = params();
    const outcome = await runFunction(async (j, { progress }) => {
      progress(30, "a third");
      return { doubled: (j.payload as { n: number }).n * 2 };
    }, job, p);
    expect(outcome).toMatchObject({ status: "completed", result: { doubled: 2 } });
    expect(p.progress).toEqual([[30, "a third"]]);
  });

  it("fails on a throw, retryable unless the error says retryable: false", async () => {
    expect(await runFunction(async () => { throw new Error("flaky"); }, job, params())).toEqual({
      status: "failed",
      error: { message: "flaky", code: "handler_error", retryable: true },
    });
    const permanent = Object.assign(new Error("bad payload"), { retryable: false, code: "EINVAL" });
    expect(await runFunction(async () => { throw permanent; }, job, params())).toEqual({
      status: "failed",
      error: { message: "bad payload", code: "EINVAL", retryable: false },
    });
  });

  /** A handler that waits for its signal to be aborted; `aborted()` tells whether it was. */
  function waitsForAbort(): { handler: FunctionHandler; aborted: () => boolean } {
    let aborted = false;
    const handler: FunctionHandler = (_j, { signal }) =>
      new Promise((resolve) => {
        signal.addEventListener("abort", () => {
          aborted = true;
          resolve("late");
        });
      });
    return { handler, aborted: () => aborted };
  }

  it("times out and aborts the handler's signal", async () => {
    const waiting = waitsForAbort();
    const outcome = await runFunction(waiting.handler, job, params({ timeoutMs: 50 }));
    expect(outcome).toMatchObject({ status: "failed", error: { code: "timeout" } });
    expect(waiting.aborted()).toBe(true);
  });

  it("stops a function on stop(): canceled, and its signal aborted", async () => {
    const waiting = waitsForAbort();
    const running = runFunction(waiting.handler, job, params());
    await new Promise((resolve) => setTimeout(resolve, 20));
    running.stop();
    expect(await running).toMatchObject({ status: "failed", error: { code: "canceled", retryable: true } });
    expect(waiting.aborted()).toBe(true);
  });

  it("hands a signal already aborted to a handler that first looks after the stop", async () => {
    let look: (() => boolean) | undefined;
    const running = runFunction(
      (_j, context) =>
        new Promise(() => {
          look = () => context.signal.aborted;
        }),
      job,
      params(),
    );
    await new Promise((resolve) => setTimeout(resolve, 20));
    running.stop();
    await running;
    expect(look?.()).toBe(true);
  });
});

describe("function handlers' deadlines and calls", () => {
  /** Timers that keep the process alive, by Node's own count. */
  const timers = () => process.getActiveResourcesInfo().filter((kind) => kind === "Timeout").length;

  it("times out each run of one timeout length that is still going at its own deadline, and none that ended", async () => {
    const never: FunctionHandler = () => new Promise(() => undefined);
    const first = runFunction(never, job, params({ timeoutMs: 40 }));
    const quick = runFunction(async () => "done", job, params({ timeoutMs: 40 }));
    await new Promise((resolve) => setTimeout(resolve, 15));
    // Started later: its deadline is later than the first run's, in the same list.
    const second = runFunction(never, job, params({ timeoutMs: 40 }));
    let secondEnded = false;
    void second.then(() => (secondEnded = true));
    expect(await quick).toEqual({ status: "completed", result: "done" });
    expect(await first).toMatchObject({ status: "failed", error: { code: "timeout", message: "timed out after 0.04 s" } });
    expect(secondEnded).toBe(false);
    expect(await second).toMatchObject({ status: "failed", error: { code: "timeout" } });
  });

  it("keeps runs of different timeout lengths apart, and a stopped run out of its list", async () => {
    const never: FunctionHandler = () => new Promise(() => undefined);
    const long = runFunction(never, job, params({ timeoutMs: 10_000 }));
    const short = runFunction(never, job, params({ timeoutMs: 30 }));
    const stopped = runFunction(never, job, params({ timeoutMs: 30 }));
    stopped.stop();
    expect(await stopped).toMatchObject({ status: "failed", error: { code: "canceled" } });
    expect(await short).toMatchObject({ status: "failed", error: { code: "timeout" } });
    long.stop();
    expect(await long).toMatchObject({ status: "failed", error: { code: "canceled" } });
  });

  it("lets a run with a timeout longer than Node's longest timer (timeout_s up to 30 days) go on", async () => {
    const running = runFunction(() => new Promise(() => undefined), job, params({ timeoutMs: 30 * 86_400_000 }));
    let ended = false;
    void running.then(() => (ended = true));
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(ended).toBe(false);
    running.stop();
    expect(await running).toMatchObject({ status: "failed", error: { code: "canceled" } });
  });

  it("holds one timer while runs go on, and none once they all ended", async () => {
    const before = timers();
    const runs = Array.from({ length: 50 }, (_, i) => runFunction(async () => i, job, params({ timeoutMs: 60_000 })));
    expect(timers()).toBe(before + 1);
    expect((await Promise.all(runs)).map((outcome) => (outcome as { result: unknown }).result)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(timers()).toBe(before);
  });

  it("calls the handlers of runs started together later, in the order started, and answers a plain value, a throw and a thenable", async () => {
    const calls: string[] = [];
    const runs = [
      runFunction(() => (calls.push("a"), Promise.resolve(1)), job, params()),
      runFunction((() => (calls.push("b"), 2)) as unknown as FunctionHandler, job, params()),
      runFunction(() => {
        calls.push("c");
        throw new Error("sync throw");
      }, job, params()),
      runFunction((() => (calls.push("d"), { then: (ok: (value: unknown) => void) => ok(4) })) as unknown as FunctionHandler, job, params()),
      runFunction(async () => undefined, job, params()),
    ];
    expect(calls).toEqual([]);
    const outcomes = await Promise.all(runs);
    expect(calls).toEqual(["a", "b", "c", "d"]);
    expect(outcomes).toEqual([
      { status: "completed", result: 1 },
      { status: "completed", result: 2 },
      { status: "failed", error: { message: "sync throw", code: "handler_error", retryable: true } },
      { status: "completed", result: 4 },
      { status: "completed", result: null },
    ]);
  });

  it("gives a context whose signal, progress and log work taken apart from it", async () => {
    let seen: AbortSignal | undefined;
    const running = runFunction(
      (_j, { signal, progress, log }) => {
        seen = signal;
        progress(150, "over");
        log("line");
        return new Promise(() => undefined);
      },
      job,
      params(),
    );
    await new Promise((resolve) => setTimeout(resolve, 10));
    running.stop();
    expect(await running).toMatchObject({ status: "failed", error: { code: "canceled" }, logTail: "line\n" });
    expect(seen?.aborted).toBe(true);
  });
});

describe("what a handler gives that the master could not take", () => {
  it("reports no progress for a percent that is not a number (JSON would send NaN as null)", async () => {
    const p = params();
    const result = await runFunction(
      (_j, { progress }) => {
        progress(Number.NaN, "nan");
        progress(Number.POSITIVE_INFINITY);
        progress(40, "forty");
        return Promise.resolve("done");
      },
      job,
      p,
    );
    expect(result).toMatchObject({ status: "completed", result: "done" });
    expect(p.progress).toEqual([[40, "forty"]]);
  });

  it("cuts an error code to the 128 characters the master keeps", async () => {
    const result = await runFunction(
      () => Promise.reject(Object.assign(new Error("bad"), { code: "C".repeat(300) })),
      job,
      params(),
    );
    expect(result).toMatchObject({ status: "failed", error: { message: "bad", code: "C".repeat(128) } });
  });
});

describe("handlers that throw what cannot be printed", () => {
  it("fails a handler that throws an object without a prototype, and still calls the handlers started with it", async () => {
    const bad = (() => {
      throw Object.create(null);
    }) as unknown as FunctionHandler;
    const first = runFunction(bad, job, params({ timeoutMs: 5_000 }));
    const second = runFunction(() => Promise.resolve("second ran"), job, params({ timeoutMs: 5_000 }));
    expect(await second).toMatchObject({ status: "completed", result: "second ran" });
    expect(await first).toMatchObject({ status: "failed", error: { message: "[object Object]", code: "handler_error" } });
  });

  it("fails at once a handler whose promise rejects with one", async () => {
    expect(await runFunction(() => Promise.reject(Object.create(null)), job, params({ timeoutMs: 5_000 }))).toMatchObject({
      status: "failed",
      error: { code: "handler_error" },
    });
  });
});

describe("longTimeout", () => {
  it("waits past Node's longest timer in steps (a command's timeout_s may be 30 days), and can be cleared", () => {
    vi.useFakeTimers();
    try {
      const fired: string[] = [];
      const month = 30 * 24 * 3600 * 1000;
      longTimeout(() => fired.push("month"), month);
      const cleared = longTimeout(() => fired.push("cleared"), month);
      vi.advanceTimersByTime(2 ** 31);
      cleared.clear();
      expect(fired).toEqual([]);
      vi.advanceTimersByTime(month - 2 ** 31 - 1);
      expect(fired).toEqual([]);
      vi.advanceTimersByTime(1);
      expect(fired).toEqual(["month"]);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("log tails", () => {
  it("keeps the end of a command's stdout and stderr, as they came, within the limit", async () => {
    const command = script(
      "noisy.js",
      `process.stdout.write("out-1\\n"); setTimeout(() => { process.stderr.write("err-2\\n"); setTimeout(() => console.log(JSON.stringify({ done: true })), 20); }, 20);`,
    );
    const outcome = await runCommand({ command }, job, params());
    expect(outcome).toEqual({ status: "completed", result: { done: true }, logTail: 'out-1\nerr-2\n{"done":true}\n' });
    const short = await runCommand({ command }, job, params({ logTailBytes: 8 }));
    expect(short.logTail).toBe('e":true}\n'.slice(-8));
    const none = await runCommand({ command }, job, params({ logTailBytes: 0 }));
    expect(none).not.toHaveProperty("logTail");
  });

  it("sends no log tail for a command that wrote nothing", async () => {
    const outcome = await runCommand({ command: script("silent.js", "process.exitCode = 0;") }, job, params());
    expect(outcome).toEqual({ status: "completed", result: { stdout: "" } });
  });

  it("keeps what a function handler logs through its context", async () => {
    const handler: FunctionHandler = async (_job, context) => {
      context.log("fetching");
      context.log("parsed 3 rows\n");
      throw Object.assign(new Error("bad row"), { retryable: false });
    };
    const outcome = await runFunction(handler, job, params());
    expect(outcome).toEqual({ status: "failed", error: { message: "bad row", code: "handler_error", retryable: false }, logTail: "fetching\nparsed 3 rows\n" });
  });
});
