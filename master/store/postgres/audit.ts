// The audit log and the settings on PostgreSQL.
import { sql } from "kysely";
import { decodeCursor, pageOf } from "../pages.js";
import type { AuditEntry, AuditStore, ListAuditParams, Page, SettingsStore } from "../types.js";
import { writeAudit, type AuditEvent, type PgContext } from "./context.js";

export class PostgresAuditStore implements AuditStore {
  constructor(private readonly ctx: PgContext) {}

  /** Newest first. */
  async list(params: ListAuditParams): Promise<Page<AuditEntry>> {
    const before = decodeCursor(params.cursor);
    const where = [
      before === undefined ? undefined : sql`id < ${before}`,
      params.entityType === undefined ? undefined : sql`entity_type = ${params.entityType}`,
      params.entityId === undefined ? undefined : sql`entity_id = ${params.entityId}`,
      params.eventType === undefined ? undefined : sql`event_type = ${params.eventType}`,
      params.clientId === undefined ? undefined : sql`client_id = ${params.clientId}`,
    ].filter((clause) => clause !== undefined);
    const rows = await this.ctx.db.run(sql<AuditEntry>`
      SELECT id, event_type, entity_type, entity_id, client_id, details, created_at FROM audit_log
      ${where.length > 0 ? sql`WHERE ${sql.join(where, sql` AND `)}` : sql``}
      ORDER BY id DESC LIMIT ${params.limit + 1}`);
    return pageOf(rows, params.limit, (row) => row.id, (row) => row);
  }

  async record(event: AuditEvent): Promise<void> {
    await writeAudit(this.ctx.db.kysely, [event], this.ctx.clock.now().toISOString());
  }

  async purge(params: { before: Date; limit: number }): Promise<number> {
    const rows = await this.ctx.db.run(sql<{ id: number }>`
      DELETE FROM audit_log WHERE id IN (
        SELECT id FROM audit_log WHERE created_at < ${params.before.toISOString()} ORDER BY created_at LIMIT ${params.limit})
      RETURNING id`);
    return rows.length;
  }
}

export class PostgresSettingsStore implements SettingsStore {
  constructor(private readonly ctx: PgContext) {}

  async get(key: string): Promise<string | undefined> {
    return (await this.ctx.db.one(sql<{ value: string }>`SELECT value FROM settings WHERE key = ${key}`))?.value;
  }

  async set(key: string, value: string): Promise<void> {
    const at = this.ctx.clock.now().toISOString();
    await this.ctx.db.transaction(async (tx) => {
      await sql`
        INSERT INTO settings (key, value, updated_at) VALUES (${key}, ${value}, ${at})
        ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`.execute(tx.db);
      // Every master reads the settings again (the mode an admin set: API.md §12).
      tx.mark({ settings: true });
    });
  }

  async setIfAbsent(key: string, value: string): Promise<string> {
    const at = this.ctx.clock.now().toISOString();
    // ON CONFLICT waits for a concurrent insert of the key to commit; the read after it sees that one.
    await this.ctx.db.run(sql`INSERT INTO settings (key, value, updated_at) VALUES (${key}, ${value}, ${at}) ON CONFLICT (key) DO NOTHING`);
    return (await this.get(key)) ?? value;
  }
}
