// Numbered plain-SQL migrations (migrations/sqlite/NNNN_name.sql), applied in order and
// recorded with a checksum; a changed or unknown applied migration stops the master.
import {
  defaultMigrationsDir as defaultDir,
  pendingMigrations,
  readMigrations,
  statusesOf,
  type MigrateResult,
  type MigrationStatus,
} from "../migration-files.js";
import type { SqliteDatabase } from "./database.js";

export { readMigrations, type MigrateResult, type MigrationFile, type MigrationStatus } from "../migration-files.js";

/** migrations/sqlite/ of this package. */
export function defaultMigrationsDir(): string {
  return defaultDir("sqlite");
}

function ensureLedger(db: SqliteDatabase): void {
  db.sqlite.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TEXT NOT NULL
  )`);
}

export function migrationStatus(db: SqliteDatabase, dir = defaultMigrationsDir()): MigrationStatus[] {
  ensureLedger(db);
  const applied = db.all(db.kysely.selectFrom("schema_migrations").selectAll().orderBy("version"));
  return statusesOf(readMigrations(dir), applied);
}

/** Apply every pending migration, each in its own transaction. Never throws: see `error`. */
export function migrate(db: SqliteDatabase, dir = defaultMigrationsDir(), now = new Date()): MigrateResult {
  const result: MigrateResult = { applied: [] };
  try {
    const files = readMigrations(dir);
    for (const file of pendingMigrations(files, migrationStatus(db, dir))) {
      db.transaction(() => {
        db.sqlite.exec(file.sql);
        db.run(
          db.kysely.insertInto("schema_migrations").values({
            version: file.version,
            name: file.name,
            checksum: file.checksum,
            applied_at: now.toISOString(),
          }),
        );
      });
      result.applied.push({ version: file.version, name: file.name });
    }
  } catch (error) {
    result.error = error instanceof Error ? error : new Error(String(error));
  }
  return result;
}
