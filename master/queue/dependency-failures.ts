// Jobs ended failed or canceled: which of the jobs waiting on them fail with them
// (onDependencyFailed), in which order, and which dependency each one's job.failed audit row
// names. Pure: no SQL; each store reads the blocked jobs its ended jobs reach, once, and
// applies this answer with writes guarded by the status it read.
import { onDependencyFailed, type JobFacts, type Transition } from "./transitions.js";

/** What the ended jobs reach through blocked dependents, as read (locked) by the store. */
export interface DependentsGraph {
  /** Each job's dependents among those read, oldest first (by seq). */
  dependents: ReadonlyMap<string, readonly string[]>;
  /** The facts of every dependent read. */
  jobs: ReadonlyMap<string, JobFacts>;
}

/**
 * The rows a store read of the reached jobs (each with the dependency it was reached from,
 * oldest first) as a graph: each job by id, and each dependency's dependents in row order.
 */
export function graphOf<Job extends { id: string }>(rows: readonly (Job & { dependency: string })[], facts: (job: Job) => JobFacts): { jobs: Map<string, Job>; graph: DependentsGraph } {
  const jobs = new Map<string, Job>();
  const dependents = new Map<string, string[]>();
  for (const row of rows) {
    jobs.set(row.id, row);
    const list = dependents.get(row.dependency);
    if (list) list.push(row.id);
    else dependents.set(row.dependency, [row.id]);
  }
  return { jobs, graph: { dependents, jobs: new Map([...jobs].map(([id, job]) => [id, facts(job)])) } };
}

/** The audit rows of the dependents failed: one each, naming the dependency that failed it. */
export function dependencyFailureEvents(failed: readonly DependentFailure[]) {
  return failed.map(({ id, dependency, transition }) => ({
    event_type: `job.${transition.status}`,
    entity_type: "job",
    entity_id: id,
    client_id: null,
    details: { failure_reason: transition.failureReason, dependency },
  }));
}

export interface DependentFailure {
  id: string;
  /** The dependency its audit row names: the one whose end made it fail first. */
  dependency: string;
  transition: Transition;
}

/**
 * The dependents `ended` make fail, in the order they fail. `ended` is in the order the verb
 * ended them (a batch's reports as sent, a bulk action's jobs oldest first, a sweep's leases
 * oldest first). Each ended job's dependents fail as if it had ended alone, before the next
 * one's: level by level (its dependents, then theirs), each level in the order its jobs failed
 * and each job's dependents oldest first. A job waiting on several that end names the
 * dependency that made it fail first in that order: a diamond whose two roots end in one
 * batch names the root handled first, whichever store runs it. Ending the jobs one at a
 * time, each with a call of its own, fails the same jobs naming the same dependencies.
 */
export function planDependencyFailures(ended: readonly string[], graph: DependentsGraph): DependentFailure[] {
  const failures: DependentFailure[] = [];
  const failed = new Set<string>();
  for (const root of ended) {
    const queue = [root];
    for (let next = 0; next < queue.length; next++) {
      const dependency = queue[next] as string;
      for (const id of graph.dependents.get(dependency) ?? []) {
        const facts = graph.jobs.get(id);
        if (facts === undefined || failed.has(id)) continue;
        const transition = onDependencyFailed(facts);
        if (transition === null) continue;
        failed.add(id);
        failures.push({ id, dependency, transition });
        queue.push(id);
      }
    }
  }
  return failures;
}
