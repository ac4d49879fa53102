// The Worker: registers a node, heartbeats, pulls jobs with long-poll claims,
// runs them, and reports results through a durable outbox (API.md §6, §10).
import { cpus, hostname, totalmem } from "node:os";
import { pino, type Logger } from "pino";
import { packageVersion } from "../master/package-info.js";
import { ApiError, MasterClient, type ClaimedJob, type ReportItem } from "./client.js";
import { Outbox, type OutboxEntry } from "./outbox.js";
import { backoffDelayMs, CircuitBreaker, sleep } from "./resilience.js";
import {
  killAllCommands,
  refused,
  runCommand,
  startFunction,
  type CommandHandler,
  type FunctionHandler,
  type HandlerJob,
  type Outcome,
  type RunSink,
} from "./runner.js";

export type { CommandHandler, FunctionHandler, HandlerContext, HandlerJob } from "./runner.js";
export { ApiError, MasterClient, MasterUnreachableError } from "./client.js";

export const DEFAULT_STATE_DIR = "./gaffer-worker";
export const DEFAULT_GRACE_S = 30;
export const DEFAULT_CLAIM_WAIT_S = 20;
/** Until the master says otherwise in its first heartbeat answer. */
const DEFAULT_HEARTBEAT_INTERVAL_MS = 10_000;
const MAX_CLAIM = 100;
/** Claims in flight at once while there is a backlog (one long-poll otherwise). */
const MAX_PARALLEL_CLAIMS = 4;
const MAX_RESULTS_PER_CALL = 1000;
/** On stop, results are sent for at most this long; the rest wait on disk for the next start. */
const FINAL_FLUSH_MS = 10_000;

export interface WorkerOptions {
  masterUrl: string;
  clientId?: string | undefined;
  clientSecret?: string | undefined;
  /** A ready access token instead of client credentials. */
  token?: string | undefined;
  /** The node's name (default: this host's name); the same name registers the same node again. */
  name?: string | undefined;
  labels?: string[] | undefined;
  capacity?: number | undefined;
  handlers: Record<string, FunctionHandler | CommandHandler>;
  /** Where the outbox lives (default ./gaffer-worker). */
  stateDir?: string | undefined;
  /** On stop, how long running jobs may take to finish (default 30 s). */
  graceS?: number | undefined;
  /** Attempts to reach the master at start before start() fails (default: keep trying). */
  maxConnectAttempts?: number | undefined;
  /** How long a claim waits for a job (default 20 s). */
  claimWaitS?: number | undefined;
  /** SIGTERM to SIGKILL for a command being stopped (default 10 s). */
  killGraceMs?: number | undefined;
  /** The end of each handler's output sent with its result (GAFFER_LOG_TAIL_BYTES, default 64 KiB; 0: none). */
  logTailBytes?: number | undefined;
  logger?: Logger | undefined;
}

/** A job this worker runs: where its run reports its progress and its end. */
class Execution implements RunSink {
  progress?: number;
  message?: string;
  /** Not ours any more (reassigned, stalled, unknown) or abandoned on stop: no result is reported. */
  dropped = false;
  private run: { stop(): void } | undefined;

  constructor(
    readonly job: ClaimedJob,
    private readonly onFinished: (execution: Execution, outcome: Outcome) => void,
  ) {}

  started(run: { stop(): void }): void {
    this.run = run;
  }

  /** Ends the run early (cancel, reassignment, the worker stopping). */
  stop(): void {
    this.run?.stop();
  }

  onProgress(percent: number, message: string | undefined): void {
    this.progress = percent;
    if (message !== undefined) this.message = message;
  }

  finished(outcome: Outcome): void {
    this.onFinished(this, outcome);
  }
}

/** A kept result as the master takes it (one literal a shape: no spreads, no objects made to be spread). */
function reportItem(entry: OutboxEntry): ReportItem {
  const item: ReportItem =
    entry.status === "completed"
      ? { job_id: entry.jobId, attempt: entry.attempt, status: "completed", result: entry.result ?? null }
      : { job_id: entry.jobId, attempt: entry.attempt, status: "failed" };
  if (entry.error) item.error = entry.error;
  if (entry.logTail !== undefined) item.log_tail = entry.logTail;
  return item;
}

/** The longest a job may run (API.md: timeout_s up to 30 days). */
const MAX_TIMEOUT_S = 30 * 24 * 3600;

/** A job's timeout in ms; one that is not a positive number (a master that sent none) is the longest. */
function timeoutMsOf(timeoutS: number | undefined): number {
  return (typeof timeoutS === "number" && timeoutS > 0 && timeoutS <= MAX_TIMEOUT_S ? timeoutS : MAX_TIMEOUT_S) * 1000;
}

/** The code of a job failed because the master refused its result as it was. */
const RESULT_REFUSED = "result_refused";

function isCommand(handler: FunctionHandler | CommandHandler): handler is CommandHandler {
  return typeof handler === "object" && handler !== null && Array.isArray((handler as CommandHandler).command);
}

export class Worker {
  readonly log: Logger;
  private readonly client: MasterClient;
  private readonly capacity: number;
  private readonly name: string;
  private readonly labels: string[];
  private outbox: Outbox | undefined;
  private currentNodeId: string | undefined;
  private readonly running = new Map<string, Execution>();
  /** Finished results not yet on disk (written at the end of this tick, in one transaction). */
  private finished: OutboxEntry[] = [];
  private persistScheduled = false;
  private flushing: Promise<void> | undefined;
  private flushAgain = false;
  private flushFailures = 0;
  private flushRetry: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private heartbeatIntervalMs = DEFAULT_HEARTBEAT_INTERVAL_MS;
  private registering: Promise<void> | undefined;
  private claimLoop: Promise<void> | undefined;
  private readonly stopController = new AbortController();
  private capacityWaiters: (() => void)[] = [];
  /** Waiting for the last running job to end (a stop). */
  private idleWaiters: (() => void)[] = [];
  /** Capacity asked for by claims in flight. */
  private reservedCapacity = 0;
  /** The last claim came back full: more work is waiting. */
  private backlog = false;
  private stopping: Promise<void> | undefined;
  /** Aborted (and replaced) when the master answers again: backoff sleeps end early. */
  private recovered = new AbortController();

  constructor(private readonly options: WorkerOptions) {
    this.log = options.logger ?? pino({ level: "info", base: { name: "gaffer-worker" } });
    this.capacity = options.capacity ?? 1;
    this.name = options.name ?? hostname();
    this.labels = options.labels ?? [];
    if (!Number.isInteger(this.capacity) || this.capacity < 1) throw new Error("capacity must be a whole number ≥ 1");
    this.client = new MasterClient({
      masterUrl: options.masterUrl,
      clientId: options.clientId,
      clientSecret: options.clientSecret,
      token: options.token,
      log: this.log,
      breaker: new CircuitBreaker({
        failureThreshold: 5,
        openMs: 5000,
        onChange: (state, failures) => {
          this.log.warn({ event: `circuit.${state}`, failures }, `circuit to the master is ${state.replace("_", " ")}`);
          if (state === "closed") this.masterIsBack();
        },
      }),
    });
  }

  /** The node id the master gave this worker (after start()). */
  get nodeId(): string | undefined {
    return this.currentNodeId;
  }

  /** Jobs running now. */
  get runningJobs(): number {
    return this.running.size;
  }

  /** The master answers again: stop waiting out backoffs, send the outbox now. */
  private masterIsBack(): void {
    this.recovered.abort();
    this.recovered = new AbortController();
    if (this.flushRetry) {
      clearTimeout(this.flushRetry);
      this.flushRetry = undefined;
      this.scheduleFlush();
    }
  }

  /** A backoff sleep that ends early when the worker stops or the master is back. */
  private pause(ms: number): Promise<void> {
    return sleep(ms, AbortSignal.any([this.stopController.signal, this.recovered.signal]));
  }

  /** Resolves once registered with the master. */
  async start(): Promise<void> {
    this.outbox = new Outbox(this.options.stateDir ?? DEFAULT_STATE_DIR);
    const waiting = this.outbox.size;
    await this.connect();
    if (waiting > 0) this.log.info({ event: "outbox.resend", results: waiting }, `sending ${waiting} results kept from before`);
    this.scheduleFlush();
    this.scheduleHeartbeat(0);
    this.claimLoop = Promise.all(Array.from({ length: MAX_PARALLEL_CLAIMS }, (_, loop) => this.runClaimLoop(loop))).then(() => undefined);
  }

  private get stopped(): boolean {
    return this.stopController.signal.aborted;
  }

  private async connect(): Promise<void> {
    const maxAttempts = this.options.maxConnectAttempts ?? Number.POSITIVE_INFINITY;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.register();
        return;
      } catch (error) {
        // Refused for good (bad credentials, bad request): no point in trying again. No answer (status 0) is tried again.
        if (error instanceof ApiError && error.status >= 400 && error.status < 500 && error.status !== 429) throw error;
        if (attempt >= maxAttempts || this.stopped) throw error;
        const delayMs = backoffDelayMs(attempt, { baseMs: 500, maxMs: 30_000 });
        this.log.warn(
          { event: "master.unreachable", attempt, delayMs, err: (error as Error).message },
          `cannot reach the master; trying again in ${Math.round(delayMs / 100) / 10} s`,
        );
        await sleep(delayMs, this.stopController.signal);
      }
    }
  }

  private async register(): Promise<void> {
    const node = await this.client.registerNode({
      name: this.name,
      labels: this.labels,
      capacity: this.capacity,
      // It is handed only jobs it has a handler for.
      types: Object.keys(this.options.handlers),
      version: packageVersion(),
      hardware: { cpus: cpus().length, memory_mb: Math.round(totalmem() / 1_048_576), platform: process.platform, arch: process.arch },
    });
    this.currentNodeId = node.id;
    this.log.info(
      { event: "worker.registered", nodeId: node.id, name: node.name, labels: node.labels, types: node.types, capacity: node.capacity },
      `registered as ${node.name}`,
    );
  }

  /** The master forgot this node (or it went offline): register again, once for every caller. */
  private async reRegister(reason: string): Promise<void> {
    this.log.warn({ event: "worker.reregistering", reason }, "the master does not know this node; registering again");
    this.registering ??= this.connect().finally(() => (this.registering = undefined));
    await this.registering;
  }

  /**
   * One claim loop of several: while the queue has a backlog (the last claim came
   * back full), up to MAX_PARALLEL_CLAIMS loops keep claims in flight, so the
   * worker is not idle during each round trip; once it is drained, only the first
   * loop long-polls. Each loop reserves what it asks for from the free capacity.
   */
  private async runClaimLoop(loop: number): Promise<void> {
    let failures = 0;
    const waitS = this.options.claimWaitS ?? DEFAULT_CLAIM_WAIT_S;
    while (!this.stopped) {
      // The master counts a job as running until its result is acknowledged: a claim that
      // does not go out at once (no long poll) asks only for what the master will hand out,
      // else it comes back empty, a round trip for nothing.
      const free = this.capacity - this.running.size - this.reservedCapacity - (loop > 0 ? this.heldResults : 0);
      if (free <= 0 || (loop > 0 && !this.backlog)) {
        await new Promise<void>((resolve) => this.capacityWaiters.push(resolve));
        continue;
      }
      const nodeId = this.currentNodeId;
      if (!nodeId) return;
      const max = Math.min(free, MAX_CLAIM);
      this.reservedCapacity += max;
      try {
        const { items } = await this.client.claim(nodeId, max, loop === 0 ? waitS : 0, this.stopController.signal);
        failures = 0;
        this.backlog = items.length === max;
        this.release(max);
        if (items.length > 0 && this.log.isLevelEnabled("info")) {
          this.log.info({ event: "job.claimed", jobs: items.map((job) => job.id) }, `claimed ${items.length} job(s)`);
        }
        for (const job of items) this.startJob(job);
      } catch (error) {
        this.release(max);
        if (this.stopped) return;
        if (error instanceof ApiError && (error.status === 404 || error.status === 409)) {
          await this.reRegister(error.code).catch(() => undefined);
          continue;
        }
        failures += 1;
        await this.pause(backoffDelayMs(failures, { baseMs: 250, maxMs: 5000 }));
      }
    }
  }

  /**
   * A claim is back: its unused capacity is free again. Every waiting loop looks
   * again, so the first loop takes over long-polling when a backlog ends on
   * another loop's claim, and the others join in when one begins.
   */
  private release(reserved: number): void {
    this.reservedCapacity -= reserved;
    this.wakeClaimLoops();
  }

  /** Results not yet acknowledged by the master: their jobs still take capacity there. */
  private get heldResults(): number {
    return this.finished.length + (this.outbox?.size ?? 0);
  }

  private wakeClaimLoops(): void {
    // Called at every job's end: no array made when no loop waits.
    if (this.capacityWaiters.length === 0) return;
    const waiters = this.capacityWaiters;
    this.capacityWaiters = [];
    for (const wake of waiters) wake();
  }

  private startJob(job: ClaimedJob): void {
    // Own keys only: the type comes from a client, and `constructor` or `__proto__` must not find Object's.
    const handler = Object.hasOwn(this.options.handlers, job.type) ? this.options.handlers[job.type] : undefined;
    const execution = new Execution(job, this.onFinished);
    this.running.set(job.id, execution);
    // Per-job lines are built only when they are written (the drain's workers log at warn).
    if (this.log.isLevelEnabled("info")) {
      this.log.info({ event: "job.started", jobId: job.id, type: job.type, attempt: job.attempt }, `started ${job.type} ${job.id}`);
    }
    const handlerJob: HandlerJob = { id: job.id, type: job.type, payload: job.payload, attempt: job.attempt };
    if (handler && !isCommand(handler)) {
      execution.started(startFunction(handler, handlerJob, timeoutMsOf(job.timeout_s), this.options.logTailBytes, execution));
      return;
    }
    const run = !handler
      ? refused({ message: `this worker has no handler for type ${job.type}`, code: "no_handler", retryable: false })
      : runCommand(handler, handlerJob, {
          timeoutMs: timeoutMsOf(handler.timeout_s ?? job.timeout_s),
          killGraceMs: this.options.killGraceMs,
          logTailBytes: this.options.logTailBytes,
          onProgress: (percent, message) => execution.onProgress(percent, message),
        });
    execution.started(run);
    run.then(
      (outcome) => execution.finished(outcome),
      (error: unknown) => execution.finished({ status: "failed", error: { message: String(error).slice(0, 4096), code: "worker_error", retryable: true } }),
    );
  }

  private readonly onFinished = (execution: Execution, outcome: Outcome): void => this.finishJob(execution, outcome);

  /** Resolves once no job runs here. */
  private untilIdle(): Promise<void> {
    if (this.running.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private finishJob(execution: Execution, outcome: Outcome): void {
    const { job } = execution;
    this.running.delete(job.id);
    this.wakeClaimLoops();
    if (this.running.size === 0) for (const idle of this.idleWaiters.splice(0)) idle();
    if (execution.dropped) {
      this.log.info({ event: "job.dropped", jobId: job.id, attempt: job.attempt }, `dropped ${job.id}: no longer ours`);
      return;
    }
    const nodeId = this.currentNodeId;
    if (!nodeId) return;
    if (this.log.isLevelEnabled("info")) {
      this.log.info(
        {
          event: outcome.status === "completed" ? "job.completed" : "job.failed",
          jobId: job.id,
          attempt: job.attempt,
          ...(outcome.status === "failed" ? { error: outcome.error } : {}),
        },
        `${outcome.status} ${job.type} ${job.id}`,
      );
    }
    // Built as one literal (no spreads): it lives until the master has answered for it.
    const entry: OutboxEntry =
      outcome.status === "completed"
        ? { nodeId, jobId: job.id, attempt: job.attempt, status: "completed", result: outcome.result }
        : { nodeId, jobId: job.id, attempt: job.attempt, status: "failed", error: outcome.error };
    if (outcome.logTail !== undefined) entry.logTail = outcome.logTail;
    this.finished.push(entry);
    this.schedulePersist();
  }

  /** Results of this tick go to disk together, then to the master. */
  private schedulePersist(): void {
    if (this.persistScheduled) return;
    this.persistScheduled = true;
    setImmediate(() => {
      this.persistScheduled = false;
      this.persist();
      this.scheduleFlush();
    });
  }

  private persist(): void {
    if (this.finished.length === 0 || !this.outbox) return;
    this.outbox.add(this.finished.splice(0));
  }

  private scheduleFlush(): void {
    if (this.flushing) {
      this.flushAgain = true;
      return;
    }
    if (this.flushRetry) return; // a retry is already due after a failure
    this.flushing = this.flush().finally(() => {
      this.flushing = undefined;
      if (this.flushAgain) {
        this.flushAgain = false;
        this.scheduleFlush();
      }
    });
  }

  /** Send what the outbox holds, oldest first; keep what the master did not answer for. */
  private async flush(): Promise<void> {
    const outbox = this.outbox;
    if (!outbox) return;
    for (;;) {
      this.persist();
      const entries = outbox.pending(MAX_RESULTS_PER_CALL);
      if (entries.length === 0) return;
      const byNode = new Map<string, OutboxEntry[]>();
      for (const entry of entries) {
        const group = byNode.get(entry.nodeId);
        if (group) group.push(entry);
        else byNode.set(entry.nodeId, [entry]);
      }
      try {
        for (const [nodeId, group] of byNode) await this.send(outbox, nodeId, group);
        this.flushFailures = 0;
      } catch (error) {
        this.flushFailures += 1;
        const delayMs = backoffDelayMs(this.flushFailures);
        this.log.warn(
          { event: "outbox.retrying", results: outbox.size, delayMs, err: (error as Error).message },
          "could not send results; they wait on disk",
        );
        this.flushRetry = setTimeout(() => {
          this.flushRetry = undefined;
          this.scheduleFlush();
        }, delayMs);
        this.flushRetry.unref();
        return;
      }
      if (entries.length < MAX_RESULTS_PER_CALL) return;
    }
  }

  private async send(outbox: Outbox, nodeId: string, group: OutboxEntry[]): Promise<void> {
    const items = group.map((entry) => reportItem(entry));
    let verdicts: { job_id: string; accepted: boolean; reason?: string }[];
    try {
      verdicts = (await this.client.reportResults(nodeId, items)).items;
    } catch (error) {
      // Too big for one call (log tails add up), or refused as it is (one result the master
      // cannot take, as a result nested too deep): halves, until the result at fault is alone.
      const [only] = group;
      if (error instanceof ApiError && (error.status === 413 || error.status === 400) && group.length > 1) {
        const half = Math.ceil(group.length / 2);
        await this.send(outbox, nodeId, group.slice(0, half));
        await this.send(outbox, nodeId, group.slice(half));
        return;
      }
      // Alone and too big: sent without its log tail.
      if (error instanceof ApiError && error.status === 413 && only?.logTail !== undefined) {
        this.log.warn({ event: "outbox.log_tail_dropped", jobId: only.jobId }, `the result of ${only.jobId} is sent without its log tail: too large`);
        await this.send(outbox, nodeId, [{ ...only, logTail: undefined }]);
        return;
      }
      // Alone and refused (or too big without its log tail): its job fails, saying why, rather
      // than its result being sent forever (holding the job's lease and the results behind it)
      // or dropped (the job run again at each lease's end).
      if (error instanceof ApiError && (error.status === 400 || error.status === 413) && only !== undefined && only.error?.code !== RESULT_REFUSED) {
        this.log.warn({ event: "outbox.result_refused", jobId: only.jobId, reason: error.message }, `the master refused the result of ${only.jobId}; it is reported failed`);
        const message = `the master refused this job's result: ${error.message}`.slice(0, 4096);
        await this.send(outbox, nodeId, [{ nodeId: only.nodeId, jobId: only.jobId, attempt: only.attempt, status: "failed", error: { message, code: RESULT_REFUSED, retryable: false } }]);
        return;
      }
      // The master will never take these (the node is not ours or no longer exists, too large, refused): drop them.
      if (error instanceof ApiError && (error.status === 403 || error.status === 404 || error.status === 413 || error.status === 400)) {
        this.log.warn({ event: "outbox.refused", nodeId, results: group.length, reason: error.code }, "the master refused these results");
        outbox.settle(group);
        // Settled: they take no capacity here any more.
        this.wakeClaimLoops();
        return;
      }
      throw error;
    }
    for (const [index, verdict] of verdicts.entries()) {
      if (!verdict.accepted) {
        this.log.warn(
          { event: "result.refused", jobId: verdict.job_id, attempt: group[index]?.attempt, reason: verdict.reason },
          `the master refused the result of ${verdict.job_id}: ${verdict.reason ?? "refused"}`,
        );
      }
    }
    // Accepted, duplicate, stale or unknown: the master has answered for each; none is sent again.
    outbox.settle(group);
    // Their capacity is free on the master now.
    this.wakeClaimLoops();
  }

  private scheduleHeartbeat(delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = setTimeout(() => void this.heartbeat(), delayMs);
  }

  private async heartbeat(): Promise<void> {
    const nodeId = this.currentNodeId;
    if (!nodeId || this.stopped) return;
    const running = [...this.running.values()]
      .filter((execution) => !execution.dropped)
      .map(({ job, progress, message }) => ({
        job_id: job.id,
        attempt: job.attempt,
        ...(progress !== undefined ? { progress } : {}),
        ...(message !== undefined ? { message: message.slice(0, 1024) } : {}),
      }));
    // Jobs whose results wait to be sent are still ours: keep their leases.
    const held = [...this.finished, ...(this.outbox?.heldJobs() ?? [])];
    for (const entry of held) running.push({ job_id: entry.jobId, attempt: entry.attempt });
    try {
      const reply = await this.client.heartbeat(nodeId, running);
      this.heartbeatIntervalMs = reply.heartbeat_interval_s * 1000;
      for (const notice of reply.cancel) {
        const execution = this.running.get(notice.job_id);
        if (!execution || execution.job.attempt !== notice.attempt) continue;
        this.log.info({ event: "job.cancel", jobId: notice.job_id, reason: notice.reason }, `stopping ${notice.job_id}: ${notice.reason}`);
        // A canceled job reports that it stopped; one that is no longer ours reports nothing.
        if (notice.reason !== "canceled") execution.dropped = true;
        execution.stop();
      }
    } catch (error) {
      if (error instanceof ApiError && (error.status === 404 || error.status === 409)) {
        await this.reRegister(error.code).catch(() => undefined);
      } else if (!this.stopped) {
        this.log.warn({ event: "heartbeat.failed", err: (error as Error).message }, "heartbeat failed");
      }
    }
    this.scheduleHeartbeat(this.heartbeatIntervalMs);
  }

  /**
   * Graceful stop: claim nothing more, let running jobs finish within the grace
   * period, send their results, deregister.
   */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    const graceS = this.options.graceS ?? DEFAULT_GRACE_S;
    const running = this.running.size;
    this.log.info(
      { event: "worker.stopping", running, graceS },
      running === 0
        ? "stopping: no running jobs"
        : `stopping: waiting up to ${graceS} s for ${running} running job${running === 1 ? "" : "s"} to finish, then stopping ${running === 1 ? "it" : "them"}`,
    );
    this.stopController.abort();
    this.wakeClaimLoops();
    const graceMs = graceS * 1000;
    const allDone = this.untilIdle();
    const graceOver = new AbortController();
    const finishedInTime = await Promise.race([
      allDone.then(() => true),
      sleep(graceMs, graceOver.signal).then(() => false),
    ]);
    graceOver.abort(); // no timer left behind to keep the process alive
    if (!finishedInTime) {
      this.log.warn({ event: "worker.grace_expired", running: this.running.size }, "grace period over: stopping running jobs");
      for (const execution of this.running.values()) {
        execution.dropped = true;
        execution.stop();
      }
      await this.untilIdle();
    }
    await this.claimLoop;
    clearTimeout(this.heartbeatTimer);
    clearTimeout(this.flushRetry);
    this.flushRetry = undefined;
    await this.finalFlush();
    const nodeId = this.currentNodeId;
    if (nodeId) {
      try {
        await this.client.deregister(nodeId);
        this.log.info({ event: "worker.deregistered", nodeId }, "deregistered");
      } catch (error) {
        this.log.warn({ event: "worker.deregister_failed", err: (error as Error).message }, "could not deregister");
      }
    }
    this.outbox?.close();
    this.log.info({ event: "worker.stopped" }, "stopped");
  }

  private async finalFlush(): Promise<void> {
    const deadline = Date.now() + FINAL_FLUSH_MS;
    while (Date.now() < deadline) {
      await this.flushing;
      this.persist();
      if ((this.outbox?.size ?? 0) === 0) return;
      clearTimeout(this.flushRetry);
      this.flushRetry = undefined;
      this.scheduleFlush();
      await this.flushing;
      if ((this.outbox?.size ?? 0) === 0) return;
      await sleep(Math.min(1000, Math.max(0, deadline - Date.now())));
    }
    this.log.warn({ event: "outbox.kept", results: this.outbox?.size }, "results kept on disk for the next start");
  }

  /** Stop at once (a second signal): running jobs are killed, unsent results stay on disk. */
  async kill(): Promise<void> {
    this.stopController.abort();
    clearTimeout(this.heartbeatTimer);
    clearTimeout(this.flushRetry);
    for (const execution of this.running.values()) {
      execution.dropped = true;
      execution.stop();
    }
    killAllCommands();
    this.persist();
    this.outbox?.close();
  }
}
