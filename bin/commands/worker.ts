// gaffer worker start: run a worker daemon until SIGINT or SIGTERM (a second signal stops at once).
import { Command } from "commander";
import type { WorkerFlags } from "../../worker/config.js";
import { CliError, EXIT } from "./output.js";

export function workerCommand(): Command {
  const worker = new Command("worker").description("Run a worker");
  worker
    .command("start")
    .description("Register a node with the master, pull jobs and run them with the handlers file")
    .option("--master <url>", "the master's URL, or several masters' comma-separated (GAFFER_MASTER_URL, default http://127.0.0.1:8080)")
    .option("--client-id <id>", "API client id of role worker (GAFFER_CLIENT_ID)")
    .option("--client-secret <secret>", "its secret (GAFFER_CLIENT_SECRET); on the command line every local user can read it: prefer --client-secret-file")
    .option("--client-secret-file <path>", "read the secret from this file, without its trailing newline (GAFFER_CLIENT_SECRET_FILE)")
    .option("--name <name>", "node name (GAFFER_WORKER_NAME, default the host name)")
    .option("--labels <a,b>", "node labels (GAFFER_WORKER_LABELS)")
    .option("--capacity <n>", "jobs run at once (GAFFER_WORKER_CAPACITY, default 1)")
    .option("--handlers <file>", "JSON file mapping job types to commands (GAFFER_HANDLERS)")
    .option("--state-dir <dir>", "where unsent results are kept (GAFFER_STATE_DIR, default ./gaffer-worker)")
    .option("--grace-s <seconds>", "on stop, how long running jobs may take to finish (default 30)")
    .option("--max-connect-attempts <n>", "give up after this many attempts to reach the master at start (default: keep trying)")
    .action(async (flags: WorkerFlags) => {
      const [{ createLogger }, { loadHandlers, loadWorkerConfig, WorkerConfigError }, { Worker }] = await Promise.all([
        import("../../master/log.js"),
        import("../../worker/config.js"),
        import("../../worker/index.js"),
      ]);
      let config;
      let handlers;
      try {
        config = loadWorkerConfig(flags, process.env);
        for (const warning of config.warnings) process.stderr.write(`gaffer: warning: ${warning}\n`);
        if (!config.handlersFile) throw new WorkerConfigError("--handlers FILE (or GAFFER_HANDLERS) is required");
        handlers = loadHandlers(config.handlersFile);
      } catch (error) {
        if (error instanceof WorkerConfigError) throw new CliError(error.message, EXIT.usage);
        throw error;
      }
      const log = createLogger({ level: config.logLevel, name: "gaffer-worker" });
      const running = new Worker({
        masterUrl: config.masterUrl,
        clientId: config.clientId,
        clientSecret: config.clientSecret,
        token: config.token,
        name: config.name,
        labels: config.labels,
        capacity: config.capacity,
        handlers,
        stateDir: config.stateDir,
        graceS: config.graceS,
        maxConnectAttempts: config.maxConnectAttempts,
        logTailBytes: config.logTailBytes,
        logger: log,
      });
      let signals = 0;
      const stopped = new Promise<number>((resolve) => {
        const onSignal = (signal: NodeJS.Signals) => {
          signals += 1;
          if (signals === 1) {
            log.info({ event: "worker.signal", signal }, `${signal}: stopping gracefully (again to stop at once)`);
            void running.stop().then(() => resolve(EXIT.ok));
          } else {
            log.warn({ event: "worker.killed", signal }, "second signal: stopping now");
            void running.kill().then(() => resolve(EXIT.failed));
          }
        };
        process.on("SIGINT", onSignal);
        process.on("SIGTERM", onSignal);
      });
      try {
        await running.start();
      } catch (error) {
        // Stopped by a signal while still trying to reach the master: that is a clean stop.
        if (signals > 0) process.exit(await stopped);
        await running.kill();
        throw new CliError(`the worker could not start: ${(error as Error).message}`, EXIT.unavailable);
      }
      // Exit now: an idle keep-alive socket to the master must not hold the process open.
      process.exit(await stopped);
    });
  return worker;
}
