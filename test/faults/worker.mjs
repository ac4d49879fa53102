// A worker process for the fault suite: the Worker class with an async handler that
// records every execution (job id, attempt, worker) in a shared file before working.
// usage: node worker.mjs MASTER_URL NAME STATE_DIR RUNS_FILE CAPACITY MIN_MS MAX_MS
import { appendFileSync } from "node:fs";
import { pino } from "pino";
import { Worker } from "../../dist/worker/index.js";

const [masterUrl, name, stateDir, runsFile, capacity, minMs, maxMs] = process.argv.slice(2);
const min = Number(minMs);
const span = Number(maxMs) - min;

const worker = new Worker({
  masterUrl,
  name,
  stateDir,
  capacity: Number(capacity),
  clientId: process.env.GAFFER_CLIENT_ID,
  clientSecret: process.env.GAFFER_CLIENT_SECRET,
  graceS: 5,
  logger: pino({ level: process.env.GAFFER_LOG_LEVEL ?? "info", base: { name } }),
  handlers: {
    work: async (job, { signal }) => {
      appendFileSync(runsFile, `${job.id} ${job.attempt} ${name}\n`);
      const ms = min + Math.random() * span;
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, ms);
        signal.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve(undefined);
        });
      });
      return { by: name };
    },
  },
});

process.on("SIGTERM", () => void worker.stop().then(() => process.exit(0)));
process.on("SIGINT", () => void worker.stop().then(() => process.exit(0)));
await worker.start();
