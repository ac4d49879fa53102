// Fair share between clients (API.md §5a, GAFFER_FAIR_SHARE=clients): which client's job a
// claim takes next within one effective priority. The stores bring the candidates (one
// row per lane and client, read in order from their fair_queue table); the choice is made
// here, once, for both.

export type FairShareMode = "off" | "clients";

export const FAIR_SHARE_MODES: readonly FairShareMode[] = ["off", "clients"];

/** The settings row that holds the cluster's mode. */
export const FAIR_SHARE_SETTING = "fair_share";

/** A client's pending jobs of one lane at the priority being filled. */
export interface FairCandidate {
  lane: number;
  clientId: string;
  /** Its oldest pending job there. */
  headSeq: number;
  /** How many of its jobs are pending there. */
  pending: number;
  /** The client's jobs running now, everywhere. */
  running: number;
}

export interface FairFillParams {
  /** Every candidate of one priority: per lane, at least the first fairRowsToRead(want, taken) in (running, headSeq) order. */
  candidates: readonly FairCandidate[];
  want: number;
  /** Jobs each client was given by this claim so far (at higher priorities): updated. */
  taken: Map<string, number>;
  /** The candidate's pending job after `seq` (its next in FIFO order). */
  nextSeq(candidate: FairCandidate, seq: number): number | undefined;
  /** Whether the claim may take one more job from this lane (a limited type's room); the job is counted if so. */
  admit?(lane: number): boolean;
}

/**
 * How many fair_queue rows of a lane a claim must read to fill `want` jobs of one priority,
 * when it has already given jobs to `taken`'s clients (at higher priorities, or at this one
 * before another claim held some of its jobs). fair_queue orders a lane's clients by
 * (running, head_seq); the fill orders them by (running + taken, head_seq). For a client
 * this claim gave nothing, the two keys are the same, so those clients keep their order
 * among themselves; a client it gave jobs only moves back. So a row past the first
 * `want + taken.size` has at least `want` clients given nothing before it in both orders,
 * and the fill never reaches it; reading only the first `want` rows would miss a client
 * that the taken ones push forward (a client of the same running count but a younger head).
 */
export function fairRowsToRead(want: number, taken: ReadonlyMap<string, number>): number {
  let moved = 0;
  for (const n of taken.values()) if (n > 0) moved += 1;
  return want + moved;
}

/**
 * The greedy fill of one priority: repeatedly the client with the fewest jobs running
 * (counting those this claim gave it), ties to the one whose oldest pending job is oldest,
 * and that client's oldest job. A candidate's order only ever moves back as it is given
 * jobs, so a lane's first `want` candidates in that order are all the fill can reach: the
 * first fairRowsToRead(want, taken) rows in fair_queue's order hold them.
 * Answers the chosen seqs in the order chosen.
 */
export function fillFairLevel(params: FairFillParams): number[] {
  const { taken, want } = params;
  const open = params.candidates.map((candidate) => ({ candidate, head: candidate.headSeq as number | undefined, left: candidate.pending }));
  const closedLanes = new Set<number>();
  const chosen: number[] = [];
  const load = (clientId: string, running: number) => running + (taken.get(clientId) ?? 0);
  while (chosen.length < want) {
    let best: (typeof open)[number] | undefined;
    for (const entry of open) {
      if (entry.head === undefined || entry.left <= 0 || closedLanes.has(entry.candidate.lane)) continue;
      if (!best) {
        best = entry;
        continue;
      }
      const a = load(entry.candidate.clientId, entry.candidate.running);
      const b = load(best.candidate.clientId, best.candidate.running);
      if (a < b || (a === b && entry.head < (best.head as number))) best = entry;
    }
    if (!best || best.head === undefined) break;
    if (params.admit && !params.admit(best.candidate.lane)) {
      closedLanes.add(best.candidate.lane);
      continue;
    }
    const seq = best.head;
    chosen.push(seq);
    taken.set(best.candidate.clientId, (taken.get(best.candidate.clientId) ?? 0) + 1);
    best.left -= 1;
    best.head = best.left > 0 ? params.nextSeq(best.candidate, seq) : undefined;
  }
  return chosen;
}

/** The highest priority among candidate rows, and those rows at it. */
export function topLevel<T extends { effective_priority: number }>(rows: readonly T[]): { priority: number; rows: T[] } | undefined {
  if (rows.length === 0) return undefined;
  const priority = Math.max(...rows.map((row) => row.effective_priority));
  return { priority, rows: rows.filter((row) => row.effective_priority === priority) };
}

/**
 * The fill's gate over a claim's own `admit` (a limited type's room): a lane it refuses is
 * added to `closed`, so the fill stops reading it. Undefined when nothing is limited.
 */
export function closingGate(admit: ((lane: number) => boolean) | undefined, closed: Set<number>): ((lane: number) => boolean) | undefined {
  if (!admit) return undefined;
  return (lane) => {
    if (admit(lane)) return true;
    closed.add(lane);
    return false;
  };
}
