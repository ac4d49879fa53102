// startMaster(options) → { url, close }: wires the rooms together, nothing else.
import { mkdirSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { dirname } from "node:path";
import type { AddressInfo } from "node:net";
import { FailedLoginLog } from "./auth/failed-logins.js";
import { devAuthenticator } from "./auth/principal.js";
import { LoginLimiter, RequestRateLimiter } from "./auth/rate-limits.js";
import { resolveJwtSecret, TokenService } from "./auth/tokens.js";
import { loadConfig, type ConfigValues, type MasterConfig } from "./config.js";
import { createApp } from "./http/app.js";
import { NodeOwners, type HttpDeps } from "./http/deps.js";
import type { Route } from "./http/route.js";
import { createLogger, type Logger } from "./log.js";
import { packageVersion } from "./package-info.js";
import { Dispatcher } from "./queue/dispatcher.js";
import { createQueuePolicy } from "./queue/policy.js";
import { openSqliteStore } from "./store/sqlite/index.js";
import { systemClock, type Clock, type Store } from "./store/types.js";
import { AgingSweeper } from "./sweepers/aging.js";
import { DeadNodeSweeper } from "./sweepers/dead-nodes.js";
import { Promoter } from "./sweepers/promoter.js";
import type { CronService } from "./sweepers/cron-service.js";
import type { PeriodicService } from "./sweepers/service.js";
import { StalledJobSweeper } from "./sweepers/stalled-jobs.js";
import { TokenCleanup } from "./sweepers/token-cleanup.js";

export { loadConfig, ConfigError, type MasterConfig } from "./config.js";

export interface MasterOptions extends ConfigValues {
  /** --config FILE */
  config?: string;
  /** Defaults to process.env; pass {} to ignore the environment. */
  env?: NodeJS.ProcessEnv;
  /** Tests move time with a fake clock. */
  clock?: Clock;
  /** A logger to use instead of one made from the config. */
  logger?: Logger;
  /** Retry jitter source (tests make it deterministic). */
  random?: () => number;
}

export interface RunningMaster {
  url: string;
  port: number;
  config: MasterConfig;
  close(): Promise<void>;
}

/** The pieces of a running master, for tests that reach inside. */
export interface MasterInternals extends RunningMaster {
  store: Store;
  dispatcher: Dispatcher;
  routes: Route[];
  services: (PeriodicService<unknown> | CronService<unknown>)[];
  log: Logger;
  /** Present when auth is on. */
  tokens: TokenService | undefined;
}

const SHUTDOWN_GRACE_MS = 10_000;

function listen(server: Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

export async function createMaster(options: MasterOptions = {}): Promise<MasterInternals> {
  const { config: configFile, env, clock = systemClock, logger, random, ...flags } = options;
  const config = loadConfig({ flags, env, configFile });
  const log = logger ?? createLogger({ level: config.logLevel });
  const startedAt = clock.now();

  if (config.db !== ":memory:") mkdirSync(dirname(config.db), { recursive: true });
  const store = openSqliteStore({
    path: config.db,
    synchronous: config.dbSynchronous,
    clock,
    policy: createQueuePolicy(config, random),
  });

  const dispatcher = new Dispatcher(store.jobs);
  const intervalMs = config.sweepIntervalS * 1000;
  const promoter = new Promoter({ store, clock, log, intervalMs, onJobsReady: () => dispatcher.notify() });
  const services: (PeriodicService<unknown> | CronService<unknown>)[] = [
    new DeadNodeSweeper({
      store,
      clock,
      log,
      intervalMs,
      nodeTimeoutMs: config.nodeTimeoutS * 1000,
      startedAt,
      onJobsReady: () => dispatcher.notify(),
    }),
    new StalledJobSweeper({ store, log, intervalMs, onJobsReady: () => dispatcher.notify() }),
    promoter,
    new AgingSweeper({ store, log, intervalMs: Math.min(intervalMs, config.agingS * 1000) }),
    new TokenCleanup(store, clock, log),
  ];

  const deps: HttpDeps = {
    store,
    dispatcher,
    config,
    log,
    clock,
    nodeOwners: new NodeOwners(store),
    wake: { jobsReady: () => dispatcher.notify(), jobsScheduled: () => promoter.poke() },
  };
  let ready = false;
  let tokens: TokenService | undefined;
  if (config.auth === "off") {
    log.warn({ event: "auth.off" }, "AUTH IS OFF (GAFFER_AUTH=off): every request acts as an admin. Development only.");
  } else {
    const secret = await resolveJwtSecret(config.jwtSecret, store.settings);
    tokens = new TokenService({ store, secret, ttlS: config.tokenTtlS, clock, log });
    if ((await store.clients.countByRole("admin")) === 0) {
      log.warn(
        { event: "auth.no_admin" },
        `no admin client yet: make one with  gaffer clients create --db ${config.db} --name admin --role admin`,
      );
    }
  }
  const rateLimiter = new RequestRateLimiter({
    clientPerMinute: config.rateLimitPerMinute,
    workerPerMinute: config.workerRateLimitPerMinute,
  });
  const failedLogins = new FailedLoginLog(store.audit, log);
  failedLogins.start();
  const { app, routes } = createApp({
    deps,
    authenticator: tokens ?? devAuthenticator,
    auth: { tokens, loginLimiter: new LoginLimiter(), failedLogins },
    version: packageVersion(),
    isReady: () => ready,
    guards: [
      async (_req, res, principal) => {
        for (const [name, value] of Object.entries(await rateLimiter.consume(principal))) res.setHeader(name, value);
      },
    ],
  });

  const server = createServer(app);
  let address: AddressInfo;
  try {
    address = await listen(server, config.host, config.port);
  } catch (error) {
    await failedLogins.stop();
    await store.close();
    throw error;
  }
  for (const service of services) service.start();
  ready = true;
  const url = `http://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}`;
  log.info({ event: "master.started", url, db: config.db, version: packageVersion() }, `listening on ${url}`);

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      ready = false;
      log.info({ event: "master.stopping" }, "shutting down");
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      dispatcher.close();
      // Keep-alive connections turn idle as their last answers go out: close them as they do.
      const sweepIdle = setInterval(() => server.closeIdleConnections(), 20);
      server.closeIdleConnections();
      const force = setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS);
      await closed;
      clearInterval(sweepIdle);
      clearTimeout(force);
      await Promise.all(services.map((service) => service.stop()));
      await failedLogins.stop();
      await store.close();
      log.info({ event: "master.stopped" }, "stopped");
    })());

  return { url, port: address.port, config, close, store, dispatcher, routes, services, log, tokens };
}

/** Start a master in-process with the same options as `gaffer master start`. */
export async function startMaster(options: MasterOptions = {}): Promise<RunningMaster> {
  const master = await createMaster(options);
  return { url: master.url, port: master.port, config: master.config, close: master.close };
}
