// gaffer dev (npm start): a master on an embedded SQLite file plus a local worker, so a newcomer sees jobs flow.
import { join } from "node:path";
import { Command } from "commander";
import { createMaster } from "../../master/index.js";
import { exampleHandlers } from "../../worker/examples/handlers.js";
import { Worker } from "../../worker/index.js";

export function devCommand(): Command {
  return new Command("dev")
    .description("Run a master (dev profile) and a local worker with example handlers: echo, sleep, fail")
    .option("--db <path>", "SQLite database file", "./data/gaffer.db")
    .option("--port <port>", "port to listen on (GAFFER_PORT, default 8080)")
    .action(async (opts: { db: string; port?: string }) => {
      const master = await createMaster({ profile: "dev", db: opts.db, port: opts.port });
      const worker = new Worker({
        masterUrl: master.url,
        name: "local",
        labels: ["local"],
        capacity: 4,
        handlers: exampleHandlers,
        stateDir: join(opts.db, "..", "worker"),
        logger: master.log.child({ component: "worker" }),
      });
      await worker.start();
      master.log.info(
        { event: "dev.ready", url: master.url },
        [
          `gaffer is running at ${master.url} with a local worker (handlers: echo, sleep, fail).`,
          `Submit a job:  curl -s -X POST ${master.url}/api/v1/jobs -H 'content-type: application/json' -d '{"type":"echo","payload":{"hello":"world"}}'`,
          `Watch jobs:    curl -s ${master.url}/api/v1/jobs`,
          `API document:  ${master.url}/openapi.json`,
        ].join("\n"),
      );
      await new Promise<void>((resolve) => {
        let signals = 0;
        const stop = () => {
          signals += 1;
          if (signals > 1) process.exit(1);
          void worker
            .stop()
            .then(() => master.close())
            .then(resolve);
        };
        process.on("SIGINT", stop);
        process.on("SIGTERM", stop);
      });
      process.exit(0);
    });
}
