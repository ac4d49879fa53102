// A graphile-worker process for the PostgreSQL bench's anchor: its runner with one in-process
// no-op task, in graphile-worker's default mode or its fastest (a local queue of jobs fetched
// in batches, completions batched). It tells its parent when its first task starts and how
// many tasks it ran, and stops on SIGTERM. Told { from } (a time, nowMs), it tells the first
// task that starts from then on instead.
// usage: node graphile-worker.js DATABASE_URL default|fastest CONCURRENCY POOL_SIZE
import { Logger, run, type Runner } from "graphile-worker";
import { nowMs } from "./lib.js";

const [connectionString = "", mode = "default", concurrency = "10", poolSize = "11"] = process.argv.slice(2);

/** graphile-worker's own perfTest settings for its fastest mode (graphile/worker perfTest/graphile.config.js). */
const FASTEST = {
  localQueue: { size: 500, refetchDelay: { durationMs: 10 } },
  completeJobBatchDelay: 0,
  failJobBatchDelay: 0,
};

let ran = 0;
let told = 0;
/** The first task that starts at or after this moment is told (the parent moves it past a warm-up round). */
let from = 0;
let toldFirst = false;
process.on("message", (message: { from?: number }) => {
  if (message.from !== undefined) {
    from = message.from;
    toldFirst = false;
  }
});
const tell = () => {
  if (ran !== told) {
    told = ran;
    process.send?.({ ran });
  }
};
const silent = new Logger(() => (level, message) => {
  if (level === "error") process.stderr.write(`graphile-worker: ${message}\n`);
});

const runner: Runner = await run({
  noHandleSignals: true,
  taskList: {
    noop: async () => {
      ran += 1;
      if (!toldFirst) {
        const now = nowMs();
        if (now >= from) {
          toldFirst = true;
          process.send?.({ first: now });
        }
      }
    },
  },
  preset: {
    worker: {
      connectionString,
      concurrentJobs: Number(concurrency),
      maxPoolSize: Number(poolSize),
      logger: silent,
      ...(mode === "fastest" ? FASTEST : {}),
    },
  },
});
setInterval(tell, 50).unref();
process.on("SIGTERM", () => {
  tell();
  void runner.stop().then(() => process.exit(0));
});
console.log(`listening on graphile-worker ${mode}`);
