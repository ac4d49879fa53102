// The worker daemon with real processes: a master and workers started through the CLI,
// handler scripts written by the test. Each test uses its own label so that workers
// of other tests never take its jobs.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Job } from "../../master/store/types.js";
import { writeHandlers } from "../helpers/handlers.js";
import { http } from "../helpers/master.js";
import { eventually, freePort, runGaffer, spawnGaffer, spawnMaster, spawnWorker, stopAll, waitForOutput, type MasterProcess } from "../helpers/processes.js";
import { removeTempDirs, tempDir } from "../helpers/temp.js";

/** Short timeouts through the GAFFER_* settings, so nothing waits for real minutes. */
const FAST = {
  GAFFER_NODE_TIMEOUT_S: "1.5",
  GAFFER_SWEEP_INTERVAL_S: "0.2",
  GAFFER_HEARTBEAT_INTERVAL_S: "0.3",
  GAFFER_RETRY_DELAY_S: "0.05",
  GAFFER_RETRY_MAX_DELAY_S: "0.2",
  GAFFER_STALL_GRACE_S: "2",
};

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function submit(url: string, body: Record<string, unknown>): Promise<Job> {
  const result = await http<Job>(url, "POST", "/api/v1/jobs", body);
  expect(result.status).toBe(201);
  return result.body;
}

async function getJob(url: string, id: string): Promise<Job> {
  return (await http<Job>(url, "GET", `/api/v1/jobs/${id}`)).body;
}

function until(url: string, id: string, predicate: (job: Job) => boolean, timeoutMs = 15_000): Promise<Job> {
  return eventually(async () => {
    const job = await getJob(url, id);
    return predicate(job) ? job : undefined;
  }, timeoutMs, `job ${id}`);
}

describe("worker daemon", () => {
  let dir: string;
  let master: MasterProcess;

  beforeAll(async () => {
    dir = tempDir("gaffer-worker-e2e-");
    master = await spawnMaster(join(dir, "master.db"), FAST);
  });
  afterAll(async () => {
    await stopAll();
    removeTempDirs();
  });

  // Each worker's handlers say its name in their environment (a handler sees no other variable of the worker's).
  const worker = (name: string, labels: string, extra: Partial<Parameters<typeof spawnWorker>[1]> = {}, url = master.url) => {
    const own = join(dir, `handlers-${name}`);
    mkdirSync(own, { recursive: true });
    return spawnWorker(url, {
      name,
      labels,
      handlers: writeHandlers(own, undefined, { WORKER_NAME: name }),
      stateDir: join(dir, `state-${name}`),
      ...extra,
    });
  };

  it("runs a command job and reports its last stdout line as the result", async () => {
    await worker("basic", "basic", { capacity: 2 });
    const job = await submit(master.url, { type: "echo", requires: ["basic"], payload: { result: { answer: 42 } } });
    const done = await until(master.url, job.id, (j) => j.status === "completed");
    expect(done.result).toEqual({ answer: 42 });
  });

  it("sends the end of a command's output with its result, for the attempt and gaffer jobs logs", async () => {
    await worker("logs", "logs");
    const job = await submit(master.url, { type: "echo", requires: ["logs"], payload: { stderr: "warning: disk 91% full", result: { rows: 3 } } });
    await until(master.url, job.id, (j) => j.status === "completed");
    const attempts = await http<{ items: { attempt: number; outcome: string; log_tail: string | null }[] }>(master.url, "GET", `/api/v1/jobs/${job.id}/attempts`);
    expect(attempts.body.items).toMatchObject([{ attempt: 1, outcome: "completed" }]);
    expect(attempts.body.items[0]?.log_tail).toContain("warning: disk 91% full\n");
    expect(attempts.body.items[0]?.log_tail).toContain('{"rows":3}\n');
    const logs = await runGaffer(["jobs", "logs", job.id, "--master", master.url]);
    expect(logs.code).toBe(0);
    expect(logs.output).toContain("warning: disk 91% full");
    const table = await runGaffer(["jobs", "attempts", job.id, "--master", master.url]);
    expect(table.output).toMatch(/^ATTEMPT\s+NODE_NAME\s+OUTCOME/);
    expect(table.output).toMatch(/\n1\s+logs\s+completed\s/);
    const none = await runGaffer(["jobs", "logs", job.id, "--attempt", "2", "--master", master.url]);
    expect(none.code).toBe(3);
    expect(none.output).toContain("has no attempt 2 (it has 1)");
  });

  it("gaffer jobs get --wait says each change of status, then the finished job", async () => {
    await worker("waitcli", "waitcli");
    // The job runs until the command line has said it runs (a fixed sleep was sometimes over
    // before a loaded machine had started the command).
    const gate = join(dir, "waitcli-gate");
    const job = await submit(master.url, { type: "echo", requires: ["waitcli"], payload: { gate_file: gate, result: { slept: true } } });
    await until(master.url, job.id, (j) => j.status === "running");
    const waiting = spawnGaffer(["jobs", "get", job.id, "--wait", "--master", master.url]);
    await waitForOutput(waiting, /^ {2}running on [0-9a-f-]+ \(attempt 1\)$/m);
    writeFileSync(gate, "");
    expect(await waiting.exited).toBe(0);
    expect(waiting.output()).toMatch(/^status\s+completed$/m);
    const late = await runGaffer(["jobs", "get", job.id, "--wait", "--wait-timeout-s", "1", "--master", master.url]);
    expect(late.code).toBe(0);
  });

  it("gives a handler none of the worker's credentials or GAFFER_* settings", async () => {
    const script = join(dir, "env.js");
    writeFileSync(script, `console.log(JSON.stringify(process.env));`);
    const envHandlers = join(dir, "env-handlers.json");
    writeFileSync(envHandlers, JSON.stringify({ env: { command: [process.execPath, script] } }));
    await worker("env", "env", {
      handlers: envHandlers,
      // Auth is off on this master: it ignores the credentials, the worker still holds them.
      env: { GAFFER_CLIENT_ID: "worker-env", GAFFER_CLIENT_SECRET: "gsk_do_not_leak", GAFFER_TOKEN: "eyJ.do_not_leak", TZ: "UTC", OTHER: "x" },
    });
    const job = await submit(master.url, { type: "env", requires: ["env"] });
    const done = await until(master.url, job.id, (j) => j.status === "completed");
    expect(Object.keys(done.result as Record<string, string>).sort()).toEqual(["GAFFER_JOB_ATTEMPT", "GAFFER_JOB_ID", "GAFFER_JOB_TYPE", "HOME", "PATH", "TZ"]);
  });

  it("hands each worker only the types it has handlers for; a type nobody runs waits", async () => {
    const echoes = await worker("types-echo", "types", { capacity: 4 });
    const resizes = [1, 2, 3].map(() => submit(master.url, { type: "resize", requires: ["types"] }));
    const echoJobs = [1, 2, 3].map((i) => submit(master.url, { type: "echo", requires: ["types"], payload: { result: i } }));
    const doneEchoes = await Promise.all((await Promise.all(echoJobs)).map((job) => until(master.url, job.id, (j) => j.status === "completed")));
    // No node runs resize yet: its jobs wait, none failed or was handed out.
    for (const job of await Promise.all(resizes)) expect(await getJob(master.url, job.id)).toMatchObject({ status: "pending", attempt: 0 });
    // And the command line says why.
    const why = await runGaffer(["jobs", "why", (await resizes[0])?.id ?? "", "--master", master.url]);
    expect(why.output).toMatch(/^pending: waiting\n {2}no_handler\s+no online node with its labels runs jobs of type resize$/m);
    // A second worker whose handlers run resize takes them, and only them.
    const resizeDir = tempDir("gaffer-worker-resize-");
    const resizer = await worker("types-resize", "types", { handlers: writeHandlers(resizeDir, ["resize"]), capacity: 4 });
    const doneResizes = await Promise.all((await Promise.all(resizes)).map((job) => until(master.url, job.id, (j) => j.status === "completed")));
    const nodes = (await http<{ items: { id: string; name: string; types: string[] | null }[] }>(master.url, "GET", "/api/v1/nodes?limit=100")).body.items;
    const nameOf = (id: string | null) => nodes.find((node) => node.id === id)?.name;
    expect(doneEchoes.map((job) => nameOf(job.node_id))).toEqual(["types-echo", "types-echo", "types-echo"]);
    expect(doneResizes.map((job) => [nameOf(job.node_id), job.attempt])).toEqual([["types-resize", 1], ["types-resize", 1], ["types-resize", 1]]);
    expect(nodes.find((node) => node.name === "types-resize")?.types).toEqual(["resize"]);
    expect(nodes.find((node) => node.name === "types-echo")?.types).toEqual(["echo", "gpu-work", "slow"]);
    expect(echoes.output()).not.toMatch(/no handler/);
    expect(resizer.output()).not.toMatch(/no handler/);
  });

  it("keeps claiming with a capacity of one: a backlog, its end, then one job at a time", async () => {
    await worker("single", "single", { capacity: 1 });
    // A backlog first (every claim comes back full), then jobs that arrive one by one.
    const backlog = await Promise.all([1, 2, 3].map((i) => submit(master.url, { type: "echo", requires: ["single"], payload: { result: i } })));
    for (const job of backlog) await until(master.url, job.id, (j) => j.status === "completed");
    for (let i = 0; i < 3; i++) {
      const job = await submit(master.url, { type: "echo", requires: ["single"], payload: { result: i } });
      expect((await until(master.url, job.id, (j) => j.status === "completed")).result).toBe(i);
    }
  });

  it("does not retry exit 65, retries other failures up to max_retries", async () => {
    await worker("retries", "retries", { capacity: 3 });
    const bad = await submit(master.url, { type: "echo", requires: ["retries"], max_retries: 3, payload: { exit: 65, stderr: "no such file" } });
    const flaky = await submit(master.url, { type: "echo", requires: ["retries"], max_retries: 2, payload: { exit: 1, stderr: "boom" } });
    const recovers = await submit(master.url, { type: "echo", requires: ["retries"], max_retries: 2, payload: { fail_until_attempt: 2 } });
    expect(await until(master.url, bad.id, (j) => j.status === "failed")).toMatchObject({
      attempt: 1,
      failure_reason: "non_retryable",
      error: { code: "exit_65", retryable: false, message: "no such file" },
    });
    expect(await until(master.url, flaky.id, (j) => j.status === "failed")).toMatchObject({
      attempt: 3,
      retry_count: 2,
      failure_reason: "max_retries_exceeded",
      error: { code: "exit_1", message: "boom" },
    });
    expect(await until(master.url, recovers.id, (j) => j.status === "completed")).toMatchObject({ attempt: 2, retry_count: 1 });
  });

  it("kills a job past its timeout_s, with its process, and retries it", async () => {
    await worker("timeouts", "timeouts");
    const pidFile = join(dir, "timeout.pid");
    const job = await submit(master.url, {
      type: "echo",
      requires: ["timeouts"],
      timeout_s: 0.5,
      max_retries: 1,
      payload: { sleep_ms: 60_000, pid_file: pidFile },
    });
    const failed = await until(master.url, job.id, (j) => j.status === "failed");
    expect(failed).toMatchObject({ attempt: 2, failure_reason: "max_retries_exceeded", error: { code: "timeout", retryable: true } });
    expect(alive(Number(readFileSync(pidFile, "utf8")))).toBe(false);
  });

  it("cancels a running job: its handler process is really gone", async () => {
    await worker("cancel", "cancel");
    const pidFile = join(dir, "cancel.pid");
    const job = await submit(master.url, { type: "slow", requires: ["cancel"], payload: { sleep_ms: 60_000, pid_file: pidFile } });
    await until(master.url, job.id, (j) => j.status === "running");
    await eventually(async () => existsSync(pidFile), 5000, "the handler to start");
    const pid = Number(readFileSync(pidFile, "utf8"));
    expect(alive(pid)).toBe(true);
    const asked = await http<Job>(master.url, "POST", `/api/v1/jobs/${job.id}/cancel`);
    expect(asked.body).toMatchObject({ status: "running", cancel_requested: true });
    await until(master.url, job.id, (j) => j.status === "canceled");
    expect(alive(pid)).toBe(false);
  });

  it("sends a handler's progress to the master", async () => {
    await worker("progress", "progress");
    const job = await submit(master.url, { type: "slow", requires: ["progress"], payload: { progress: [42, "the answer"], sleep_ms: 3000 } });
    const reported = await until(master.url, job.id, (j) => j.progress === 42);
    expect(reported).toMatchObject({ status: "running", progress_message: "the answer" });
    const events = await http<{ items: { event_type: string }[] }>(master.url, "GET", `/api/v1/jobs/${job.id}/events`);
    expect(events.body.items.map((e) => e.event_type)).toContain("job.progress");
  });

  it("never gives a gpu job to a worker without the gpu label", async () => {
    await worker("cpu-only", "nogpu-test", { capacity: 4 });
    const job = await submit(master.url, { type: "gpu-work", requires: ["nogpu-test", "gpu"] });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect((await getJob(master.url, job.id)).status).toBe("pending");
    const gpu = await worker("gpu-box", "nogpu-test,gpu");
    const done = await until(master.url, job.id, (j) => j.status === "completed");
    const nodes = await http<{ items: { id: string; name: string }[] }>(master.url, "GET", "/api/v1/nodes?limit=100");
    expect(nodes.body.items.find((n) => n.id === done.node_id)?.name).toBe("gpu-box");
    expect(gpu.output()).toMatch(new RegExp(`"event":"job.completed","jobId":"${job.id}"`));
  });

  it("re-runs the job of a worker killed with -9 on another worker after the node timeout", async () => {
    const runs = join(dir, "kill9.runs");
    const victim = await worker("victim", "kill9");
    const job = await submit(master.url, { type: "slow", requires: ["kill9"], payload: { sleep_ms: 2500, runs_file: runs } });
    await until(master.url, job.id, (j) => j.status === "running");
    await eventually(async () => existsSync(runs), 5000, "the handler to start");
    victim.proc.kill("SIGKILL");
    await victim.exited;
    await worker("rescuer", "kill9");
    const done = await until(master.url, job.id, (j) => j.status === "completed", 20_000);
    expect(done).toMatchObject({ attempt: 2, retry_count: 1 });
    const lines = readFileSync(runs, "utf8").trim().split("\n");
    expect(lines.map((line) => line.split(" ").slice(1).join(" "))).toEqual(["1 victim", "2 rescuer"]);
    const nodes = await http<{ items: { name: string; status: string }[] }>(master.url, "GET", "/api/v1/nodes?limit=100");
    expect(nodes.body.items.find((n) => n.name === "victim")?.status).toBe("dead");
  });

  it("stops gracefully: finishes the running job, sends its result, deregisters, exits 0", async () => {
    // A master of its own with a node timeout no loaded machine outlasts: with FAST's 1.5 s a
    // heartbeat held up by the load could let the lease run out mid-job, and the result would
    // then be refused (the job back to pending): not what this test is about.
    const own = await spawnMaster(join(dir, "graceful.db"), { ...FAST, GAFFER_NODE_TIMEOUT_S: "30" });
    const leaving = await worker("leaving", "graceful", {}, own.url);
    const job = await submit(own.url, { type: "slow", requires: ["graceful"], payload: { sleep_ms: 1000, result: "finished" } });
    await until(own.url, job.id, (j) => j.status === "running");
    leaving.proc.kill("SIGTERM");
    expect(await leaving.exited).toBe(0);
    expect((await getJob(own.url, job.id)).status).toBe("completed");
    const nodes = await http<{ items: { name: string; status: string }[] }>(own.url, "GET", "/api/v1/nodes?limit=100");
    expect(nodes.body.items.find((n) => n.name === "leaving")?.status).toBe("offline");
  });
});

describe("worker and a master that goes away", () => {
  afterEach(async () => {
    await stopAll();
    removeTempDirs();
  });

  it("sends a result whose log tail is too large for the master's batch limit without it", async () => {
    const dir = tempDir("gaffer-big-tail-");
    const master = await spawnMaster(join(dir, "master.db"), { ...FAST, GAFFER_MAX_BATCH_BYTES: "2048" });
    await spawnWorker(master.url, { name: "noisy", labels: "noisy", handlers: writeHandlers(dir), stateDir: join(dir, "state") });
    const job = await submit(master.url, { type: "echo", requires: ["noisy"], payload: { stderr: "x".repeat(5000), result: { ok: 1 } } });
    const done = await until(master.url, job.id, (j) => j.status === "completed");
    expect(done.result).toEqual({ ok: 1 });
    const attempts = await http<{ items: { outcome: string; log_tail: string | null }[] }>(master.url, "GET", `/api/v1/jobs/${job.id}/attempts`);
    expect(attempts.body.items).toEqual([expect.objectContaining({ outcome: "completed", log_tail: null })]);
  });

  it("delivers a result produced while the master was down once it is back", async () => {
    const dir = tempDir("gaffer-restart-");
    const handlers = writeHandlers(dir);
    const db = join(dir, "master.db");
    const port = String(await freePort());
    // FAST's node timeout (1.5 s) is shorter than the worker's circuit breaker stays open (5 s):
    // the result must go out as soon as a heartbeat finds the master back, not when the breaker
    // lets the held-back call try again (the job's lease could run out first; seen in CI).
    const env = { ...FAST, GAFFER_PORT: port };
    let master = await spawnMaster(db, env, ["--port", port]);
    const url = master.url;
    await spawnWorker(url, { name: "steady", handlers, stateDir: join(dir, "state") });
    const job = await submit(url, { type: "slow", payload: { sleep_ms: 1500, result: "survived" } });
    await until(url, job.id, (j) => j.status === "running");
    master.proc.kill("SIGKILL");
    await master.exited;
    // The job finishes while the master is down; its result waits in the worker's outbox.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    master = await spawnMaster(db, env, ["--port", port]);
    const done = await until(url, job.id, (j) => j.status === "completed", 20_000);
    expect(done).toMatchObject({ attempt: 1, result: "survived" });
  });

  it("gives up after --max-connect-attempts when no master answers", async () => {
    const dir = tempDir();
    const { runGaffer } = await import("../helpers/processes.js");
    const port = await freePort();
    const result = await runGaffer([
      "worker",
      "start",
      "--master",
      `http://127.0.0.1:${port}`,
      "--handlers",
      writeHandlers(dir),
      "--state-dir",
      join(dir, "state"),
      "--max-connect-attempts",
      "2",
    ]);
    expect(result.code).toBe(5);
    expect(result.output).toMatch(/could not start/);
  });
});
