// The outbox against a model (an ordered map by job and attempt, a repeat going to the end),
// through random adds, settles, restarts and crashes (a second Outbox on the files, the first
// abandoned), with small limits so that it moves between batches and rows.
import { afterAll, expect, it } from "vitest";
import { Outbox, type OutboxEntry } from "../../worker/outbox.js";
import { removeTempDirs, tempDir } from "../helpers/temp.js";

afterAll(() => removeTempDirs());

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const view = (e: OutboxEntry) => ({ jobId: e.jobId, attempt: e.attempt, status: e.status, result: e.status === "completed" ? (e.result ?? null) : undefined, error: e.error, logTail: e.logTail });

for (const seed of (process.env.SEEDS ?? "1,2,3,4").split(",").map(Number)) {
  it(`matches the model, seed ${seed}`, () => {
    const random = rng(seed);
    const pick = <T,>(list: T[]): T => list[Math.floor(random() * list.length)] as T;
    const dir = tempDir();
    const limits = { mirroredAtMost: 12, mirroredBytesAtMost: 3000 };
    let outbox = new Outbox(dir, limits);
    const open: Outbox[] = [outbox];
    const model = new Map<string, OutboxEntry>();
    const key = (jobId: string, attempt: number) => `${attempt}/${jobId}`;
    const ids = ["a", "b", "c", "d", "e", "f", "g", "h"];
    const attempts = new Map<string, number>();
    const used = new Set<string>();
    for (let step = 0; step < 1500; step++) {
      const r = random();
      if (r < 0.5) {
        const n = 1 + Math.floor(random() * 5);
        const entries: OutboxEntry[] = [];
        for (let i = 0; i < n; i++) {
          const jobId = pick(ids);
          // FRESH=1: never the same job and attempt twice (a later attempt, or an older one still new)
          let attempt = process.env.FRESH ? (attempts.set(jobId, (attempts.get(jobId) ?? 0) + 1), attempts.get(jobId) ?? 0) : 1 + Math.floor(random() * 3);
          if (process.env.SHUFFLED) {
            do attempt = 1 + Math.floor(random() * 1_000_000); while (used.has(`${jobId}/${attempt}`));
            used.add(`${jobId}/${attempt}`);
          }
          const big = random() < 0.1 ? "x".repeat(600) : "s";
          const entry: OutboxEntry =
            random() < 0.7
              ? { nodeId: "n", jobId, attempt, status: "completed", ...(random() < 0.2 ? {} : { result: { step, i, big } }) }
              : { nodeId: "n", jobId, attempt, status: "failed", error: { message: `m${step}`, retryable: true } };
          if (random() < 0.1) entry.logTail = `tail ${step}`;
          entries.push(entry);
        }
        for (const entry of entries) {
          const k = key(entry.jobId, entry.attempt);
          model.delete(k);
          model.set(k, structuredClone(entry));
        }
        outbox.add(entries);
      } else if (r < 0.8) {
        const keys: { jobId: string; attempt: number }[] = [];
        for (const entry of model.values()) if (random() < 0.4) keys.push({ jobId: entry.jobId, attempt: entry.attempt });
        if (random() < 0.3) keys.push({ jobId: pick(ids), attempt: 1 + Math.floor(random() * 30) });
        for (const k of keys) model.delete(key(k.jobId, k.attempt));
        outbox.settle(keys);
      } else if (r < 0.9) {
        outbox.close();
        outbox = new Outbox(dir, limits);
        open.push(outbox);
      } else {
        // kill -9: the old one is never closed nor used again
        outbox = new Outbox(dir, limits);
        open.push(outbox);
      }
      const expected = [...model.values()].map((entry) => view(entry));
      expect(outbox.pending(1000).map((entry) => view(entry)), `step ${step}`).toEqual(expected);
      expect(outbox.size, `size at step ${step}`).toBe(model.size);
      expect(new Set(outbox.heldJobs().map((h) => key(h.jobId, h.attempt))), `held at step ${step}`).toEqual(new Set(model.keys()));
    }
    for (const o of open) o.close();
  });
}
