// Dispatch lanes: one per job type and `requires` label set ever submitted. A claim
// queries only the lanes its node covers (it has the lane's labels and runs its type),
// one index range each, so a pile of jobs a node cannot run at the head of the queue
// costs it nothing.
//
// Known lanes are kept in memory. A lane made inside a transaction is seen by that
// transaction at once, and by everyone once it commits; if it rolls back, it is forgotten,
// so a replay of the same write makes it again (and its jobs never name a lane that is
// not in the table).
import { param, type SqliteDatabase } from "./database.js";

export interface Lane {
  id: number;
  type: string;
  labels: readonly string[];
}

export interface Lanes {
  /** The canonical key of a label list (sorted, unique, joined by ','); '' for none. */
  keyOf(labels: readonly string[]): { key: string; labels: string[] };
  /** The lane of jobs of `type` needing `requires`, made if new; call inside the submitting transaction. */
  laneOf(type: string, requires: { key: string; labels: string[] }, at: string): number;
  /** The lanes a node with these labels and types (null: any type) covers. */
  coveredBy(nodeLabels: readonly string[], nodeTypes: readonly string[] | null): number[];
  /** How many lanes are known (those of the transaction running now included). */
  readonly count: number;
  /** The job type of a known lane. */
  typeOf(lane: number): string | undefined;
  /** Every job type that has a lane. */
  types(): string[];
}

const laneKey = (type: string, requiresKey: string) => `${type}\u0000${requiresKey}`;

export function createLanes(db: SqliteDatabase): Lanes {
  const known = new Map<string, Lane>();
  for (const row of db.all(db.kysely.selectFrom("lanes").select(["id", "type", "requires_key", "labels"]))) {
    known.set(laneKey(row.type, row.requires_key), { id: row.id, type: row.type, labels: JSON.parse(row.labels) as string[] });
  }
  /** Lanes made by the transaction running now: known to all once it commits. */
  const made = new Map<string, Lane>();
  const byId = new Map<number, Lane>([...known.values()].map((lane) => [lane.id, lane]));
  const covered = new Map<string, number[]>();
  const insert = db.prepared<{ type: string; key: string; labels: string; at: string }, { id: number }>("lane-insert", () =>
    db.kysely
      .insertInto("lanes")
      .values({ type: param("type"), requires_key: param("key"), labels: param("labels"), created_at: param("at") })
      .onConflict((oc) => oc.columns(["type", "requires_key"]).doUpdateSet({ labels: param("labels") }))
      .returning("id"),
  );
  const committed = () => {
    for (const [key, lane] of made) known.set(key, lane);
    made.clear();
  };
  const undone = () => {
    for (const lane of made.values()) byId.delete(lane.id);
    made.clear();
    covered.clear();
  };
  return {
    get count() {
      return known.size + made.size;
    },
    typeOf(lane) {
      return byId.get(lane)?.type;
    },
    types() {
      return [...new Set([...known.values(), ...made.values()].map((lane) => lane.type))].sort();
    },
    keyOf(labels) {
      if (labels.length === 0) return { key: "", labels: [] };
      const sorted = [...new Set(labels)].sort();
      return { key: sorted.join(","), labels: sorted };
    },
    laneOf(type, requires, at) {
      const key = laneKey(type, requires.key);
      const existing = known.get(key) ?? made.get(key);
      if (existing) return existing.id;
      const row = insert.get({ type, key: requires.key, labels: JSON.stringify(requires.labels), at });
      if (!row) throw new Error(`no lane was made for ${type} [${requires.key}]`);
      if (made.size === 0) db.onCommit(committed, undone);
      const lane = { id: row.id, type, labels: requires.labels };
      made.set(key, lane);
      byId.set(lane.id, lane);
      covered.clear();
      return row.id;
    },
    coveredBy(nodeLabels, nodeTypes) {
      const cacheKey = `${[...nodeLabels].sort().join(",")}\u0000${nodeTypes === null ? "*" : nodeTypes.join(",")}`;
      let ids = covered.get(cacheKey);
      if (!ids) {
        const have = new Set(nodeLabels);
        const types = nodeTypes === null ? null : new Set(nodeTypes);
        const runs = (type: string) => types === null || types.has(type);
        ids = [...known.values(), ...made.values()]
          .filter((lane) => runs(lane.type) && lane.labels.every((label) => have.has(label)))
          .map((lane) => lane.id);
        covered.set(cacheKey, ids);
      }
      return ids;
    },
  };
}
