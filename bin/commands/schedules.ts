// gaffer schedules create | list | get | update | delete
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
  withRemoteOptions(
    schedules
      .command("update")
      .description("Change a schedule's name, cron or time zone, or enable or disable it (PATCH: what is not given stays)")
      .argument("<id>")
      .option("--name <name>", "a new name")
      .option("--cron <expr>", "a new cron expression")
      .option("--timezone <tz>", "a new IANA time zone")
      .addOption(new Option("--enable", "enable it (a schedule disabled for a cron or time zone that no longer parses needs a valid one)").conflicts("disable"))
      .addOption(new Option("--disable", "disable it").conflicts("enable")),
  ).action(async (id: string, opts: RemoteFlags & { name?: string; cron?: string; timezone?: string; enable?: boolean; disable?: boolean }) => {
    const body: Record<string, unknown> = {};
    if (opts.name !== undefined) body.name = opts.name;
    if (opts.cron !== undefined) body.cron = opts.cron;
    if (opts.timezone !== undefined) body.timezone = opts.timezone;
    if (opts.enable) body.enabled = true;
    if (opts.disable) body.enabled = false;
    if (Object.keys(body).length === 0) {
      process.stderr.write("nothing to change: give --name, --cron, --timezone, --enable or --disable\n");
      process.exitCode = 2;
      return;
    }
    const schedule = await call(() =>
      connect(opts).request<Record<string, unknown>>("PATCH", `/api/v1/schedules/${encodeURIComponent(id)}`, { body, retry: "never" }),
    );
    printObject(schedule, opts.json);
  });
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
