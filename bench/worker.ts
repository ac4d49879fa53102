// A bench worker process: the Worker class with an async no-op handler, whose result is null
// or, with BENCH_RESULT_BYTES=N (--result-bytes), about N bytes of JSON. With --ipc, it
// tells its parent when each handler starts (for dispatch latency).
// usage: node worker.js MASTER_URL NAME STATE_DIR CAPACITY [--ipc]
import { pino } from "pino";
import { Worker } from "../worker/index.js";
import { benchPayload, nowMs } from "./lib.js";

const [masterUrl = "", name = "bench", stateDir = "./bench-worker", capacity = "100", ipc] = process.argv.slice(2);
const resultBytes = Number(process.env.BENCH_RESULT_BYTES ?? 0);
const result = resultBytes > 0 ? benchPayload(resultBytes) : null;
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
      return result;
    },
  },
});
process.on("SIGTERM", () => void worker.stop().then(() => process.exit(0)));
await worker.start();
console.log(`listening on worker ${name}`);
