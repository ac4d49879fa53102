// The audit log: the decisions of people and of the master, one row each, written inside
// the verb's own transaction. A job's normal way (hand-outs, results) is in job_attempts.
import type { AuditEntry, AuditStore, ListAuditParams, Page } from "../types.js";
import type { StoreContext } from "./context.js";
import type { Bindable, SqliteDatabase } from "./database.js";
import { readQuery, type ThreadReader } from "./reader.js";
import { decodeCursor, pageOf, toAuditEntry } from "./rows.js";

export type AuditEvent = Omit<AuditEntry, "id" | "created_at">;

const AUDIT_COLUMNS = ["event_type", "entity_type", "entity_id", "client_id", "details", "created_at"] as const;

function auditRow(event: AuditEvent, at: string): Bindable[] {
  return [event.event_type, event.entity_type, event.entity_id, event.client_id, JSON.stringify(event.details), at];
}

/** Appends audit rows inside the caller's transaction (every verb's, through StoreContext). */
export class AuditWriter {
  private readonly insert: (rows: readonly Bindable[][]) => void;

  constructor(db: SqliteDatabase) {
    this.insert = db.rowInserter("audit_log", AUDIT_COLUMNS);
  }

  /** Append one row; call inside the transaction of the change it records. */
  write(event: AuditEvent, at: string): void {
    this.insert([auditRow(event, at)]);
  }

  /** Append many rows with one statement, in order (a claim's or a result batch's). */
  writeMany(events: AuditEvent[], at: string): void {
    this.insert(events.map((event) => auditRow(event, at)));
  }
}

export class SqliteAuditStore implements AuditStore {
  constructor(
    private readonly ctx: StoreContext,
    /** Where the lists no index serves are read, off the event loop (none: on the master's connection). */
    private readonly reader?: ThreadReader,
  ) {}

  /**
   * A page of the audit log, newest first. Unfiltered, or for one entity (its type and id),
   * it reads one index range. Any other filter walks back through every row until it has a
   * page, or sorts every row of an entity type (35-45 ms at 300,000 jobs' rows here): those
   * lists go to the reader thread when there is one (see listJobs).
   */
  async list(params: ListAuditParams): Promise<Page<AuditEntry>> {
    const { db } = this.ctx;
    const before = decodeCursor(params.cursor);
    let query = db.kysely.selectFrom("audit_log").selectAll().orderBy("id", "desc").limit(params.limit + 1);
    if (before !== undefined) query = query.where("id", "<", before);
    if (params.entityType !== undefined) query = query.where("entity_type", "=", params.entityType);
    if (params.entityId !== undefined) query = query.where("entity_id", "=", params.entityId);
    if (params.eventType !== undefined) query = query.where("event_type", "=", params.eventType);
    if (params.clientId !== undefined) query = query.where("client_id", "=", params.clientId);
    const oneEntity = params.entityType !== undefined && params.entityId !== undefined;
    const filtered = [params.entityType, params.entityId, params.eventType, params.clientId].some((value) => value !== undefined);
    const walksFar = filtered && !oneEntity;
    return pageOf(await readQuery(db, walksFar ? this.reader : undefined, query.compile()), params.limit, (row) => row.id, toAuditEntry);
  }

  async record(event: AuditEvent): Promise<void> {
    this.ctx.audit.write(event, this.ctx.clock.now().toISOString());
  }

  async purge(params: { before: Date; limit: number }): Promise<number> {
    const { db } = this.ctx;
    return db.run(
      db.kysely
        .deleteFrom("audit_log")
        .where(
          "id",
          "in",
          db.kysely
            .selectFrom("audit_log")
            .select("id")
            .where("created_at", "<", params.before.toISOString())
            .orderBy("created_at")
            .limit(params.limit),
        ),
    );
  }
}
