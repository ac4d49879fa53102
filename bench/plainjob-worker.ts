// A plainjob worker process (the in-process SQLite queue issue 24 compares the drain with):
// one worker of a no-op handler on the queue's file. It says "ready", starts on the parent's
// "go", and answers "cpu" with the CPU time it spent since then, or since "mark" (microseconds).
// usage: node plainjob-worker.js DB
import Database from "better-sqlite3";
import { better, defineQueue, defineWorker } from "plainjob";

const [db = ""] = process.argv.slice(2);
const queue = defineQueue({ connection: better(new Database(db)), logger: silent() });
const worker = defineWorker("noop", async () => undefined, { queue, logger: silent(), pollIntervall: 10 });
let started = process.cpuUsage();

process.on("message", (message) => {
  if (message === "go") {
    started = process.cpuUsage();
    void worker.start();
  } else if (message === "mark") {
    started = process.cpuUsage();
  } else if (message === "cpu") {
    const used = process.cpuUsage(started);
    process.send?.({ cpuUs: used.user + used.system });
  }
});
process.send?.("ready");
console.log("plainjob worker ready");
process.on("SIGTERM", () => process.exit(0));

function silent() {
  const quiet = () => undefined;
  return { error: quiet, warn: quiet, info: quiet, debug: quiet };
}
