// Taking points from a rate limiter in tests: "ok", or "refused" with the limiter's answer.
import { RateLimiterRes } from "rate-limiter-flexible";
import type { RateLimiter } from "../../master/store/types.js";

/** Consume one point: "ok", or "refused" with the limiter's answer. */
export async function take(limiter: RateLimiter, key: string): Promise<"ok" | "refused"> {
  try {
    await limiter.consume(key);
    return "ok";
  } catch (rejection) {
    if (rejection instanceof RateLimiterRes) return "refused";
    throw rejection;
  }
}

/** `times` points, one after the other. */
export async function takeMany(limiter: RateLimiter, key: string, times: number): Promise<string[]> {
  const answers: string[] = [];
  for (let i = 0; i < times; i++) answers.push(await take(limiter, key));
  return answers;
}
