// Rate limits in this process's memory: what a store with one master (SQLite) keeps, and
// what a PostgreSQL store counts in while its database cannot be reached.
import { RateLimiterMemory } from "rate-limiter-flexible";
import type { RateLimitParams, RateLimitStore } from "./types.js";

export function memoryLimiter(params: RateLimitParams): RateLimiterMemory {
  return new RateLimiterMemory({ keyPrefix: params.keyPrefix, points: params.points, duration: params.durationS });
}

export const memoryRateLimits: RateLimitStore = {
  limiter: memoryLimiter,
  // Memory counters expire by themselves.
  deleteExpired: async () => 0,
};
