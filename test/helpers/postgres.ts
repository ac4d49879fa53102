// PostgreSQL databases for tests that start masters: each a database of its own in the test
// server (GAFFER_TEST_DATABASE_URL), named gaffer_t_…, dropped with dropTestDatabase (and any
// left over by the run's teardown, postgres-teardown.ts).
import { randomUUID } from "node:crypto";
import pg from "pg";
import { TEST_DATABASE_URL } from "./store.js";

export async function createTestDatabase(): Promise<string> {
  const name = `gaffer_t_${randomUUID().replace(/-/g, "").slice(0, 16)}`;
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

export async function dropTestDatabase(url: string): Promise<void> {
  const name = new URL(url).pathname.slice(1);
  if (!/^gaffer_t_[0-9a-f]{16}$/.test(name)) throw new Error(`not a test database: ${name}`);
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  } finally {
    await client.end();
  }
}
