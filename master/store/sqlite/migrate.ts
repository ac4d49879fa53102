// Numbered plain-SQL migrations (migrations/sqlite/NNNN_name.sql), applied in order and
// recorded with a checksum; a changed or unknown applied migration stops the master.
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { SqliteDatabase } from "./database.js";

const FILE_PATTERN = /^(\d{4})_([a-z0-9_]+)\.sql$/;

export interface MigrationFile {
  version: number;
  name: string;
  checksum: string;
  sql: string;
}

export interface MigrationStatus {
  version: number;
  name: string;
  state: "applied" | "pending" | "changed" | "unknown";
  applied_at: string | null;
}

export interface MigrateResult {
  applied: { version: number; name: string }[];
  error?: Error;
}

/** migrations/sqlite/ of this package, found from this file whether it runs from source or dist/. */
export function defaultMigrationsDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, "migrations", "sqlite");
    if (existsSync(join(dir, "package.json")) && existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error("cannot find the migrations/sqlite folder of the gaffer package");
    dir = parent;
  }
}

export function readMigrations(dir: string): MigrationFile[] {
  return readdirSync(dir)
    .map((file) => ({ file, match: FILE_PATTERN.exec(file) }))
    .filter((entry): entry is { file: string; match: RegExpExecArray } => entry.match !== null)
    .map(({ file, match }) => {
      const sql = readFileSync(join(dir, file), "utf8");
      return {
        version: Number(match[1]),
        name: match[2] ?? file,
        checksum: createHash("sha256").update(sql).digest("hex"),
        sql,
      };
    })
    .sort((a, b) => a.version - b.version);
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
  const files = readMigrations(dir);
  const applied = db.all(db.kysely.selectFrom("schema_migrations").selectAll().orderBy("version"));
  const byVersion = new Map(applied.map((row) => [row.version, row]));
  const statuses: MigrationStatus[] = files.map((file) => {
    const row = byVersion.get(file.version);
    if (!row) return { version: file.version, name: file.name, state: "pending", applied_at: null };
    const state = row.checksum === file.checksum ? "applied" : "changed";
    return { version: file.version, name: file.name, state, applied_at: row.applied_at };
  });
  for (const row of applied) {
    if (!files.some((file) => file.version === row.version)) {
      statuses.push({ version: row.version, name: row.name, state: "unknown", applied_at: row.applied_at });
    }
  }
  return statuses.sort((a, b) => a.version - b.version);
}

function fileName(migration: { version: number; name: string }): string {
  return `${String(migration.version).padStart(4, "0")}_${migration.name}.sql`;
}

/** Apply every pending migration, each in its own transaction. Never throws: see `error`. */
export function migrate(db: SqliteDatabase, dir = defaultMigrationsDir(), now = new Date()): MigrateResult {
  const result: MigrateResult = { applied: [] };
  try {
    const statuses = migrationStatus(db, dir);
    const changed = statuses.find((status) => status.state === "changed");
    if (changed) {
      throw new Error(
        `migration ${fileName(changed)} was changed after it was applied to this database; ` +
          `restore the original file (released migrations are never edited)`,
      );
    }
    const unknown = statuses.find((status) => status.state === "unknown");
    if (unknown) {
      throw new Error(
        `this database has migration ${fileName(unknown)}, which this gaffer does not know: ` +
          `it was made by a newer version`,
      );
    }
    const pending = new Set(statuses.filter((s) => s.state === "pending").map((s) => s.version));
    for (const file of readMigrations(dir).filter((f) => pending.has(f.version))) {
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
