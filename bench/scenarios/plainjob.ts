// plainjob (https://github.com/plainweb/plainjob), an in-process SQLite queue, draining the
// same no-op jobs as gaffer's drain, in the same run: the peer issue 24 measures the drain
// against. Its workers are processes of their own on the queue's file (as its README runs
// them for throughput), one job at a time each; it commits with synchronous=NORMAL, where
// gaffer's acknowledged results are on disk.
import { join } from "node:path";
import Database from "better-sqlite3";
import { better, defineQueue } from "plainjob";
import { nowMs, sleep, startNodeScript, tempDir, type Running } from "../lib.js";

export interface PlainjobDrain {
  /** Jobs a second, from the workers' start to the last job done. */
  rate: number;
  /** Each worker's CPU time a job it ran (µs): all the work is theirs, there is no server. */
  cpuUsPerJob: number;
}

const silent = { error: () => undefined, warn: () => undefined, info: () => undefined, debug: () => undefined };

/** `warmup` jobs are drained first, not counted (as gaffer's drain does). */
export async function plainjobDrain(jobs: number, processes = 2, warmup = 0, payload: unknown = {}): Promise<PlainjobDrain> {
  const db = join(tempDir(), "plainjob.db");
  const queue = defineQueue({ connection: better(new Database(db)), logger: silent });
  queue.addMany("noop", Array.from({ length: warmup > 0 ? warmup : jobs }, () => payload));
  const workers: Running[] = [];
  try {
    for (let i = 0; i < processes; i++) workers.push(await startNodeScript("plainjob-worker.js", [db], {}, /plainjob worker ready/));
    const reader = new Database(db, { readonly: true });
    const done = reader.prepare<[], { n: number }>("SELECT COUNT(*) AS n FROM plainjob_jobs WHERE status = 2");
    const until = async (count: number) => {
      const deadline = Date.now() + 300_000;
      while ((done.get()?.n ?? 0) < count) {
        if (Date.now() > deadline) throw new Error("plainjob's drain did not finish in 5 minutes");
        await sleep(5);
      }
    };
    let started = nowMs();
    for (const worker of workers) worker.proc.send("go");
    if (warmup > 0) {
      await until(warmup);
      // Each worker counts its CPU from here; the jobs go in as one transaction, seen at its commit.
      for (const worker of workers) worker.proc.send("mark");
      started = nowMs();
      queue.addMany("noop", Array.from({ length: jobs }, () => payload));
    }
    const deadline = Date.now() + 300_000;
    while ((done.get()?.n ?? 0) < warmup + jobs) {
      if (Date.now() > deadline) throw new Error("plainjob's drain did not finish in 5 minutes");
      await sleep(5);
    }
    const seconds = (nowMs() - started) / 1000;
    reader.close();
    const cpuUs = await Promise.all(workers.map((worker) => askCpu(worker)));
    return { rate: jobs / seconds, cpuUsPerJob: cpuUs.reduce((sum, us) => sum + us, 0) / jobs };
  } finally {
    queue.close();
    await Promise.all(workers.map((worker) => worker.stop()));
  }
}

function askCpu(worker: Running): Promise<number> {
  return new Promise((resolve) => {
    worker.proc.on("message", (message: { cpuUs?: number }) => {
      if (typeof message === "object" && typeof message.cpuUs === "number") resolve(message.cpuUs);
    });
    worker.proc.send("cpu");
  });
}
