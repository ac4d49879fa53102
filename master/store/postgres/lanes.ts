// Lanes on PostgreSQL: every (type, label set) of a job ever submitted, as on SQLite. A
// lane's id, once committed, never changes, so this master keeps the ids it has seen
// committed; a lane another master made is read from the table.
import { sql } from "kysely";
import { rowsOf } from "./context.js";
import type { Tx } from "./database.js";

/**
 * The lane of a job of `type` needing `requires` (sorted, distinct), made if it is new.
 * `known`: the store's lanes seen committed, learned after this transaction commits.
 */
export async function laneOf(
  tx: Tx,
  known: Map<string, number>,
  /** Lanes this transaction made or read so far. */
  local: Map<string, number>,
  type: string,
  requires: string[],
  at: string,
): Promise<number> {
  const key = requires.join(",");
  const cacheKey = `${type}\u0000${key}`;
  const cached = known.get(cacheKey) ?? local.get(cacheKey);
  if (cached !== undefined) return cached;
  await tx.db.executeQuery(
    sql`INSERT INTO lanes (type, requires_key, labels, created_at) VALUES (${type}, ${key}, ${JSON.stringify(requires)}::jsonb, ${at})
        ON CONFLICT (type, requires_key) DO NOTHING`.compile(tx.db),
  );
  const [row] = await rowsOf(tx, sql<{ id: number }>`SELECT id FROM lanes WHERE type = ${type} AND requires_key = ${key}`);
  if (!row) throw new Error(`lane ${type} [${key}] was not stored`);
  local.set(cacheKey, row.id);
  tx.afterCommit(() => known.set(cacheKey, row.id));
  return row.id;
}
