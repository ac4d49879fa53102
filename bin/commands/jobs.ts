// gaffer jobs submit | list | get | cancel | retry | priority | events | why | attempts | logs
// (cancel --all and retry --all: jobs-bulk.ts)
import { Command, Option } from "commander";
import { FINAL_JOB_STATUSES, PRIORITY_NAMES, type Job } from "../../master/store/types.js";
import { CliError, EXIT, parseJsonFlag, printObject, printPage } from "./output.js";
import { checkTarget, runBulk, withBulkOptions, type BulkFlags } from "./jobs-bulk.js";
import { call, connect, withRemoteOptions, type RemoteFlags } from "./remote.js";

const JOB_COLUMNS = ["id", "type", "priority", "status", "attempt", "retry_count", "node_id", "created_at"];

interface SubmitFlags extends RemoteFlags {
  type: string;
  payload?: string;
  priority?: string;
  maxRetries?: string;
  timeoutS?: string;
  runAt?: string;
  requires?: string;
  dependsOn?: string;
  idempotencyKey?: string;
  tag?: string[];
  wait?: boolean;
  waitTimeoutS?: string;
}

function list(text: string | undefined): string[] | undefined {
  return text === undefined ? undefined : text.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

function number(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isFinite(value)) throw new CliError(`${flag} must be a number, not ${text}`, EXIT.usage);
  return value;
}

function tags(pairs: string[] | undefined): Record<string, string> | undefined {
  if (!pairs) return undefined;
  return Object.fromEntries(
    pairs.map((pair) => {
      const at = pair.indexOf("=");
      if (at < 1) throw new CliError(`--tag must be key=value, not ${pair}`, EXIT.usage);
      return [pair.slice(0, at), pair.slice(at + 1)];
    }),
  );
}

/** Long-polls of at most this long: a change of status short of final is shown within it. */
const WAIT_STEP_S = 5;

/** A line for a status change seen while waiting (stderr, for people). */
function progressLine(job: Job): string {
  if (job.status === "running") return `running on ${job.node_id ?? "?"} (attempt ${job.attempt})`;
  if (job.retry_count > 0 && (job.status === "scheduled" || job.status === "pending")) {
    const why = job.error ? `: ${job.error.message.split("\n")[0] ?? ""}` : "";
    return `${job.status}, retry ${job.retry_count} of ${job.max_retries} after attempt ${job.attempt} failed${why}`;
  }
  return job.status;
}

/**
 * Wait until the job is final (GET ?wait_s=, answered the moment it is), saying each
 * change of status on stderr as it goes; exit 6 if the wait ran out.
 */
async function waitFor(master: ReturnType<typeof connect>, id: string, timeoutS: number | undefined, quiet: boolean): Promise<Job> {
  const deadline = timeoutS === undefined ? Number.POSITIVE_INFINITY : Date.now() + timeoutS * 1000;
  let last = "";
  // The first look answers at once, so that the status it has now is said now.
  for (let first = true; ; first = false) {
    const leftS = Math.ceil((deadline - Date.now()) / 1000);
    const job = await call(() => master.getJob(id, first ? 0 : Math.max(0, Math.min(WAIT_STEP_S, leftS))));
    if (FINAL_JOB_STATUSES.has(job.status)) return job;
    const line = progressLine(job);
    if (!quiet && line !== last) process.stderr.write(`  ${line}\n`);
    last = line;
    if (Date.now() >= deadline) throw new CliError(`job ${id} is still ${job.status} after ${timeoutS} s`, EXIT.waitTimeout);
  }
}

function summary(job: Job): Record<string, unknown> {
  return {
    id: job.id,
    type: job.type,
    status: job.status,
    priority: job.priority,
    attempt: job.attempt,
    node_id: job.node_id,
    ...(job.result !== null ? { result: job.result } : {}),
    ...(job.error ? { error: job.error.message } : {}),
    ...(job.failure_reason ? { failure_reason: job.failure_reason } : {}),
  };
}

export function jobsCommand(): Command {
  const jobs = new Command("jobs").description("Submit jobs and see or act on them");
  withRemoteOptions(
    jobs
      .command("submit")
      .description("Submit a job (--wait: until it finishes; exit 0 if it completed, 1 if it failed)")
      .requiredOption("--type <type>", "the job type (which handler runs it)")
      .option("--payload <json>", "the payload, as JSON", "{}")
      .addOption(new Option("--priority <priority>", "priority class").choices(PRIORITY_NAMES))
      .option("--max-retries <n>", "retries after failures (default GAFFER_MAX_RETRIES)")
      .option("--timeout-s <seconds>", "expected run time")
      .option("--run-at <iso>", "not before this time (ISO-8601)")
      .option("--requires <labels>", "labels a node must have, comma-separated")
      .option("--depends-on <ids>", "job ids that must complete first, comma-separated")
      .option("--idempotency-key <key>", "submitting the same key again returns the same job")
      .option("--tag <key=value...>", "tags (repeatable)")
      .option("--wait", "wait until the job finishes and print it")
      .option("--wait-timeout-s <seconds>", "with --wait: give up after this long (exit 6)"),
  ).action(async (opts: SubmitFlags) => {
    const body: Record<string, unknown> = {
      type: opts.type,
      payload: parseJsonFlag("--payload", opts.payload ?? "{}"),
      priority: opts.priority,
      max_retries: number("--max-retries", opts.maxRetries),
      timeout_s: number("--timeout-s", opts.timeoutS),
      run_at: opts.runAt,
      requires: list(opts.requires),
      depends_on: list(opts.dependsOn),
      idempotency_key: opts.idempotencyKey,
      tags: tags(opts.tag),
    };
    for (const key of Object.keys(body)) if (body[key] === undefined) delete body[key];
    const master = connect(opts);
    const job = await call(() => master.submitJob(body));
    if (!opts.wait) return printObject(opts.json ? (job as unknown as Record<string, unknown>) : summary(job), opts.json);
    if (!opts.json) process.stderr.write(`submitted ${job.id}; waiting…\n`);
    const done = await waitFor(master, job.id, number("--wait-timeout-s", opts.waitTimeoutS), opts.json === true);
    printObject(opts.json ? (done as unknown as Record<string, unknown>) : summary(done), opts.json);
    if (done.status !== "completed") process.exitCode = EXIT.failed;
  });
  withRemoteOptions(
    jobs
      .command("list")
      .description("List jobs, newest first")
      .option("--status <status>")
      .option("--type <type>")
      .option("--priority <priority>")
      .option("--node <id>", "jobs of this node")
      .option("--client <id>", "jobs of this client (admin)")
      .option("--tag <key:value>")
      .option("--failure-reason <reason>", "failed jobs with this failure_reason")
      .option("--limit <n>", "1–500", "50")
      .option("--cursor <cursor>", "the next page"),
  ).action(
    async (
      opts: RemoteFlags & { status?: string; type?: string; priority?: string; node?: string; client?: string; tag?: string; failureReason?: string; limit: string; cursor?: string },
    ) => {
      const master = connect(opts);
      const page = await call(() =>
        master.listJobs({
          status: opts.status,
          type: opts.type,
          priority: opts.priority,
          node_id: opts.node,
          client_id: opts.client,
          tag: opts.tag,
          failure_reason: opts.failureReason,
          limit: opts.limit,
          cursor: opts.cursor,
        }),
      );
      printPage(page, JOB_COLUMNS, opts.json);
    },
  );
  withRemoteOptions(
    jobs
      .command("get")
      .description("Show a job (--wait: once it finishes; exit 0 if it completed, 1 if not)")
      .argument("<id>")
      .option("--wait", "wait until the job finishes, saying each change of status")
      .option("--wait-timeout-s <seconds>", "with --wait: give up after this long (exit 6)"),
  ).action(async (id: string, opts: RemoteFlags & { wait?: boolean; waitTimeoutS?: string }) => {
    const master = connect(opts);
    const job = opts.wait ? await waitFor(master, id, number("--wait-timeout-s", opts.waitTimeoutS), opts.json === true) : await call(() => master.getJob(id));
    printObject(job as unknown as Record<string, unknown>, opts.json);
    if (opts.wait && job.status !== "completed") process.exitCode = EXIT.failed;
  });
  withRemoteOptions(jobs.command("events").description("A job's history, oldest first").argument("<id>")).action(
    async (id: string, opts: RemoteFlags) => {
      const page = await call(() => connect(opts).jobEvents(id, { limit: 500 }));
      printPage(page, ["created_at", "event_type", "node_id", "attempt", "client_id", "details"], opts.json);
    },
  );
  withRemoteOptions(jobs.command("why").description("Why a job is not running yet").argument("<id>")).action(async (id: string, opts: RemoteFlags) => {
    const why = await call(() => connect(opts).why(id));
    if (opts.json) return printObject(why as unknown as Record<string, unknown>, true);
    const head = why.ready
      ? `${why.status}: ready, on ${why.eligible_nodes} eligible node(s)`
      : why.reasons.length === 0
        ? `${why.status}: nothing holds it`
        : `${why.status}: waiting`;
    process.stdout.write(`${head}\n`);
    for (const reason of why.reasons) process.stdout.write(`  ${reason.code.padEnd(16)} ${reason.message}\n`);
  });
  withRemoteOptions(jobs.command("attempts").description("Each hand-out of a job to a node, oldest first").argument("<id>")).action(
    async (id: string, opts: RemoteFlags) => {
      const attempts = await call(() => connect(opts).jobAttempts(id));
      const rows = attempts.items.map(({ log_tail: _tail, error, ...attempt }) => ({ ...attempt, error: error?.message ?? null }));
      printPage(opts.json ? attempts : { items: rows }, ["attempt", "node_name", "outcome", "started_at", "finished_at", "error"], opts.json);
    },
  );
  withRemoteOptions(
    jobs
      .command("logs")
      .description("The end of what a job's handler wrote (its last attempt, or --attempt N)")
      .argument("<id>")
      .option("--attempt <n>", "the attempt to show"),
  ).action(async (id: string, opts: RemoteFlags & { attempt?: string }) => {
    const wanted = number("--attempt", opts.attempt);
    const attempts = (await call(() => connect(opts).jobAttempts(id))).items;
    const attempt = wanted === undefined ? attempts.at(-1) : attempts.find((item) => item.attempt === wanted);
    if (!attempt) {
      throw new CliError(
        wanted === undefined ? `job ${id} has not been handed to a node yet` : `job ${id} has no attempt ${wanted} (it has ${attempts.length})`,
        EXIT.notFound,
      );
    }
    if (opts.json) return printObject({ attempt: attempt.attempt, node_id: attempt.node_id, outcome: attempt.outcome, log_tail: attempt.log_tail }, true);
    if (attempt.log_tail === null) {
      process.stderr.write(
        attempt.outcome === "running"
          ? `attempt ${attempt.attempt} is running: its output arrives with its result\n`
          : `attempt ${attempt.attempt} (${attempt.outcome}) sent no output\n`,
      );
      return;
    }
    process.stdout.write(attempt.log_tail.endsWith("\n") || attempt.log_tail === "" ? attempt.log_tail : `${attempt.log_tail}\n`);
  });
  for (const [name, description, act] of [
    ["cancel", "Cancel a job (a running one is asked to stop)", (m: ReturnType<typeof connect>, id: string) => m.cancelJob(id)],
    ["retry", "Run a failed or canceled job again", (m: ReturnType<typeof connect>, id: string) => m.retryJob(id)],
  ] as const) {
    withBulkOptions(withRemoteOptions(jobs.command(name).description(`${description}; --all: every job the filters match`).argument("[id]"))).action(async (maybeId: string | undefined, opts: BulkFlags) => {
      if (checkTarget(maybeId, opts) === "all") return runBulk(name, opts);
      const id = maybeId as string;
      const job = await call(() => act(connect(opts), id));
      printObject(opts.json ? (job as unknown as Record<string, unknown>) : summary(job), opts.json);
      // A running job is not canceled yet: its node stops it first (API.md §5, cancel_requested).
      if (!opts.json && name === "cancel" && job.cancel_requested && job.status === "running") {
        process.stdout.write(
          `cancel requested: job ${job.id} is running; its node is told to stop it at its next heartbeat; the job becomes canceled when the node reports (or its lease ends)\n`,
        );
      }
    });
  }
  withRemoteOptions(
    jobs
      .command("priority")
      .description("Change the priority of a job that is not running yet")
      .argument("<id>")
      .addArgument(new Command().createArgument("<priority>", "the new class").choices(PRIORITY_NAMES)),
  ).action(async (id: string, priority: string, opts: RemoteFlags) => {
    const job = await call(() => connect(opts).setPriority(id, priority));
    printObject(opts.json ? (job as unknown as Record<string, unknown>) : summary(job), opts.json);
  });
  return jobs;
}
