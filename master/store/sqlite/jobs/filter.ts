// A job filter (the list's and the bulk actions') as WHERE clauses on `jobs`.
import { sql, type Compilable, type CompiledQuery, type SelectQueryBuilder } from "kysely";
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
  // A literal: SQLite reads a partial index (jobs_by_status, jobs_running) only for a query
  // whose terms include its predicate's, and a bound parameter is not known when it plans.
  if (filter.status !== undefined) q = q.where("status", "=", sql.lit(filter.status));
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

/**
 * A filtered read of jobs, compiled; one that asks for running jobs reads them from
 * jobs_running (all of them, sorted: bounded by the cluster's capacity). Left to itself,
 * SQLite would walk seq through every newer (a list) or older (a bulk action) job to find them.
 */
export function compileFiltered<Row>(query: Compilable<Row>, filter: JobFilter): CompiledQuery<Row> {
  const compiled = query.compile();
  if (filter.status !== "running") return compiled;
  const text = compiled.sql.replace(/ from "jobs" /, ' from "jobs" INDEXED BY jobs_running ');
  if (text === compiled.sql) throw new Error(`no read of jobs to index: ${compiled.sql}`);
  return { ...compiled, sql: text };
}
