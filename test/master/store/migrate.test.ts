// Migrations: applied once with a checksum, equal to what the sqlite3 CLI makes of the same files,
// and a changed or unknown applied migration stops the master.
import { execFileSync } from "node:child_process";
import { appendFileSync, cpSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createQueuePolicy } from "../../../master/queue/policy.js";
import {
  defaultMigrationsDir,
  migrate,
  migrationStatus,
  createSqliteStore,
  openSqliteStore,
  SqliteDatabase,
} from "../../../master/store/sqlite/index.js";
import { submittedPayload } from "../../../master/store/types.js";
import { FakeClock } from "../../helpers/clock.js";
import { removeTempDirs, tempDir } from "../../helpers/temp.js";
import { HAVE_SQLITE3 } from "../../helpers/tools.js";

const policy = createQueuePolicy({ retryDelayS: 1, retryMaxDelayS: 1, stallGraceS: 1, agingS: 1, nodeTimeoutS: 1 });

function schemaOf(path: string): string[] {
  const db = new SqliteDatabase({ path, readonly: true });
  try {
    return (
      db.sqlite
        .prepare("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT IN ('schema_migrations', 'sqlite_sequence') ORDER BY name")
        .all() as { type: string; name: string; sql: string | null }[]
    ).map((row) => `${row.type} ${row.name}: ${row.sql ?? ""}`);
  } finally {
    db.close();
  }
}

afterEach(() => removeTempDirs());

describe("migrations (sqlite)", () => {
  const cli = HAVE_SQLITE3("the migration tests that compare with the sqlite3 CLI");

  it("applies every migration once and records it with its checksum", () => {
    const db = new SqliteDatabase({ path: join(tempDir(), "m.db") });
    try {
      const first = migrate(db);
      expect(first.error).toBeUndefined();
      expect(first.applied.map((m) => m.version)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
      expect(migrate(db).applied).toEqual([]);
      const [init, types] = migrationStatus(db);
      expect(init).toMatchObject({ version: 1, name: "init", state: "applied" });
      expect(types).toMatchObject({ version: 2, name: "node_types", state: "applied" });
      const row = db.sqlite.prepare("SELECT checksum FROM schema_migrations WHERE version = 1").get() as { checksum: string };
      expect(row.checksum).toMatch(/^[0-9a-f]{64}$/);
    } finally {
      db.close();
    }
  });

  it.runIf(cli)("makes the same schema as the sqlite3 CLI given every migration in order", () => {
    const dir = tempDir();
    const byCli = join(dir, "cli.db");
    const files = readdirSync(defaultMigrationsDir()).filter((file) => file.endsWith(".sql")).sort();
    expect(files.slice(0, 2)).toEqual(["0001_init.sql", "0002_node_types.sql"]);
    execFileSync("sqlite3", [byCli], { input: files.map((file) => readFileSync(join(defaultMigrationsDir(), file), "utf8")).join("\n") });
    const byMaster = join(dir, "master.db");
    const store = openSqliteStore({ path: byMaster, clock: new FakeClock(), policy });
    void store.close();
    expect(schemaOf(byCli)).toEqual(schemaOf(byMaster));
    expect(schemaOf(byCli).length).toBeGreaterThan(20);
  });

  it.runIf(cli)("adopts a database made with the sqlite3 CLI", async () => {
    const path = join(tempDir(), "cli.db");
    execFileSync("sqlite3", [path], { input: readFileSync(join(defaultMigrationsDir(), "0001_init.sql")) });
    const store = openSqliteStore({ path, clock: new FakeClock(), policy });
    await store.close();
    const db = new SqliteDatabase({ path });
    expect(migrationStatus(db).map((s) => s.state)).toEqual(Array(9).fill("applied"));
    db.close();
  });

  it("keeps the jobs of a database made before node types, each in its lane, claimable by type", async () => {
    const path = join(tempDir(), "old.db");
    const job = (id: string, type: string, requires: string[], status: string) =>
      `INSERT INTO jobs (id, client_id, type, payload, priority, effective_priority, status, max_retries, timeout_s, ready_at,
         requires, requires_key, created_at, updated_at)
       VALUES ('${id}', 'c', '${type}', '{}', 2, 2, '${status}', 3, 60, '2026-01-01T00:00:00.000Z',
         '${JSON.stringify(requires)}', '${requires.join(",")}', '2026-01-01T00:00:0${id.length}.000Z', '2026-01-01T00:00:00.000Z');`;
    const rows = [job("a", "echo", [], "pending"), job("bb", "resize", ["gpu"], "pending"), job("ccc", "echo", [], "completed")];
    const old = new SqliteDatabase({ path });
    old.sqlite.exec(`${readFileSync(join(defaultMigrationsDir(), "0001_init.sql"), "utf8")}\n${rows.join("\n")}`);
    old.close();
    const clock = new FakeClock();
    const database = new SqliteDatabase({ path });
    const store = createSqliteStore(database, { path, clock, policy });
    try {
      const lanes = database.sqlite
        .prepare("SELECT type, requires_key, labels FROM lanes ORDER BY type")
        .all();
      expect(lanes).toEqual([
        { type: "echo", requires_key: "", labels: "[]" },
        { type: "resize", requires_key: "gpu", labels: '["gpu"]' },
      ]);
      const register = async (name: string, labels: string[], types: string[] | null) =>
        (await store.nodes.register({ clientId: "w", name, labels, capacity: 5, types, version: null, hardware: {} })).node.id;
      const claimIds = async (nodeId: string) => {
        const outcome = await store.jobs.claim({ nodeId, max: 5 });
        return outcome.ok ? outcome.items.map((item) => item.id) : outcome.reason;
      };
      expect(await claimIds(await register("echoes", ["gpu"], ["echo"]))).toEqual(["a"]);
      expect(await claimIds(await register("any", ["gpu"], null))).toEqual(["bb"]);
      expect((await store.jobs.get("ccc"))?.status).toBe("completed");
    } finally {
      await store.close();
    }
  });

  it.runIf(cli)("drops jobs.reported_* from a database made before 0005, keeps its rows, and the sqlite3 CLI reads the result", async () => {
    const dir = tempDir();
    const before = join(dir, "before");
    cpSync(defaultMigrationsDir(), before, { recursive: true });
    rmSync(join(before, "0005_drop_job_reported.sql"));
    rmSync(join(before, "0006_client_job_counts.sql"));
    const path = join(dir, "old.db");
    const old = new SqliteDatabase({ path });
    expect(migrate(old, before).error).toBeUndefined();
    old.sqlite.exec(`
      INSERT INTO jobs (id, client_id, type, payload, priority, effective_priority, status, attempt, max_retries, timeout_s,
        ready_at, reported_attempt, reported_status, result, created_at, updated_at, started_at, finished_at)
      VALUES ('done', 'c', 'echo', '{"n":1}', 2, 2, 'completed', 1, 3, 60, '2026-01-01T00:00:00.000Z', 1, 'completed', '42',
        '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:02.000Z', '2026-01-01T00:00:01.000Z', '2026-01-01T00:00:02.000Z');
      INSERT INTO job_attempts (job_id, attempt, node_id, started_at, finished_at, outcome, reported)
      VALUES ('done', 1, 'n', '2026-01-01T00:00:01.000Z', '2026-01-01T00:00:02.000Z', 'completed', 'completed');`);
    old.close();
    const store = openSqliteStore({ path, clock: new FakeClock(), policy });
    try {
      expect(await store.jobs.get("done")).toMatchObject({ status: "completed", payload: { n: 1 }, result: 42, attempt: 1 });
      expect((await store.jobs.attempts("done")).map((attempt) => attempt.outcome)).toEqual(["completed"]);
    } finally {
      await store.close();
    }
    const cliSays = (query: string) => execFileSync("sqlite3", [path, query], { encoding: "utf8" }).trim();
    expect(cliSays("PRAGMA integrity_check")).toBe("ok");
    expect(cliSays("SELECT name FROM pragma_table_info('jobs') WHERE name LIKE 'reported%'")).toBe("");
    expect(cliSays("SELECT id, status, result FROM jobs")).toBe("done|completed|42");
    expect(cliSays("SELECT max(version) FROM schema_migrations")).toBe("9");
  });

  it("counts each client's jobs not yet finished in a database made before quotas", async () => {
    const path = join(tempDir(), "old.db");
    const job = (id: string, client: string, status: string) =>
      `INSERT INTO jobs (id, client_id, type, payload, priority, effective_priority, status, max_retries, timeout_s, ready_at,
         created_at, updated_at)
       VALUES ('${id}', '${client}', 'echo', '{}', 2, 2, '${status}', 3, 60, '2026-01-01T00:00:00.000Z',
         '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z');`;
    const rows = [job("a", "c1", "pending"), job("b", "c1", "scheduled"), job("c", "c1", "completed"), job("d", "c2", "failed"), job("e", "c2", "blocked")];
    const old = new SqliteDatabase({ path });
    old.sqlite.exec(`${readFileSync(join(defaultMigrationsDir(), "0001_init.sql"), "utf8")}\n${rows.join("\n")}`);
    old.close();
    const store = openSqliteStore({ path, clock: new FakeClock(), policy });
    try {
      const reader = new SqliteDatabase({ path });
      const counts = reader.sqlite.prepare("SELECT client_id, unfinished FROM client_job_counts ORDER BY client_id").all();
      reader.close();
      expect(counts).toEqual([
        { client_id: "c1", unfinished: 2 },
        { client_id: "c2", unfinished: 1 },
      ]);
      const job = { clientId: "c1", type: "echo", ...submittedPayload({}), priority: "medium" as const, maxRetries: 0, timeoutS: 60, runAt: null, requires: [], dependsOn: [], idempotencyKey: null, tags: {} };
      expect(await store.jobs.submit([job], { maxUnfinished: 2 })).toMatchObject({ ok: false, reason: "quota_exceeded", unfinished: 2 });
    } finally {
      await store.close();
    }
  });

  it("refuses a database whose applied migration file was changed", () => {
    const dir = tempDir();
    const migrations = join(dir, "migrations");
    cpSync(defaultMigrationsDir(), migrations, { recursive: true });
    const path = join(dir, "m.db");
    const db = new SqliteDatabase({ path });
    expect(migrate(db, migrations).error).toBeUndefined();
    appendFileSync(join(migrations, "0001_init.sql"), "\n-- edited after release\n");
    const result = migrate(db, migrations);
    expect(result.error?.message).toMatch(/0001_init.sql was changed after it was applied/);
    db.close();
    expect(() => openSqliteStore({ path, clock: new FakeClock(), policy, migrationsDir: migrations })).toThrow(/changed/);
  });

  it("refuses a database migrated by a newer gaffer", () => {
    const path = join(tempDir(), "m.db");
    const db = new SqliteDatabase({ path });
    migrate(db);
    db.sqlite
      .prepare("INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (999, 'future', 'x', 'now')")
      .run();
    expect(migrate(db).error?.message).toMatch(/newer version/);
    db.close();
  });

  it("opens in WAL mode with foreign keys, synchronous FULL by default and NORMAL on request", () => {
    const dir = tempDir();
    const full = new SqliteDatabase({ path: join(dir, "a.db") });
    const normal = new SqliteDatabase({ path: join(dir, "b.db"), synchronous: "normal" });
    expect(full.sqlite.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(full.sqlite.pragma("foreign_keys", { simple: true })).toBe(1);
    expect(full.sqlite.pragma("synchronous", { simple: true })).toBe(2);
    expect(normal.sqlite.pragma("synchronous", { simple: true })).toBe(1);
    expect(full.sqlite.pragma("busy_timeout", { simple: true })).toBeGreaterThan(0);
    full.close();
    normal.close();
  });
});
