// Numbered plain-SQL migrations (migrations/<dialect>/NNNN_name.sql), what each dialect's
// migrator shares: finding and reading the files, checksums, and judging what a database
// has applied against them (a changed or unknown applied migration stops the master).
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

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

/** A row of a database's schema_migrations ledger. */
export interface AppliedMigration {
  version: number;
  name: string;
  checksum: string;
  applied_at: string;
}

/** migrations/<dialect>/ of this package, found from this file whether it runs from source or dist/. */
export function defaultMigrationsDir(dialect: "sqlite" | "postgres"): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, "migrations", dialect);
    if (existsSync(join(dir, "package.json")) && existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find the migrations/${dialect} folder of the gaffer package`);
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

/** Each migration's state, from the files and what the database recorded. */
export function statusesOf(files: MigrationFile[], applied: AppliedMigration[]): MigrationStatus[] {
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

/** The files still to apply; throws when an applied one was changed or is unknown to this gaffer. */
export function pendingMigrations(files: MigrationFile[], statuses: MigrationStatus[]): MigrationFile[] {
  const changed = statuses.find((status) => status.state === "changed");
  if (changed) {
    throw new Error(
      `migration ${fileName(changed)} was changed after it was applied to this database; ` +
        `restore the original file (released migrations are never edited)`,
    );
  }
  const unknown = statuses.find((status) => status.state === "unknown");
  if (unknown) {
    throw new Error(`this database has migration ${fileName(unknown)}, which this gaffer does not know: it was made by a newer version`);
  }
  const pending = new Set(statuses.filter((s) => s.state === "pending").map((s) => s.version));
  return files.filter((f) => pending.has(f.version));
}
