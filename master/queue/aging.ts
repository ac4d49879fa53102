// Aging (API.md §2): a job that waits long enough rises one priority class per interval,
// never above high. Pure rules, used by every store when a job becomes ready or changes class.
import { AGING_CEILING_WEIGHT } from "../store/types.js";

/** When aging next lifts a job of `weight` that became ready at `readyAt`; null once at the ceiling. */
export function nextAgingAt(weight: number, readyAt: Date, agingMs: number): string | null {
  if (weight >= AGING_CEILING_WEIGHT) return null;
  return new Date(readyAt.getTime() + agingMs).toISOString();
}

/** The class a job of `weight` has reached after waiting since `readyAt`. */
export function agedWeight(weight: number, readyAt: Date, now: Date, agingMs: number): number {
  if (weight >= AGING_CEILING_WEIGHT) return weight;
  const intervals = Math.floor((now.getTime() - readyAt.getTime()) / agingMs);
  return Math.min(AGING_CEILING_WEIGHT, weight + Math.max(0, intervals));
}

/** A pending job's aging time came: one class up, and when it rises next (null at the ceiling). */
export function agedOnce(weight: number, agingAt: string | null, agingMs: number): { weight: number; agingAt: string | null } {
  const next = Math.min(AGING_CEILING_WEIGHT, weight + 1);
  return { weight: next, agingAt: next < AGING_CEILING_WEIGHT && agingAt !== null ? new Date(new Date(agingAt).getTime() + agingMs).toISOString() : null };
}

/**
 * A waiting job's new class `weight`: a pending one keeps the credit it earned waiting since
 * `readyAt` (its effective class and next aging time); any other starts at the class itself.
 */
export function reprioritized(weight: number, pending: boolean, readyAt: Date, now: Date, agingMs: number): { effective: number; agingAt: string | null } {
  if (!pending) return { effective: weight, agingAt: null };
  const effective = agedWeight(weight, readyAt, now, agingMs);
  const agingAt = effective < AGING_CEILING_WEIGHT ? new Date(readyAt.getTime() + (effective - weight + 1) * agingMs).toISOString() : null;
  return { effective, agingAt };
}
