// Running one job: a command from the handlers file (API.md §10) or an async function.
import { spawn } from "node:child_process";
import { StringDecoder } from "node:string_decoder";
import type { JobError } from "../master/store/types.js";
import { utf8Tail } from "../master/log-tail.js";

/** A handlers-file entry: the command is run directly, never through a shell. */
export interface CommandHandler {
  command: string[];
  timeout_s?: number;
  env?: Record<string, string>;
  cwd?: string;
}

/** What a handler gets of its job. */
export interface HandlerJob {
  id: string;
  type: string;
  payload: unknown;
  attempt: number;
}

export interface HandlerContext {
  /** Aborted when the job is canceled, reassigned, times out or the worker stops. */
  signal: AbortSignal;
  /** Report progress 0–100 with an optional message; it reaches the master with the next heartbeat. */
  progress: (percent: number, message?: string) => void;
  /** A line for the attempt's log tail, which the master keeps with the result (API.md §10). */
  log: (line: string) => void;
}

export type FunctionHandler = (job: HandlerJob, context: HandlerContext) => Promise<unknown>;

/** How a run ended; `logTail`: the end of what the handler wrote, when it wrote anything. */
export type Outcome = ({ status: "completed"; result: unknown } | { status: "failed"; error: JobError }) & { logTail?: string };

export interface RunParams {
  timeoutMs: number;
  onProgress: (percent: number, message: string | undefined) => void;
  /** After `stop()` or the timeout, how long a command has between SIGTERM and SIGKILL. */
  killGraceMs?: number;
  /** The end of the handler's output kept for the result (GAFFER_LOG_TAIL_BYTES; 0: none). */
  logTailBytes?: number;
}

/**
 * A job being run: it settles with the outcome; `stop()` ends it early as canceled
 * (a command gets SIGTERM, then SIGKILL after `killGraceMs`; a function's signal is
 * aborted). A method rather than an AbortSignal passed in: a signal costs time to make
 * and to listen to, for every job, and almost no job is ever stopped.
 */
export type Running = Promise<Outcome> & { stop(): void };

/** Wrap a runner's promise with the stop its executor set up (the executor runs at once). */
function running(start: (resolve: (outcome: Outcome) => void, onStop: (stop: () => void) => void) => void): Running {
  let stop = () => undefined as void;
  const outcome = new Promise<Outcome>((resolve) => start(resolve, (fn) => (stop = fn)));
  return Object.assign(outcome, { stop: () => stop() });
}

/** A job that ends before it starts (no handler for its type): nothing to stop. */
export function refused(error: JobError): Running {
  return running((resolve) => resolve({ status: "failed", error }));
}

/** Exit code 65 (EX_DATAERR) means: bad input, do not retry. */
export const EXIT_NOT_RETRYABLE = 65;
export const TAIL_BYTES = 4096;
export const DEFAULT_KILL_GRACE_MS = 10_000;
export const DEFAULT_LOG_TAIL_BYTES = 65_536;
/** The last stdout line is kept for the result up to this size. */
const MAX_RESULT_LINE = 1024 * 1024;
const PROGRESS = /^::progress\s+(-?\d+(?:\.\d+)?)(?:\s+(.*))?$/;
/** All a command gets of the worker's environment (API.md §10), with LC_*: it runs payloads it cannot trust. */
const INHERITED_VARIABLES = new Set(["PATH", "HOME", "LANG", "TZ", "TMPDIR"]);

/** Process groups of the commands running now, for a stop that cannot wait. */
const liveGroups = new Set<number>();

/** SIGKILL every command still running (the worker is going away at once). */
export function killAllCommands(): void {
  for (const pid of liveGroups) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  liveGroups.clear();
}

/** The last `limit` bytes of a stream, kept without growing. */
class Tail {
  private chunks: Buffer[] = [];
  private size = 0;

  constructor(private readonly limit = TAIL_BYTES) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size - (this.chunks[0]?.length ?? 0) >= this.limit) {
      this.size -= this.chunks.shift()?.length ?? 0;
    }
  }

  get empty(): boolean {
    return this.size === 0;
  }

  /** The last `limit` bytes as text, from the first whole character on. */
  text(): string {
    return utf8Tail(Buffer.concat(this.chunks), this.limit);
  }
}

/** The run's log tail for its outcome: what the handler wrote, if anything, within the limit. */
function withTail(outcome: Outcome, tail: Tail | undefined): Outcome {
  return tail === undefined || tail.empty ? outcome : { ...outcome, logTail: tail.text() };
}

function logTail(logTailBytes: number | undefined): Tail | undefined {
  const limit = logTailBytes ?? DEFAULT_LOG_TAIL_BYTES;
  return limit > 0 ? new Tail(limit) : undefined;
}

/** Splits stdout into lines: progress lines are reported, the last other non-empty line is kept. */
class StdoutLines {
  private readonly decoder = new StringDecoder("utf8");
  private partial = "";
  lastLine = "";

  constructor(private readonly onProgress: (percent: number, message: string | undefined) => void) {}

  push(chunk: Buffer): void {
    const text = this.partial + this.decoder.write(chunk);
    const lines = text.split("\n");
    this.partial = (lines.pop() ?? "").slice(-MAX_RESULT_LINE);
    for (const line of lines) this.line(line);
  }

  end(): void {
    this.line(this.partial + this.decoder.end());
    this.partial = "";
  }

  private line(raw: string): void {
    const line = raw.replace(/\r$/, "");
    const progress = PROGRESS.exec(line);
    if (progress) {
      const percent = Math.min(100, Math.max(0, Number(progress[1])));
      this.onProgress(percent, progress[2]?.trim() || undefined);
    } else if (line.trim() !== "") {
      this.lastLine = line.slice(0, MAX_RESULT_LINE);
    }
  }
}

/** The longest error code the master keeps (it cuts a longer one). */
const MAX_CODE_CHARS = 128;

function failure(message: string, code: string, retryable: boolean): Outcome {
  return { status: "failed", error: { message: message.slice(-TAIL_BYTES) || code, code: code.slice(0, MAX_CODE_CHARS), retryable } };
}

/** A command's environment: the allow-listed variables of the worker, the handler's `env`, then the job's three. */
function commandEnvironment(handler: CommandHandler, job: HandlerJob): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && (INHERITED_VARIABLES.has(name) || name.startsWith("LC_"))) env[name] = value;
  }
  return {
    ...env,
    ...handler.env,
    GAFFER_JOB_ID: job.id,
    GAFFER_JOB_TYPE: job.type,
    GAFFER_JOB_ATTEMPT: String(job.attempt),
  };
}

/** Run a command handler to its end (API.md §10: stdin, environment, exit codes, progress, timeout, cancel). */
export function runCommand(handler: CommandHandler, job: HandlerJob, params: RunParams): Running {
  return running((resolve, onStop) => {
    const [file, ...args] = handler.command;
    if (!file) return resolve(failure("the handler has an empty command", "bad_handler", false));
    const stdout = new Tail();
    const stderr = new Tail();
    // Both streams as they came, for the attempt's log tail.
    const output = logTail(params.logTailBytes);
    const lines = new StdoutLines(params.onProgress);
    let stopping: "timeout" | "canceled" | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    const child = spawn(file, args, {
      cwd: handler.cwd,
      env: commandEnvironment(handler, job),
      // Its own process group, so that a stop reaches the whole tree it started.
      detached: true,
      stdio: ["pipe", "pipe", "pipe"],
      shell: false,
    });
    if (child.pid !== undefined) liveGroups.add(child.pid);
    const signalGroup = (signal: NodeJS.Signals) => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, signal);
      } catch {
        // already gone
      }
    };
    const stop = (why: "timeout" | "canceled") => {
      if (stopping || child.exitCode !== null) return;
      stopping = why;
      signalGroup("SIGTERM");
      killTimer = setTimeout(() => signalGroup("SIGKILL"), params.killGraceMs ?? DEFAULT_KILL_GRACE_MS);
    };
    const timer = longTimeout(() => stop("timeout"), params.timeoutMs);
    onStop(() => stop("canceled"));

    child.stdout.on("data", (chunk: Buffer) => {
      stdout.push(chunk);
      output?.push(chunk);
      lines.push(chunk);
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr.push(chunk);
      output?.push(chunk);
    });
    child.stdin.on("error", () => undefined); // a command that never reads stdin is fine
    child.stdin.end(JSON.stringify(job));

    let settled = false;
    const finish = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      timer.clear();
      clearTimeout(killTimer);
      // Whatever the command left behind in its group goes with it.
      signalGroup("SIGKILL");
      if (child.pid !== undefined) liveGroups.delete(child.pid);
      resolve(withTail(outcome, output));
    };
    child.on("error", (error) => finish(failure(`cannot start ${file}: ${error.message}`, "spawn_failed", true)));
    // Once the command itself exits, what it left running in its group (holding our pipes open) goes too.
    child.on("exit", () => signalGroup("SIGKILL"));
    child.on("close", (code, signal) => {
      lines.end();
      const errorText = stderr.text().trim();
      if (stopping === "timeout") {
        return finish(failure(`timed out after ${params.timeoutMs / 1000} s${errorText ? `: ${errorText}` : ""}`, "timeout", true));
      }
      if (stopping === "canceled") return finish(failure("stopped: the job was canceled", "canceled", true));
      if (code === 0) {
        let result: unknown;
        try {
          result = JSON.parse(lines.lastLine);
        } catch {
          result = { stdout: stdout.text() };
        }
        return finish({ status: "completed", result });
      }
      if (code === EXIT_NOT_RETRYABLE) {
        return finish(failure(errorText || `exited with code ${EXIT_NOT_RETRYABLE}`, `exit_${EXIT_NOT_RETRYABLE}`, false));
      }
      const how = code !== null ? `exited with code ${code}` : `killed by ${signal ?? "a signal"}`;
      finish(failure(errorText || how, code !== null ? `exit_${code}` : `signal_${signal ?? "unknown"}`, true));
    });
  });
}

/** Where a function handler's run reports: its progress, and its outcome once. */
export interface RunSink {
  onProgress(percent: number, message: string | undefined): void;
  finished(outcome: Outcome): void;
}

/** The longest wait Node's setTimeout takes (a longer one fires after 1 ms). */
const TIMER_MAX_MS = 2 ** 31 - 1;

/** A timer for any wait (timeout_s may be 30 days): past Node's longest, it waits in steps of the longest. */
export function longTimeout(fn: () => void, ms: number): { clear(): void } {
  let timer: NodeJS.Timeout;
  const wait = (left: number) => {
    timer = setTimeout(() => (left > TIMER_MAX_MS ? wait(left - TIMER_MAX_MS) : fn()), Math.min(left, TIMER_MAX_MS));
  };
  wait(ms);
  return { clear: () => clearTimeout(timer) };
}

/**
 * The runs of one timeout length, oldest first: they end in the order they started, so one
 * timer for the list, due at its first run's deadline, stands for a timer a run (a Timeout
 * object made, listed and cleared for each job costs a busy worker more than its no-op job).
 */
class Deadlines {
  first: FunctionRun | undefined;
  last: FunctionRun | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** When the timer fires (performance.now() ms); it may fire for a run that has ended since. */
  private dueAt = 0;

  constructor(private readonly timeoutMs: number) {}

  add(run: FunctionRun): void {
    run.deadline = performance.now() + this.timeoutMs;
    run.before = this.last;
    if (this.last) this.last.after = run;
    else this.first = run;
    this.last = run;
    // Held (not unref'd), as a timer a run was: a running job keeps the process alive.
    if (!this.timer) this.arm(run.deadline);
  }

  remove(run: FunctionRun): void {
    if (run.before) run.before.after = run.after;
    else this.first = run.after;
    if (run.after) run.after.before = run.before;
    else this.last = run.before;
    run.before = undefined;
    run.after = undefined;
    if (!this.first) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      // Timeout lengths come from jobs (any positive number): an empty list is not kept.
      if (deadlines.get(this.timeoutMs) === this) deadlines.delete(this.timeoutMs);
    }
  }

  private arm(at: number): void {
    // Node's timers round down to whole milliseconds: one more, so that it never fires before.
    // A wait past Node's longest (timeout_s may be 30 days) fires at the longest and waits again.
    const waitMs = Math.min(TIMER_MAX_MS, Math.max(1, Math.ceil(at - performance.now()) + 1));
    this.dueAt = waitMs === TIMER_MAX_MS ? 0 : at;
    this.timer = setTimeout(() => this.fire(), waitMs);
  }

  private fire(): void {
    this.timer = undefined;
    const now = Math.max(performance.now(), this.dueAt);
    try {
      for (let run = this.first; run && run.deadline <= now; run = this.first) run.stop("timeout");
    } finally {
      // A run's end that threw leaves the runs after it their timer.
      if (this.first && !this.timer) this.arm(this.first.deadline);
    }
  }
}

/** The deadline lists, by timeout length (a worker's jobs have few different ones). */
const deadlines = new Map<number, Deadlines>();

function deadlinesOf(timeoutMs: number): Deadlines {
  let list = deadlines.get(timeoutMs);
  if (!list) {
    list = new Deadlines(timeoutMs);
    deadlines.set(timeoutMs, list);
  }
  return list;
}

/**
 * A function handler's run: its deadline, its stop and its outcome in one object, the outcome
 * going to the sink rather than through promises of its own: closures, promises and timers
 * made for each job cost a busy worker more CPU than its short jobs did.
 */
class FunctionRun {
  private controller: AbortController | undefined;
  private stopped: "timeout" | "canceled" | undefined;
  private settled = false;
  /** The handler's log lines, made at its first line (most jobs write none). */
  private output: Tail | undefined;
  private readonly deadlines: Deadlines;
  /** Its place in its deadline list. */
  deadline = 0;
  before: FunctionRun | undefined;
  after: FunctionRun | undefined;
  readonly context: HandlerContext;

  constructor(
    private readonly timeoutMs: number,
    private readonly logTailBytes: number | undefined,
    private readonly sink: RunSink,
    readonly handler: FunctionHandler,
    readonly job: HandlerJob,
  ) {
    this.deadlines = deadlinesOf(timeoutMs);
    this.deadlines.add(this);
    this.context = new RunContext(this);
  }

  signal(): AbortSignal {
    // Made when the handler first looks at its signal: most never do.
    this.controller ??= new AbortController();
    if (this.stopped) this.controller.abort();
    return this.controller.signal;
  }

  progress(percent: number, message: string | undefined): void {
    // Not a number (a handler's NaN, a string): no progress to report.
    if (!this.stopped && Number.isFinite(percent)) this.sink.onProgress(Math.min(100, Math.max(0, percent)), message);
  }

  log(line: string): void {
    if (this.settled) return;
    this.output ??= logTail(this.logTailBytes);
    this.output?.push(Buffer.from(line.endsWith("\n") ? line : `${line}\n`));
  }

  stop(why: "timeout" | "canceled" = "canceled"): void {
    this.stopped ??= why;
    this.controller?.abort();
    this.settle(
      why === "timeout"
        ? failure(`timed out after ${this.timeoutMs / 1000} s`, "timeout", true)
        : failure("stopped: the job was canceled", "canceled", true),
    );
  }

  /**
   * Calls the handler, and settles the run with what it returns or throws, or what its promise
   * settles with (followed as `await` would: a native promise as it is, another thenable adopted).
   */
  call(): void {
    try {
      const returned = this.handler(this.job, this.context) as unknown;
      if (typeof (returned as { then?: unknown } | null | undefined)?.then !== "function") {
        this.returned(returned);
        return;
      }
      Promise.resolve(returned).then(
        (value) => this.returned(value),
        (error: unknown) => this.threw(error),
      );
    } catch (error) {
      this.threw(error);
    }
  }

  private returned(result: unknown): void {
    this.settle({ status: "completed", result: result === undefined ? null : result });
  }

  private threw(error: unknown): void {
    let outcome: Outcome;
    try {
      const err = error as { message?: unknown; code?: unknown; retryable?: unknown };
      const message = typeof err?.message === "string" ? err.message : String(error);
      const code = typeof err?.code === "string" ? err.code : "handler_error";
      outcome = failure(message, code, err?.retryable !== false);
    } catch {
      // What String() cannot convert (an object without a prototype, a throwing toString or
      // getter): failed all the same, said as its type.
      outcome = failure(Object.prototype.toString.call(error), "handler_error", true);
    }
    this.settle(outcome);
  }

  settle(outcome: Outcome): void {
    if (this.settled) return;
    this.settled = true;
    this.deadlines.remove(this);
    this.sink.finished(withTail(outcome, this.output));
  }
}

/**
 * The context a handler gets: `progress` and `log` functions of its own (a handler may take
 * them apart from it), and `signal` made when first read. `signal` is the class's getter: a
 * getter in an object literal is a new function and a new hidden class for every job (about
 * 540 bytes a job, and V8 maps to collect), where a class shares one.
 */
class RunContext implements HandlerContext {
  readonly #run: FunctionRun;
  readonly progress: (percent: number, message?: string) => void;
  readonly log: (line: string) => void;

  constructor(run: FunctionRun) {
    this.#run = run;
    this.progress = (percent: number, message?: string) => run.progress(percent, message);
    this.log = (line: string) => run.log(line);
  }

  get signal(): AbortSignal {
    return this.#run.signal();
  }
}

/**
 * Runs started and not yet called: handlers are called on a later microtask (as a promise's
 * `then` would), all the runs started in one go (a claim's jobs) in one microtask.
 */
let toCall: FunctionRun[] = [];

function callStarted(): void {
  const runs = toCall;
  toCall = [];
  for (const run of runs) {
    // One run's trouble never keeps the others of its claim from being called.
    try {
      run.call();
    } catch (error) {
      run.settle(failure(`the worker could not run the handler: ${Object.prototype.toString.call(error)}`, "worker_error", true));
    }
  }
}

/**
 * Start a function handler; its outcome goes to `sink.finished` (once), and the returned
 * `stop()` ends it as canceled (it is told through its signal: a function cannot be killed).
 */
export function startFunction(
  handler: FunctionHandler,
  job: HandlerJob,
  timeoutMs: number,
  logTailBytes: number | undefined,
  sink: RunSink,
): { stop(): void } {
  const run = new FunctionRun(timeoutMs, logTailBytes, sink, handler, job);
  if (toCall.push(run) === 1) queueMicrotask(callStarted);
  return run;
}

/** Run a function handler; it is told to stop through its signal (a function cannot be killed). */
export function runFunction(handler: FunctionHandler, job: HandlerJob, params: RunParams): Running {
  return running((resolve, onStop) => {
    const run = startFunction(handler, job, params.timeoutMs, params.logTailBytes, { onProgress: params.onProgress, finished: resolve });
    onStop(() => run.stop());
  });
}
