// A bench worker process: the Worker class with an async no-op handler. With --ipc, it
// tells its parent when each handler starts (for dispatch latency).
// usage: node worker.js MASTER_URL NAME STATE_DIR CAPACITY [--ipc]
import { pino } from "pino";
import { Worker } from "../worker/index.js";
import { nowMs } from "./lib.js";

const [masterUrl = "", name = "bench", stateDir = "./bench-worker", capacity = "100", ipc] = process.argv.slice(2);
const report = ipc === "--ipc" && process.send ? (message: unknown) => process.send?.(message) : undefined;

const worker = new Worker({
  masterUrl,
  name,
  stateDir,
  capacity: Number(capacity),
  clientId: process.env.GAFFER_CLIENT_ID,
  clientSecret: process.env.GAFFER_CLIENT_SECRET,
  logger: pino({ level: "warn" }),
  handlers: {
    noop: async (job) => {
      report?.({ id: job.id, startedAt: nowMs() });
      return null;
    },
  },
});
process.on("SIGTERM", () => void worker.stop().then(() => process.exit(0)));
await worker.start();
console.log(`listening on worker ${name}`);
