// gaffer dev (npm start): a master on an embedded SQLite file plus a local worker, so a newcomer sees jobs flow.
// Auth is on, as in production: the first start makes an admin (for you) and a worker
// (for the local worker) and writes their credentials to a file only you can read.
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { Command } from "commander";
import type { MasterInternals } from "../../master/index.js";
import type { Role } from "../../master/store/types.js";

interface Credentials {
  GAFFER_MASTER_URL: string;
  GAFFER_CLIENT_ID: string;
  GAFFER_CLIENT_SECRET: string;
  GAFFER_DEV_WORKER_ID: string;
  GAFFER_DEV_WORKER_SECRET: string;
}

function readCredentials(path: string): Partial<Credentials> {
  if (!existsSync(path)) return {};
  const pairs = readFileSync(path, "utf8")
    .split("\n")
    .map((line) => /^([A-Z_]+)=(.*)$/.exec(line.trim()))
    .filter((match): match is RegExpExecArray => match !== null);
  return Object.fromEntries(pairs.map((match) => [match[1], match[2]]));
}

/** The saved client if it still exists, is enabled and its secret still matches; else a new one. */
async function ensureClient(master: MasterInternals, id: string | undefined, secret: string | undefined, name: string, role: Role) {
  const [{ createClient }, { verifySecret }] = await Promise.all([import("../../master/auth/clients.js"), import("../../master/auth/secrets.js")]);
  if (id && secret) {
    const client = await master.store.clients.get(id);
    if (client && client.disabled_at === null && client.role === role && (await verifySecret(secret, client.secret_hash))) {
      return { id, secret };
    }
  }
  const created = await createClient(master.store, { name, role, actor: null });
  master.log.info(
    { event: "dev.client_created", clientId: created.id, role },
    role === "admin" ? `made an admin client for you: ${created.id}` : `made a worker client for the local worker: ${created.id}`,
  );
  return { id: created.id, secret: created.client_secret };
}

async function ensureCredentials(master: MasterInternals, path: string): Promise<Credentials> {
  const saved = readCredentials(path);
  const admin = await ensureClient(master, saved.GAFFER_CLIENT_ID, saved.GAFFER_CLIENT_SECRET, "dev-admin", "admin");
  const worker = await ensureClient(master, saved.GAFFER_DEV_WORKER_ID, saved.GAFFER_DEV_WORKER_SECRET, "dev-worker", "worker");
  const credentials: Credentials = {
    GAFFER_MASTER_URL: master.url,
    GAFFER_CLIENT_ID: admin.id,
    GAFFER_CLIENT_SECRET: admin.secret,
    GAFFER_DEV_WORKER_ID: worker.id,
    GAFFER_DEV_WORKER_SECRET: worker.secret,
  };
  const text = [
    "# gaffer dev: credentials of the first admin (you) and of the local worker.",
    "# Readable only by you. Load them into a shell with:  set -a; . ./data/credentials.env; set +a",
    ...Object.entries(credentials).map(([key, value]) => `${key}=${value}`),
    "",
  ].join("\n");
  writeFileSync(path, text, { mode: 0o600 });
  chmodSync(path, 0o600);
  return credentials;
}

export function devCommand(): Command {
  return new Command("dev")
    .description("Run a master and a local worker with example handlers (echo, sleep, fail); writes admin credentials")
    .option("--db <path>", "SQLite database file", "./data/gaffer.db")
    .option("--port <port>", "port to listen on (GAFFER_PORT, default 8080)")
    .action(async (opts: { db: string; port?: string }) => {
      const [{ createMaster }, { Worker }, { exampleHandlers }] = await Promise.all([
        import("../../master/index.js"),
        import("../../worker/index.js"),
        import("../../worker/examples/handlers.js"),
      ]);
      const master = await createMaster({ profile: "dev", auth: "on", db: opts.db, port: opts.port });
      const credentialsFile = join(dirname(opts.db), "credentials.env");
      const credentials = await ensureCredentials(master, credentialsFile);
      const worker = new Worker({
        masterUrl: master.url,
        clientId: credentials.GAFFER_DEV_WORKER_ID,
        clientSecret: credentials.GAFFER_DEV_WORKER_SECRET,
        name: "local",
        labels: ["local"],
        capacity: 4,
        handlers: exampleHandlers,
        stateDir: join(dirname(opts.db), "worker"),
        logger: master.log.child({ component: "worker" }),
      });
      await worker.start();
      const cli = "node dist/bin/gaffer.js";
      master.log.info(
        { event: "dev.ready", url: master.url, credentials: credentialsFile },
        [
          `gaffer is running at ${master.url} with a local worker (handlers: echo, sleep, fail).`,
          `Dashboard: ${master.url}/ (sign in with GAFFER_CLIENT_ID and GAFFER_CLIENT_SECRET from ${credentialsFile})`,
          `The first admin's credentials are in ${credentialsFile} (readable only by you). In another terminal:`,
          `  set -a; . ${credentialsFile}; set +a`,
          `  ${cli} jobs submit --type echo --payload '{"hello":"world"}' --wait`,
          `  ${cli} jobs list`,
          `  curl -s -H "Authorization: Bearer $(${cli} token)" ${master.url}/api/v1/queue/stats`,
          `API document: ${master.url}/openapi.json`,
        ].join("\n"),
      );
      const code = await new Promise<number>((resolve) => {
        let signals = 0;
        const stop = (signal: NodeJS.Signals) => {
          signals += 1;
          if (signals === 1) {
            master.log.info({ event: "dev.signal", signal }, `${signal}: stopping (Ctrl-C again stops at once)`);
            void worker
              .stop()
              .then(() => master.close())
              .then(() => resolve(0));
          } else {
            // At once: running jobs are stopped, unsent results stay on disk for the next start.
            master.log.warn({ event: "dev.killed", signal }, "second signal: stopping now");
            void worker.kill().finally(() => resolve(1));
          }
        };
        process.on("SIGINT", stop);
        process.on("SIGTERM", stop);
        // Stopped by itself (its store's thread stopped, exit code 1): the local worker stops too.
        void master.stopped.then(() => {
          if (signals === 0) void worker.stop().finally(() => resolve(1));
        });
      });
      process.exit(code);
    });
}
