// What every verb of the PostgreSQL store shares: the connection, the clock, the queue
// rules; and the audit writer, which appends inside the verb's own transaction.
import { sql } from "kysely";
import type { AuditEntry, Clock, QueuePolicy } from "../types.js";
import type { Executor, PostgresDatabase, Tx } from "./database.js";

export interface PgContext {
  db: PostgresDatabase;
  clock: Clock;
  policy: QueuePolicy;
  /** Lane ids by "type\0labels", as committed (lanes.ts). */
  lanes: Map<string, number>;
}

export type AuditEvent = Omit<AuditEntry, "id" | "created_at">;

/** Append audit rows, in order, with one statement. */
export async function writeAudit(db: Executor, events: readonly AuditEvent[], at: string): Promise<void> {
  if (events.length === 0) return;
  const rows = events.map((event) => sql`(${event.event_type}, ${event.entity_type}, ${event.entity_id}, ${event.client_id}, ${JSON.stringify(event.details)}::json, ${at}::timestamptz)`);
  await sql`INSERT INTO audit_log (event_type, entity_type, entity_id, client_id, details, created_at) VALUES ${sql.join(rows)}`.execute(db);
}

/** Rows of a query inside a transaction. */
export async function rowsOf<Row>(tx: Tx | Executor, query: ReturnType<typeof sql<Row>>): Promise<Row[]> {
  const db = "mark" in tx ? tx.db : tx;
  return (await query.execute(db)).rows;
}

/** How many rows a statement changed. */
export async function changed(tx: Tx | Executor, query: ReturnType<typeof sql>): Promise<number> {
  const db = "mark" in tx ? tx.db : tx;
  return Number((await query.execute(db)).numAffectedRows ?? 0);
}
