// gaffer types list | limit TYPE N|none | pause TYPE | resume TYPE (API.md §5a)
import { Command } from "commander";
import { CliError, EXIT, printObject, printPage } from "./output.js";
import { call, connect, withRemoteOptions, type RemoteFlags } from "./remote.js";

const TYPE_COLUMNS = ["type", "paused", "max_running", "pending", "running", "completed_1h", "failed_1h"];

export function typesCommand(): Command {
  const types = new Command("types").description("Job types: their counts, limits and pauses");
  withRemoteOptions(types.command("list").description("Every job type with its counts, limit and pause")).action(async (opts: RemoteFlags) => {
    const listed = await call(() => connect(opts).listTypes());
    printPage({ items: listed.items.map((item) => ({ ...item, max_running: item.max_running ?? "none" })) }, TYPE_COLUMNS, opts.json);
  });
  withRemoteOptions(
    types.command("limit").description("At most N jobs of TYPE running at once, across the cluster (none: no limit; admin)").argument("<type>").argument("<n>"),
  ).action(async (type: string, n: string, opts: RemoteFlags) => {
    const limit = n === "none" ? null : Number(n);
    if (limit !== null && (!Number.isInteger(limit) || limit < 0)) throw new CliError(`the limit must be a whole number or none, not ${n}`, EXIT.usage);
    printObject((await call(() => connect(opts).setType(type, { max_running: limit }))) as unknown as Record<string, unknown>, opts.json);
  });
  for (const [name, paused, description] of [
    ["pause", true, "Hand out no job of TYPE (running ones go on; admin)"],
    ["resume", false, "Hand out jobs of TYPE again, in their normal order (admin)"],
  ] as const) {
    withRemoteOptions(types.command(name).description(description).argument("<type>")).action(async (type: string, opts: RemoteFlags) => {
      printObject((await call(() => connect(opts).setType(type, { paused }))) as unknown as Record<string, unknown>, opts.json);
    });
  }
  return types;
}
