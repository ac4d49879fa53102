// The audit log: the decisions of people and of the master, one row each, written inside
// the verb's own transaction. A job's normal way (hand-outs, results) is in job_attempts.
import type { AuditEntry, AuditStore, ListAuditParams, Page } from "../types.js";
import type { Bindable, SqliteDatabase } from "./database.js";
import { readQuery, type ThreadReader } from "./reader.js";
import { decodeCursor, pageOf, toAuditEntry } from "./rows.js";

export type AuditEvent = Omit<AuditEntry, "id" | "created_at">;

export interface AuditWriter {
  /** Append one row; call inside the transaction of the change it records. */
  write(event: AuditEvent, at: string): void;
  /** Append many rows with one statement, in order (a claim's or a result batch's). */
  writeMany(events: AuditEvent[], at: string): void;
}

const AUDIT_COLUMNS = ["event_type", "entity_type", "entity_id", "client_id", "details", "created_at"] as const;

export function createAuditWriter(db: SqliteDatabase): AuditWriter {
  const insert = db.rowInserter("audit_log", AUDIT_COLUMNS);
  const row = (event: AuditEvent, at: string): Bindable[] => [
    event.event_type,
    event.entity_type,
    event.entity_id,
    event.client_id,
    JSON.stringify(event.details),
    at,
  ];
  return {
    writeMany: (events, at) => insert(events.map((event) => row(event, at))),
    write: (event, at) => insert([row(event, at)]),
  };
}

/**
 * A page of the audit log, newest first. Unfiltered, or for one entity (its type and id),
 * it reads one index range. Any other filter walks back through every row until it has a
 * page, or sorts every row of an entity type (35-45 ms at 300,000 jobs' rows here): those
 * lists go to the reader thread when there is one (see listJobs).
 */
export async function listAudit(db: SqliteDatabase, params: ListAuditParams, reader?: ThreadReader): Promise<Page<AuditEntry>> {
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
  return pageOf(await readQuery(db, walksFar ? reader : undefined, query.compile()), params.limit, (row) => row.id, toAuditEntry);
}

export function createAuditStore(db: SqliteDatabase, writer: AuditWriter, now: () => Date, reader?: ThreadReader): AuditStore {
  return {
    list: (params) => listAudit(db, params, reader),
    record: async (event) => writer.write(event, now().toISOString()),
    purge: async (params) =>
      db.run(
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
      ),
  };
}
