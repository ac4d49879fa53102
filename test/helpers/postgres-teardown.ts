// vitest globalSetup: the store tests on PostgreSQL give each store a schema of its own
// (t_…) in the test database, kept after the store closes (a test may open the database
// again), and tests of whole masters a database of their own (gaffer_t_…); they are all
// dropped here when the run ends, and any a killed run left behind when the next one starts.
import pg from "pg";

const URL = process.env.GAFFER_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

async function dropTestSchemas(): Promise<void> {
  const client = new pg.Client({ connectionString: URL, connectionTimeoutMillis: 2_000 });
  try {
    await client.connect();
  } catch {
    return; // no server: the PostgreSQL tests skip themselves (or fail under GAFFER_REQUIRE_TOOLS)
  }
  try {
    const { rows } = await client.query<{ name: string }>("SELECT nspname AS name FROM pg_namespace WHERE nspname ~ '^t_[0-9a-f]{16}$'");
    for (const { name } of rows) await client.query(`DROP SCHEMA IF EXISTS "${name}" CASCADE`);
    const databases = await client.query<{ name: string }>("SELECT datname AS name FROM pg_database WHERE datname ~ '^gaffer_t_[0-9a-f]{16}$'");
    for (const { name } of databases.rows) await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await client.end();
  }
}

export async function setup(): Promise<() => Promise<void>> {
  await dropTestSchemas();
  return dropTestSchemas;
}
