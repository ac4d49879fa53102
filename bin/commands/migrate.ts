// gaffer migrate: apply the schema migrations to a database file, or show their status.
import { Command } from "commander";
import { CliError, EXIT, printJson, printTable } from "./output.js";

export function migrateCommand(): Command {
  return new Command("migrate")
    .description("Apply pending migrations to the database (the master also does this at start)")
    .option("--db <path>", "SQLite database file (GAFFER_DB, default ./data/gaffer.db)")
    .option("--database-url <url>", "a PostgreSQL database instead (GAFFER_DATABASE_URL)")
    .option("--status", "show each migration's state and change nothing")
    .option("--json", "machine-readable output")
    .action(async (opts: { db?: string; databaseUrl?: string; status?: boolean; json?: boolean }) => {
      const [{ loadConfig }, { migrateStore }] = await Promise.all([import("../../master/config.js"), import("../../master/store/open.js")]);
      const config = loadConfig({ flags: { db: opts.db, databaseUrl: opts.databaseUrl } });
      const result = await migrateStore(config, { statusOnly: opts.status });
      if (result.error) throw new CliError(result.error.message, EXIT.failed);
      if (!opts.status && !opts.json) {
        const names = result.applied.map((m) => `${String(m.version).padStart(4, "0")}_${m.name}`);
        process.stdout.write(names.length > 0 ? `applied ${names.join(", ")}\n` : "up to date\n");
      }
      const statuses = result.statuses;
      if (opts.json) printJson(statuses);
      else if (opts.status) printTable(statuses as unknown as Record<string, unknown>[], ["version", "name", "state", "applied_at"]);
      if (statuses.some((s) => s.state === "changed" || s.state === "unknown")) process.exitCode = EXIT.failed;
    });
}
