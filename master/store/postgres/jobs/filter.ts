// A job filter (the list's and the bulk actions') as WHERE clauses on `jobs`.
import { sql, type RawBuilder } from "kysely";
import { PRIORITY_WEIGHTS, type JobFilter } from "../../types.js";

/** The clauses of a filter, each one field; joined with AND by the caller. */
export function filterClauses(filter: JobFilter): RawBuilder<unknown>[] {
  return [
    filter.status === undefined ? undefined : sql`status = ${filter.status}`,
    filter.type === undefined ? undefined : sql`type = ${filter.type}`,
    filter.priority === undefined ? undefined : sql`priority = ${PRIORITY_WEIGHTS[filter.priority]}`,
    filter.nodeId === undefined ? undefined : sql`node_id = ${filter.nodeId}`,
    filter.clientId === undefined ? undefined : sql`client_id = ${filter.clientId}`,
    filter.failureReason === undefined ? undefined : sql`failure_reason = ${filter.failureReason}`,
    filter.createdAfter === undefined ? undefined : sql`created_at > ${filter.createdAfter.toISOString()}`,
    filter.createdBefore === undefined ? undefined : sql`created_at < ${filter.createdBefore.toISOString()}`,
    filter.tag === undefined ? undefined : sql`tags ->> ${filter.tag.key} = ${filter.tag.value}`,
  ].filter((clause) => clause !== undefined);
}

/** `WHERE …` for the clauses given (nothing when none). */
export function where(clauses: RawBuilder<unknown>[]): RawBuilder<unknown> {
  return clauses.length > 0 ? sql`WHERE ${sql.join(clauses, sql` AND `)}` : sql``;
}
