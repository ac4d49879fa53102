// gaffer schedules create | list | get | delete
import { Command, Option } from "commander";
import { PRIORITY_NAMES } from "../../master/store/types.js";
import { parseJsonFlag, printObject, printPage } from "./output.js";
import { call, connect, withRemoteOptions, type RemoteFlags } from "./remote.js";

const SCHEDULE_COLUMNS = ["id", "name", "cron", "timezone", "enabled", "next_run_at", "last_run_at", "last_skipped_at", "last_skip_reason"];

export function schedulesCommand(): Command {
  const schedules = new Command("schedules").description("Recurring jobs on cron schedules");
  withRemoteOptions(
    schedules
      .command("create")
      .description("Create a schedule that submits a job on each tick")
      .requiredOption("--name <name>", "unique among your schedules")
      .requiredOption("--cron <expr>", 'cron expression, e.g. "0 3 * * *" (a sixth leading field means seconds)')
      .requiredOption("--type <type>", "the job type")
      .option("--payload <json>", "the job's payload, as JSON", "{}")
      .option("--timezone <tz>", "IANA time zone of the expression", "UTC")
      .addOption(new Option("--priority <priority>", "the job's priority").choices(PRIORITY_NAMES))
      .option("--disabled", "create it disabled"),
  ).action(
    async (opts: RemoteFlags & { name: string; cron: string; type: string; payload: string; timezone: string; priority?: string; disabled?: boolean }) => {
      const job: Record<string, unknown> = { type: opts.type, payload: parseJsonFlag("--payload", opts.payload) };
      if (opts.priority) job.priority = opts.priority;
      const schedule = await call(() =>
        connect(opts).request<Record<string, unknown>>("POST", "/api/v1/schedules", {
          body: { name: opts.name, cron: opts.cron, timezone: opts.timezone, job, enabled: !opts.disabled },
          retry: "never",
        }),
      );
      printObject(schedule, opts.json);
    },
  );
  withRemoteOptions(schedules.command("list").description("List schedules").option("--cursor <cursor>", "the next page")).action(
    async (opts: RemoteFlags & { cursor?: string }) => {
      const page = await call(() =>
        connect(opts).request<{ items: unknown[]; next_cursor: string | null }>("GET", "/api/v1/schedules", {
          query: { limit: 500, cursor: opts.cursor },
        }),
      );
      printPage(page, SCHEDULE_COLUMNS, opts.json);
    },
  );
  withRemoteOptions(schedules.command("get").description("Show a schedule, with its last skipped tick and why").argument("<id>")).action(
    async (id: string, opts: RemoteFlags) => {
      const schedule = await call(() => connect(opts).request<Record<string, unknown>>("GET", `/api/v1/schedules/${encodeURIComponent(id)}`));
      printObject(schedule, opts.json);
    },
  );
  withRemoteOptions(schedules.command("delete").description("Delete a schedule").argument("<id>")).action(
    async (id: string, opts: RemoteFlags) => {
      const schedule = await call(() =>
        connect(opts).request<Record<string, unknown>>("DELETE", `/api/v1/schedules/${encodeURIComponent(id)}`),
      );
      if (opts.json) printObject(schedule, true);
      else process.stdout.write(`deleted schedule ${id}\n`);
    },
  );
  return schedules;
}
