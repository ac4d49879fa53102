// The distinct `requires` label sets of submitted jobs. A claim queries only the
// sets its node's labels cover, one index range each, so a pile of jobs no node
// can run at the head of the queue costs other nodes nothing.
import type { SqliteDatabase } from "./database.js";

export interface RequirementSets {
  /** The canonical key of a label list (sorted, unique, joined by ','); '' for none. */
  keyOf(labels: readonly string[]): { key: string; labels: string[] };
  /** Make sure the set exists; call inside the submitting transaction. */
  ensure(key: string, labels: string[], at: string): void;
  /** The keys of every known set that `nodeLabels` covers ('' always). */
  coveredBy(nodeLabels: readonly string[]): string[];
  /** How many sets are known ('' included). */
  readonly count: number;
}

export function createRequirementSets(db: SqliteDatabase): RequirementSets {
  const known = new Map<string, string[]>([["", []]]);
  for (const row of db.all(db.kysely.selectFrom("requirement_sets").select(["key", "labels"]))) {
    known.set(row.key, JSON.parse(row.labels) as string[]);
  }
  const covered = new Map<string, string[]>();
  return {
    get count() {
      return known.size;
    },
    keyOf(labels) {
      if (labels.length === 0) return { key: "", labels: [] };
      const sorted = [...new Set(labels)].sort();
      return { key: sorted.join(","), labels: sorted };
    },
    ensure(key, labels, at) {
      if (known.has(key)) return;
      db.run(
        db.kysely
          .insertInto("requirement_sets")
          .values({ key, labels: JSON.stringify(labels), created_at: at })
          .onConflict((oc) => oc.column("key").doNothing()),
      );
      known.set(key, labels);
      covered.clear();
    },
    coveredBy(nodeLabels) {
      const cacheKey = [...nodeLabels].sort().join(",");
      let keys = covered.get(cacheKey);
      if (!keys) {
        const have = new Set(nodeLabels);
        keys = [...known].filter(([, labels]) => labels.every((l) => have.has(l))).map(([key]) => key);
        covered.set(cacheKey, keys);
      }
      return keys;
    },
  };
}
