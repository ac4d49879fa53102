// A job filter (the list's and the bulk actions') as WHERE clauses on `jobs`.
import { sql, type SelectQueryBuilder } from "kysely";
import { PRIORITY_WEIGHTS, type JobFilter } from "../../types.js";
import type { DatabaseSchema } from "../../schema.js";

/** The filters given, counted: a list with none or one cheap one reads one index range. */
export function filtersGiven(filter: JobFilter): unknown[] {
  return [
    filter.status,
    filter.type,
    filter.priority,
    filter.nodeId,
    filter.clientId,
    filter.tag,
    filter.failureReason,
    filter.createdAfter,
    filter.createdBefore,
  ].filter((value) => value !== undefined);
}

export function whereFilter<O>(query: SelectQueryBuilder<DatabaseSchema, "jobs", O>, filter: JobFilter): SelectQueryBuilder<DatabaseSchema, "jobs", O> {
  let q = query;
  if (filter.status !== undefined) q = q.where("status", "=", filter.status);
  if (filter.type !== undefined) q = q.where("type", "=", filter.type);
  if (filter.priority !== undefined) q = q.where("priority", "=", PRIORITY_WEIGHTS[filter.priority]);
  if (filter.nodeId !== undefined) q = q.where("node_id", "=", filter.nodeId);
  if (filter.clientId !== undefined) q = q.where("client_id", "=", filter.clientId);
  if (filter.failureReason !== undefined) q = q.where("failure_reason", "=", filter.failureReason);
  if (filter.createdAfter !== undefined) q = q.where("created_at", ">", filter.createdAfter.toISOString());
  if (filter.createdBefore !== undefined) q = q.where("created_at", "<", filter.createdBefore.toISOString());
  const tag = filter.tag;
  if (tag !== undefined) {
    q = q.where((eb) =>
      eb.exists(
        eb
          .selectFrom(sql<{ key: string; value: unknown }>`json_each(jobs.tags)`.as("t"))
          .select("t.key")
          .where("t.key", "=", tag.key)
          .where("t.value", "=", tag.value),
      ),
    );
  }
  return q;
}
