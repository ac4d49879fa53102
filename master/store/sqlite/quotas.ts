// Quotas of a `client` role (API.md §4): what it holds now, read inside the transaction
// that would add to it, so two requests of one client cannot both pass the last place.
import { sql } from "kysely";
import { param, type SqliteDatabase } from "./database.js";

/**
 * The client's jobs not yet finished: one row of client_job_counts, kept in every
 * transaction that changes a job (addUnfinished for a submit, triggers for the rest:
 * migrations/sqlite/0005_client_job_counts.sql), so a submit never counts the client's
 * jobs however many it has.
 */
export function unfinishedJobs(db: SqliteDatabase, clientId: string): number {
  const row = db
    .prepared<{ clientId: string }, { unfinished: number }>("quota-unfinished", () =>
      db.kysely.selectFrom("client_job_counts").select("unfinished").where("client_id", "=", param("clientId")),
    )
    .get({ clientId });
  return row?.unfinished ?? 0;
}

/** Count `added` new jobs not yet finished, in the submit's transaction: one statement for a whole batch. */
export function addUnfinished(db: SqliteDatabase, clientId: string, added: number): void {
  db.preparedSql<{ clientId: string; added: number }>("quota-add", () =>
    sql`INSERT INTO client_job_counts (client_id, unfinished) VALUES (${param("clientId")}, ${param("added")})
        ON CONFLICT (client_id) DO UPDATE SET unfinished = unfinished + excluded.unfinished`,
  ).run({ clientId, added });
}

/** The client's schedules (read through the schedules' UNIQUE (client_id, name) index). */
export function scheduleCount(db: SqliteDatabase, clientId: string): number {
  const row = db
    .prepared<{ clientId: string }, { n: number }>("quota-schedules", () =>
      db.kysely
        .selectFrom("schedules")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("client_id", "=", param("clientId")),
    )
    .get({ clientId });
  return row?.n ?? 0;
}
