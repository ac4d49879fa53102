// Which dependents fail with the jobs a verb ended, in which order, and which dependency each
// names: the same answer for a batch as for its jobs ended one after the other.
import { describe, expect, it } from "vitest";
import { planDependencyFailures, type DependentsGraph } from "../../../master/queue/dependency-failures.js";
import type { JobFacts } from "../../../master/queue/transitions.js";
import type { JobStatus } from "../../../master/store/types.js";

const facts = (status: JobStatus): JobFacts => ({ status, attempt: 0, nodeId: null, retryCount: 0, maxRetries: 3, cancelRequested: false });

/** "a<-b" links (b depends on a); every dependent blocked unless `statuses` says otherwise; dependents oldest first as listed. */
function graph(links: [string, string][], statuses: Record<string, JobStatus> = {}): DependentsGraph {
  const dependents = new Map<string, string[]>();
  const jobs = new Map<string, JobFacts>();
  for (const [dependency, dependent] of links) {
    dependents.set(dependency, [...(dependents.get(dependency) ?? []), dependent]);
    jobs.set(dependent, facts(statuses[dependent] ?? "blocked"));
  }
  return { dependents, jobs };
}

const named = (ended: string[], g: DependentsGraph) => planDependencyFailures(ended, g).map(({ id, dependency }) => [id, dependency]);

describe("planDependencyFailures", () => {
  it("names, in a diamond whose two dependencies end together, the one ended first", () => {
    const diamond = graph([["a", "c"], ["b", "c"]]);
    expect(named(["a", "b"], diamond)).toEqual([["c", "a"]]);
    expect(named(["b", "a"], diamond)).toEqual([["c", "b"]]);
  });

  it("fails an earlier ended job's whole cascade before the next one's", () => {
    // e waits on c (which waits on a) and on b: a's cascade reaches e through c before b is handled.
    const g = graph([["a", "c"], ["c", "e"], ["b", "e"]]);
    expect(named(["a", "b"], g)).toEqual([["c", "a"], ["e", "c"]]);
    expect(named(["b", "a"], g)).toEqual([["e", "b"], ["c", "a"]]);
  });

  it("fails a cascade level by level, each job's dependents oldest first: a job waiting on two of them names the older", () => {
    // c and d both wait on a; f waits on both (listed d first). Depth first from the last pushed would name d.
    const g = graph([["a", "c"], ["a", "d"], ["c", "f"], ["d", "f"], ["a", "g"], ["f", "h"], ["g", "h"]]);
    expect(named(["a"], g)).toEqual([["c", "a"], ["d", "a"], ["g", "a"], ["f", "c"], ["h", "g"]]);
  });

  it("leaves, and does not go past, a dependent that is not blocked", () => {
    const g = graph([["a", "b"], ["b", "c"], ["a", "d"]], { b: "failed" });
    expect(planDependencyFailures(["a"], g)).toEqual([{ id: "d", dependency: "a", transition: expect.objectContaining({ status: "failed", failureReason: "dependency_failed" }) }]);
  });

  it("answers for a batch what its jobs ended one at a time answer together", () => {
    const links: [string, string][] = [["a", "c"], ["b", "c"], ["c", "e"], ["b", "e"], ["a", "f"], ["e", "g"], ["f", "g"]];
    const batch = named(["b", "a"], graph(links));
    // One at a time: the second call reads what the first left blocked.
    const first = named(["b"], graph(links));
    const failed = new Set(first.map(([id]) => id));
    const second = named(["a"], graph(links.filter(([, dependent]) => !failed.has(dependent))));
    expect(batch).toEqual([...first, ...second]);
  });
});
