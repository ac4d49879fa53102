// PostgreSQL migrations (migrations/postgres/NNNN_name.sql), checksummed like SQLite's.
// Several masters may start at once on one database: each run holds an advisory lock for
// its transaction, so one applies and the others then find nothing pending.
import { sql } from "kysely";
import {
  defaultMigrationsDir,
  pendingMigrations,
  readMigrations,
  statusesOf,
  type AppliedMigration,
  type MigrateResult,
  type MigrationStatus,
} from "../migration-files.js";
import type { Executor, PostgresDatabase } from "./database.js";
import { ADVISORY_CLASS, quoteIdent } from "./database.js";

export function postgresMigrationsDir(): string {
  return defaultMigrationsDir("postgres");
}

async function ensureLedger(db: Executor, schema: string): Promise<void> {
  // Made only when missing: a role without CREATE on the database can run a migrated one.
  const { rows } = await sql<{ found: boolean }>`SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = ${schema}) AS found`.execute(db);
  if (!rows[0]?.found) await sql.raw(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`).execute(db);
  await sql`CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL
  )`.execute(db);
}

async function applied(db: Executor): Promise<AppliedMigration[]> {
  const { rows } = await sql<AppliedMigration>`SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version`.execute(db);
  return rows;
}

export async function postgresMigrationStatus(database: PostgresDatabase, dir = postgresMigrationsDir()): Promise<MigrationStatus[]> {
  return database.kysely.transaction().execute(async (trx) => {
    await ensureLedger(trx, database.schema);
    return statusesOf(readMigrations(dir), await applied(trx));
  });
}

/**
 * How long a migration waits for a table's lock, and how many times it tries. A migration that
 * alters a table (ACCESS EXCLUSIVE) queues behind any open transaction on it, and every claim and
 * result of every master would queue behind the migration: it gives up after LOCK_TIMEOUT and
 * starts over instead, so the cluster waits at most that long each time.
 */
export const MIGRATION_LOCK_TIMEOUT_MS = 5_000;
export const MIGRATION_LOCK_TRIES = 6;

/** PostgreSQL's lock_not_available: lock_timeout ran out. */
function lockTimedOut(error: unknown): boolean {
  return typeof error === "object" && error !== null && (error as { code?: unknown }).code === "55P03";
}

/** Apply every pending migration in one transaction under the migration lock. Never throws: see `error`. */
export async function migratePostgres(
  database: PostgresDatabase,
  dir = postgresMigrationsDir(),
  now = new Date(),
  lock: { timeoutMs: number; tries: number } = { timeoutMs: MIGRATION_LOCK_TIMEOUT_MS, tries: MIGRATION_LOCK_TRIES },
): Promise<MigrateResult> {
  const result: MigrateResult = { applied: [] };
  try {
    const files = readMigrations(dir);
    for (let attempt = 1; ; attempt++) {
      result.applied = [];
      try {
        await database.kysely.transaction().execute(async (trx) => {
          await sql`SELECT pg_advisory_xact_lock(${ADVISORY_CLASS}, hashtext(${`gaffer.migrate.${database.schema}`}))`.execute(trx);
          // Only once this run holds the migration lock: another master's migration is waited for in full.
          await sql.raw(`SET LOCAL lock_timeout = ${Math.max(1, Math.round(lock.timeoutMs))}`).execute(trx);
          await ensureLedger(trx, database.schema);
          for (const file of pendingMigrations(files, statusesOf(files, await applied(trx)))) {
            await sql.raw(file.sql).execute(trx);
            await sql`INSERT INTO schema_migrations (version, name, checksum, applied_at)
                      VALUES (${file.version}, ${file.name}, ${file.checksum}, ${now.toISOString()})`.execute(trx);
            result.applied.push({ version: file.version, name: file.name });
          }
        });
        break;
      } catch (error) {
        if (!lockTimedOut(error)) throw error;
        if (attempt >= lock.tries) {
          throw new Error(
            `a migration waited ${lock.tries} times ${lock.timeoutMs} ms for a table's lock, held by a long transaction ` +
              `(see pg_stat_activity, pg_locks): end that transaction, or start again later`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, Math.min(1000, lock.timeoutMs)));
      }
    }
  } catch (error) {
    result.applied = [];
    result.error = error instanceof Error ? error : new Error(String(error));
  }
  return result;
}
