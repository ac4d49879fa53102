// gaffer backup OUT.db / gaffer restore IN.db --db PATH: SQLite's. A PostgreSQL database
// (--database-url, or GAFFER_DATABASE_URL with no --db) is refused with a pointer to
// PostgreSQL's own tools (API.md §12).
import { Command } from "commander";
import type * as StoreModule from "../../master/store/open.js";
import { CliError, EXIT, printJson } from "./output.js";

interface DatabaseFlags {
  db?: string;
  databaseUrl?: string;
}

const POSTGRES_BACKUP =
  "gaffer backup copies a SQLite database; this one is PostgreSQL. Back it up with PostgreSQL's own tools: " +
  'pg_dump for a copy of the database (pg_dump --format=custom --file=gaffer.dump "$GAFFER_DATABASE_URL"), ' +
  "or pg_basebackup with WAL archiving for the whole server and point-in-time recovery.";

const POSTGRES_RESTORE =
  "gaffer restore replaces a SQLite database; this one is PostgreSQL. Restore it with PostgreSQL's own tools: " +
  'pg_restore for a pg_dump copy (pg_restore --clean --if-exists --dbname="$GAFFER_DATABASE_URL" gaffer.dump, masters stopped), ' +
  "or a base backup and its archived WAL for the whole server.";

/** The SQLite file these commands work on, or a refusal when the database named is PostgreSQL. */
async function sqliteFile(opts: DatabaseFlags, refusal: string): Promise<string> {
  const { loadConfig } = await import("../../master/config.js");
  // An explicit --db names a SQLite file, whatever the environment says.
  const config = loadConfig({ flags: { db: opts.db, databaseUrl: opts.databaseUrl } });
  if (opts.databaseUrl !== undefined || (opts.db === undefined && config.databaseUrl !== undefined)) throw new CliError(refusal, EXIT.usage);
  return config.db;
}

/** Run a backup or restore with the store's module, loaded only now; its refusals become the CLI's. */
async function explained<T>(work: (store: typeof StoreModule) => Promise<T>): Promise<T> {
  const store = await import("../../master/store/open.js");
  try {
    return await work(store);
  } catch (error) {
    if (error instanceof store.BackupError) throw new CliError(error.message, EXIT.failed);
    throw error;
  }
}

export function backupCommand(): Command {
  return new Command("backup")
    .description("Copy the database while the master runs (SQLite online backup), plus OUT.db.sha256; on PostgreSQL use pg_dump or pg_basebackup")
    .argument("<out>", "the backup file to write")
    .option("--db <path>", "the database (GAFFER_DB, default ./data/gaffer.db)")
    .option("--database-url <url>", "a PostgreSQL database: refused, with the PostgreSQL tools to use instead")
    .option("--json", "machine-readable output")
    .action(async (out: string, opts: DatabaseFlags & { json?: boolean }) => {
      const db = await sqliteFile(opts, POSTGRES_BACKUP);
      const result = await explained((store) => store.backupDatabase(db, out));
      if (opts.json) printJson({ file: out, ...result });
      else process.stdout.write(`backed up ${db} to ${out} (${result.bytes} bytes, sha256 ${result.sha256})\n`);
    });
}

export function restoreCommand(): Command {
  return new Command("restore")
    .description("Replace the database with a backup whose SHA-256 matches its .sha256 file (stop the master first); on PostgreSQL use pg_restore")
    .argument("<in>", "the backup file")
    .option("--db <path>", "the database to replace (required)")
    .option("--database-url <url>", "a PostgreSQL database: refused, with the PostgreSQL tools to use instead")
    .option("--json", "machine-readable output")
    .action(async (backup: string, opts: DatabaseFlags & { json?: boolean }) => {
      const db = await sqliteFile(opts, POSTGRES_RESTORE);
      if (opts.db === undefined) throw new CliError("required option '--db <path>' not specified: the database to replace", EXIT.usage);
      const result = await explained((store) => store.restoreDatabase(backup, db));
      if (opts.json) printJson({ file: db, ...result });
      else process.stdout.write(`restored ${backup} to ${db}\n`);
    });
}
