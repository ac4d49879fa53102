// gaffer backup OUT.db / gaffer restore IN.db --db PATH
import { Command } from "commander";
import { loadConfig } from "../../master/config.js";
import { backupDatabase, BackupError, restoreDatabase } from "../../master/store/open.js";
import { CliError, EXIT, printJson } from "./output.js";

async function explained<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof BackupError) throw new CliError(error.message, EXIT.failed);
    throw error;
  }
}

export function backupCommand(): Command {
  return new Command("backup")
    .description("Copy the database while the master runs (SQLite online backup), plus OUT.db.sha256")
    .argument("<out>", "the backup file to write")
    .option("--db <path>", "the database (GAFFER_DB, default ./data/gaffer.db)")
    .option("--json", "machine-readable output")
    .action(async (out: string, opts: { db?: string; json?: boolean }) => {
      const db = loadConfig({ flags: { db: opts.db } }).db;
      const result = await explained(() => backupDatabase(db, out));
      if (opts.json) printJson({ file: out, ...result });
      else process.stdout.write(`backed up ${db} to ${out} (${result.bytes} bytes, sha256 ${result.sha256})\n`);
    });
}

export function restoreCommand(): Command {
  return new Command("restore")
    .description("Replace the database with a backup whose SHA-256 matches its .sha256 file (stop the master first)")
    .argument("<in>", "the backup file")
    .requiredOption("--db <path>", "the database to replace")
    .option("--json", "machine-readable output")
    .action(async (backup: string, opts: { db: string; json?: boolean }) => {
      const result = await explained(() => restoreDatabase(backup, opts.db));
      if (opts.json) printJson({ file: opts.db, ...result });
      else process.stdout.write(`restored ${backup} to ${opts.db}\n`);
    });
}
