// gaffer jobs cancel --all | retry --all: the bulk actions of API.md §5 by filter flags.
// How many jobs match is asked first (a dry run of the same action); more than
// CONFIRM_OVER of them need --yes.
import type { Command } from "commander";
import { CliError, EXIT, printObject } from "./output.js";
import { call, connect, type RemoteFlags } from "./remote.js";

/** Above this many matching jobs, a bulk action runs only with --yes. */
export const CONFIRM_OVER = 100;

export interface BulkFlags extends RemoteFlags {
  all?: boolean;
  status?: string;
  type?: string;
  priority?: string;
  tag?: string;
  failureReason?: string;
  client?: string;
  createdAfter?: string;
  createdBefore?: string;
  max?: string;
  yes?: boolean;
  dryRun?: boolean;
}

interface BulkOutcome {
  matched: number;
  changed: number;
  more: boolean;
  dry_run: boolean;
}

/** The filter flags of a bulk action, on `jobs cancel` and `jobs retry`. */
export function withBulkOptions(command: Command): Command {
  return command
    .option("--all", "every job the filter flags match (at least one), oldest first, instead of one ID")
    .option("--status <status>", "with --all: jobs in this status")
    .option("--type <type>", "with --all: jobs of this type")
    .option("--priority <priority>", "with --all: jobs asked for at this priority")
    .option("--tag <key:value>", "with --all: jobs with this tag")
    .option("--failure-reason <reason>", "with --all: failed jobs with this failure_reason")
    .option("--client <id>", "with --all: jobs of this client (admin)")
    .option("--created-after <iso>", "with --all: jobs submitted after this time")
    .option("--created-before <iso>", "with --all: jobs submitted before this time")
    .option("--max <n>", "with --all: at most this many jobs, 1–10000 (default 1000)")
    .option("--dry-run", "with --all: say how many jobs match and would change, change nothing")
    .option("--yes", `with --all: go ahead even if more than ${CONFIRM_OVER} jobs match`);
}

function filterOf(flags: BulkFlags): Record<string, string> {
  const filter: Record<string, string | undefined> = {
    status: flags.status,
    type: flags.type,
    priority: flags.priority,
    tag: flags.tag,
    failure_reason: flags.failureReason,
    client_id: flags.client,
    created_after: flags.createdAfter,
    created_before: flags.createdBefore,
  };
  return Object.fromEntries(Object.entries(filter).filter((entry): entry is [string, string] => entry[1] !== undefined));
}

function maxOf(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const max = Number(text);
  if (!Number.isInteger(max) || max < 1 || max > 10_000) throw new CliError(`--max must be a whole number from 1 to 10000, not ${text}`, EXIT.usage);
  return max;
}

const PAST = { cancel: "canceled", retry: "retried" } as const;

function say(action: "cancel" | "retry", outcome: BulkOutcome): void {
  const verb = outcome.dry_run ? `would be ${PAST[action]}` : PAST[action];
  process.stdout.write(`${outcome.matched} job(s) matched, ${outcome.changed} ${verb}`);
  const unchanged = outcome.matched - outcome.changed;
  if (unchanged > 0) process.stdout.write(` (${unchanged} left as they were: ${action === "cancel" ? "already finished or asked to stop" : "not failed or canceled, or a dependency failed"})`);
  process.stdout.write("\n");
  if (outcome.more) process.stdout.write(`more jobs match: run it again for the next ones (or raise --max, up to 10000)\n`);
}

/** `gaffer jobs cancel|retry` without an ID: the bulk action, confirmed when it is large. */
export async function runBulk(action: "cancel" | "retry", flags: BulkFlags): Promise<void> {
  const filter = filterOf(flags);
  if (Object.keys(filter).length === 0) {
    throw new CliError(`--all needs at least one filter (--status, --type, --priority, --tag, --failure-reason, --client, --created-after, --created-before)`, EXIT.usage);
  }
  const max = maxOf(flags.max);
  const master = connect(flags);
  const act = (dryRun: boolean) =>
    // Never re-sent: a repeat after a lost answer could act on jobs that matched only since.
    call(() => master.request<BulkOutcome>("POST", `/api/v1/jobs/${action}`, { body: { filter, ...(max === undefined ? {} : { max }), dry_run: dryRun }, retry: "never" }));
  if (!flags.dryRun && !flags.yes) {
    const preview = await act(true);
    if (preview.matched > CONFIRM_OVER) {
      throw new CliError(
        `${preview.matched}${preview.more ? "+" : ""} jobs match (${preview.changed} would be ${PAST[action]}): pass --yes to ${action} them, or --dry-run to only count`,
        EXIT.usage,
      );
    }
  }
  const outcome = await act(flags.dryRun === true);
  if (flags.json) return printObject(outcome as unknown as Record<string, unknown>, true);
  say(action, outcome);
}

/** The ID or --all, never both, never neither. */
export function checkTarget(id: string | undefined, flags: BulkFlags): "one" | "all" {
  if (id !== undefined && flags.all) throw new CliError("give a job ID or --all with filters, not both", EXIT.usage);
  if (id === undefined && !flags.all) throw new CliError("give a job ID, or --all with filters (gaffer jobs cancel --all --type T)", EXIT.usage);
  const bulkOnly = Object.keys(filterOf(flags)).length > 0 || flags.max !== undefined || flags.yes || flags.dryRun;
  if (id !== undefined && bulkOnly) throw new CliError("the filter flags, --max, --yes and --dry-run go with --all, not with a job ID", EXIT.usage);
  return id === undefined ? "all" : "one";
}
