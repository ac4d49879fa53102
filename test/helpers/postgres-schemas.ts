// The PostgreSQL store tests' schemas: migrating a new schema is most of what opening a store
// costs, so a schema whose stores have all closed goes back to a pool, and the next test store
// gets it emptied (every table but the migration ledger, identities restarted at 1) instead of
// a new one. A schema some store of a test still uses is never handed to another.
import { randomUUID } from "node:crypto";
import pg from "pg";

/** A schema of the test database, named so that postgres-teardown.ts drops it when the run ends. */
export interface TestSchema {
  name: string;
  /** Stores open on it (the test store and its reopen()s): it is free again at zero. */
  users: number;
  /** How many test stores it was given to: a reopen() belongs to the one it was given to last. */
  generation: number;
  /** The statements that empty it; known once it has been migrated and emptied once. */
  emptying?: string;
}

const free: TestSchema[] = [];

const hex8 = () => randomUUID().replace(/-/g, "").slice(0, 8);

/** t_<this run's id>_<8 random hex digits> (postgres-teardown.ts: another run drops it only once this run has ended). */
export function newSchemaName(): string {
  const run = /^[0-9a-f]{8}$/.test(process.env.GAFFER_TEST_RUN ?? "") ? process.env.GAFFER_TEST_RUN : hex8();
  return `t_${run}_${hex8()}`;
}

function quote(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** DELETE from every table, children before parents (reverse creation order), and restart every identity. */
async function emptyingOf(client: pg.ClientBase, schema: string): Promise<string> {
  const tables = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND c.relname <> 'schema_migrations' ORDER BY c.oid DESC`,
    [schema],
  );
  const sequences = await client.query<{ name: string }>(
    `SELECT pg_get_serial_sequence(format('%I.%I', table_schema, table_name), column_name) AS name
     FROM information_schema.columns WHERE table_schema = $1 AND (is_identity = 'YES' OR column_default LIKE 'nextval(%')`,
    [schema],
  );
  return [
    // What a store in fair share made beside the migrations (master/store/postgres/fair-share.ts): a schema taken again starts off.
    ...["jobs_fair_added", "jobs_fair_changed", "jobs_fair_deleted"].map((trigger) => `DROP TRIGGER IF EXISTS ${trigger} ON ${quote(schema)}.jobs`),
    `DROP INDEX IF EXISTS ${quote(schema)}.jobs_fair`,
    ...tables.rows.map((table) => `DELETE FROM ${quote(schema)}.${quote(table.name)}`),
    ...sequences.rows.map((sequence) => `SELECT setval('${sequence.name.replace(/'/g, "''")}', 1, false)`),
  ].join(";\n");
}

/**
 * A schema for a new test store: an emptied one from the pool, else a new name (the store's
 * open migrates it). Give it back with releaseSchema only once a store opened on it.
 */
export async function takeSchema(url: string): Promise<TestSchema> {
  const schema = free.pop();
  if (!schema) return { name: newSchemaName(), users: 1, generation: 1 };
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    schema.emptying ??= await emptyingOf(client, schema.name);
    // A row still locked by a store a test forgot to close must not hang the next test.
    await client.query(`BEGIN; SET LOCAL lock_timeout = '5s';\n${schema.emptying};\nCOMMIT`);
  } catch {
    // Gone (dropped by hand) or held: this test gets a new schema; that one stays out of the pool.
    await client.query("ROLLBACK").catch(() => undefined);
    return { name: newSchemaName(), users: 1, generation: 1 };
  } finally {
    await client.end();
  }
  schema.users = 1;
  schema.generation += 1;
  return schema;
}

/** Another store opens on `schema` (reopen()), given to a test store as `generation`, which must still hold it. */
export function useSchema(schema: TestSchema, generation: number): void {
  if (schema.generation !== generation) {
    throw new Error(`schema ${schema.name} was given to another test store: reopen() before closing the last store on it`);
  }
  const pooled = free.indexOf(schema);
  if (pooled >= 0) free.splice(pooled, 1);
  schema.users += 1;
}

/** A store on `schema` closed: with the last one, the schema goes back to the pool. */
export function releaseSchema(schema: TestSchema): void {
  schema.users -= 1;
  if (schema.users === 0) free.push(schema);
}
