// vitest globalSetup: the store tests on PostgreSQL give each test store a schema of its own
// (t_<run>_<random>, postgres-schemas.ts) in the test database, kept after the store closes (a
// test may open the database again, the next test may reuse it); this run's are dropped when
// it ends. Several runs may share one server (engineers on one machine): each holds an
// advisory lock while it runs, and a run that starts drops only the schemas of runs that no
// longer hold theirs (a killed run's leftovers), never those of a run still going. Tests of
// whole masters make a database each (gaffer_t_…, postgres.ts) and drop it themselves.
import { randomUUID } from "node:crypto";
import pg from "pg";

const URL = process.env.GAFFER_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
/** t_<run>_<random>. (Schemas named t_<16 hex digits>, before runs had ids, are left alone: no run can tell whether their run still goes on.) */
const TEST_SCHEMA = "^t_[0-9a-f]{8}_[0-9a-f]{8}$";

const runKey = (run: string) => `gaffer.test-run.${run}`;

async function schemasByRun(client: pg.Client): Promise<Map<string, string[]>> {
  const { rows } = await client.query<{ name: string }>("SELECT nspname AS name FROM pg_namespace WHERE nspname ~ $1", [TEST_SCHEMA]);
  const runs = new Map<string, string[]>();
  for (const { name } of rows) {
    const run = name.slice(2, 10);
    runs.set(run, [...(runs.get(run) ?? []), name]);
  }
  return runs;
}

async function drop(client: pg.Client, schemas: string[]): Promise<void> {
  for (const name of schemas) await client.query(`DROP SCHEMA IF EXISTS "${name}" CASCADE`);
}

export async function setup(): Promise<() => Promise<void>> {
  const run = randomUUID().replace(/-/g, "").slice(0, 8);
  // Read by the test workers, which this process starts after setup.
  process.env.GAFFER_TEST_RUN = run;
  const client = new pg.Client({ connectionString: URL, connectionTimeoutMillis: 2_000 });
  try {
    await client.connect();
  } catch {
    return async () => undefined; // no server: the PostgreSQL tests skip themselves (or fail under GAFFER_REQUIRE_TOOLS)
  }
  client.on("error", () => undefined);
  await client.query("SELECT pg_advisory_lock(hashtext($1))", [runKey(run)]);
  for (const [other, schemas] of await schemasByRun(client)) {
    if (other === run) continue;
    const { rows } = await client.query<{ free: boolean }>("SELECT pg_try_advisory_lock(hashtext($1)) AS free", [runKey(other)]);
    if (!rows[0]?.free) continue; // that run is still going
    await drop(client, schemas);
    await client.query("SELECT pg_advisory_unlock(hashtext($1))", [runKey(other)]);
  }
  return async () => {
    try {
      await drop(client, (await schemasByRun(client)).get(run) ?? []);
    } finally {
      await client.end().catch(() => undefined);
    }
  };
}
