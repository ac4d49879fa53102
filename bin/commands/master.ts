// gaffer master start: run a master until SIGINT or SIGTERM.
import { Command } from "commander";

export function masterCommand(): Command {
  const master = new Command("master").description("Run the master");
  master
    .command("start")
    .description("Start a master: HTTP API, dashboard, sweepers, on a SQLite database (or PostgreSQL, with others)")
    .option("--db <path>", "SQLite database file (GAFFER_DB, default ./data/gaffer.db)")
    .option("--database-url <url>", "PostgreSQL database instead: every master on it is one cluster (GAFFER_DATABASE_URL)")
    .option("--host <host>", "address to listen on (GAFFER_HOST, default 127.0.0.1)")
    .option("--port <port>", "port to listen on (GAFFER_PORT, default 8080)")
    .option("--profile <profile>", "dev or prod defaults (GAFFER_PROFILE)")
    .option("--config <file>", "a JSON file of settings")
    .option("--rotate-jwt-secret", "this master's GAFFER_JWT_SECRET replaces the key the database's masters sign tokens with (GAFFER_ROTATE_JWT_SECRET=on)")
    .action(async (opts: { db?: string; databaseUrl?: string; host?: string; port?: string; profile?: string; config?: string; rotateJwtSecret?: boolean }) => {
      const { createMaster } = await import("../../master/index.js");
      const running = await createMaster({
        db: opts.db,
        databaseUrl: opts.databaseUrl,
        host: opts.host,
        port: opts.port,
        profile: opts.profile,
        config: opts.config,
        rotateJwtSecret: opts.rotateJwtSecret ? "on" : undefined,
      });
      // API.md §9: the ready line is printed whatever the log level.
      if (!running.log.isLevelEnabled("info")) process.stdout.write(`listening on ${running.url}\n`);
      // Said here, not in createMaster: gaffer dev makes the first admin itself.
      if (running.tokens && (await running.store.clients.countByRole("admin")) === 0) {
        running.log.warn(
          { event: "auth.no_admin" },
          `no admin client yet: make one with  gaffer clients create ${
            running.config.databaseUrl === undefined ? `--db ${running.config.db}` : "--database-url URL"
          } --name admin --role admin`,
        );
      }
      await new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (signal: NodeJS.Signals) => {
          if (stopping) {
            running.log.warn({ event: "master.killed", signal }, "second signal: stopping now");
            process.exit(1);
          }
          stopping = true;
          running.log.info({ event: "master.signal", signal }, `${signal}: stopping (again to stop at once)`);
          void running.close().then(resolve);
        };
        process.on("SIGINT", stop);
        process.on("SIGTERM", stop);
      });
    });
  return master;
}
