// createMaster(options) loads the config, opens the store and wires the rooms together: the
// sweepers, auth, request guards, the HTTP server and the shutdown (startMaster answers just
// { url, close }); throttled() keeps the store's repeated warnings to one a minute.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { FailedLoginLog } from "./auth/failed-logins.js";
import { devAuthenticator } from "./auth/principal.js";
import { DEFAULT_LOGIN_LIMITS, LoginLimiter, SecretCheckSlots } from "./auth/login-limits.js";
import { RequestRateLimiter } from "./auth/rate-limits.js";
import { RateLimitedError } from "./auth/principal.js";
import { JwtKeyMismatchError, logJwtKeyOutcome, resolveJwtKey, SigningKeyWatch } from "./auth/jwt-key.js";
import { TokenService } from "./auth/tokens.js";
import { ConfigError, loadConfig, type ConfigValues, type MasterConfig } from "./config.js";
import { createApp, type AppParams } from "./http/app.js";
import { NodeOwners, type HttpDeps } from "./http/deps.js";
import { addAnswerHeaders } from "./http/headers.js";
import { unavailable } from "./http/problem.js";
import { isWrite, type Route } from "./http/route.js";
import { createLogger, type Logger } from "./log.js";
import { Metrics } from "./metrics.js";
import { ModeController } from "./modes.js";
import { packageVersion } from "./package-info.js";
import { Dispatcher } from "./queue/dispatcher.js";
import { JobWaiters } from "./queue/job-waiters.js";
import { createQueuePolicy } from "./queue/policy.js";
import { openStore, type OpenStoreParams, type ReaderErrorKind } from "./store/open.js";
import { StorageUnavailableError, systemClock, type Clock, type Store } from "./store/types.js";
import { AgingSweeper } from "./sweepers/aging.js";
import { DeadNodeSweeper } from "./sweepers/dead-nodes.js";
import { Promoter } from "./sweepers/promoter.js";
import { Retention } from "./sweepers/retention.js";
import { Scheduler } from "./sweepers/scheduler.js";
import type { Service } from "./sweepers/service.js";
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

/** What createMaster builds on when not its defaults (tests run a master over a store they open). */
export interface MasterWiring {
  /** Opens the store the config names (default openStore). */
  openStore?: (params: OpenStoreParams) => Store | Promise<Store>;
}

export interface RunningMaster {
  url: string;
  port: number;
  config: MasterConfig;
  close(): Promise<void>;
  /** Settles once the master has stopped, whoever stopped it (close(), or its store's thread stopping: exit code 1). */
  stopped: Promise<void>;
}

/** The pieces of a running master, for tests that reach inside. */
export interface MasterInternals extends RunningMaster {
  store: Store;
  dispatcher: Dispatcher;
  waiters: JobWaiters;
  routes: Route[];
  services: Service<unknown>[];
  log: Logger;
  /** Present when auth is on. */
  tokens: TokenService | undefined;
  modes: ModeController;
  metrics: Metrics;
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

function createServices(params: {
  config: MasterConfig;
  store: Store;
  clock: Clock;
  log: Logger;
  metrics: Metrics;
  reportingSince: () => Date;
}): { services: Service<unknown>[]; promoter: Promoter; scheduler: Scheduler } {
  const { config, store, clock, log, metrics, reportingSince } = params;
  const intervalMs = config.sweepIntervalS * 1000;
  const promoter = new Promoter({ store, clock, log, intervalMs });
  const scheduler = new Scheduler({
    store,
    clock,
    log,
    intervalMs,
    defaults: { maxRetries: config.maxRetries, jobTimeoutS: config.jobTimeoutS },
    clientMaxQueued: config.clientMaxQueued,
  });
  const services: Service<unknown>[] = [
    new DeadNodeSweeper({ store, clock, log, intervalMs, nodeTimeoutMs: config.nodeTimeoutS * 1000, reportingSince, metrics }),
    new StalledJobSweeper({ store, log, intervalMs, metrics }),
    promoter,
    scheduler,
    new AgingSweeper({ store, log, intervalMs: Math.min(intervalMs, config.agingS * 1000) }),
    new TokenCleanup(store, clock, log),
    new Retention(store, clock, config.retentionDays, log),
  ];
  // With several masters on one database, one runs these at a time (API.md §12).
  for (const service of services) service.gate = () => store.leads();
  return { services, promoter, scheduler };
}

async function createAuth(config: MasterConfig, store: Store, clock: Clock, log: Logger, metrics: Metrics) {
  let tokens: TokenService | undefined;
  let secret: string | undefined;
  if (config.auth === "off") {
    log.warn({ event: "auth.off" }, "AUTH IS OFF (GAFFER_AUTH=off): every request acts as an admin. Development only.");
  } else {
    secret = await signingKey(config, store, log);
    tokens = new TokenService({ store, secret, ttlS: config.tokenTtlS, clock, log, onInvalid: (reason) => metrics.invalidTokens.inc({ reason }) });
  }
  const failedLogins = new FailedLoginLog(store.audit, log);
  // On PostgreSQL every master counts logins in the same place, each attempt before its
  // answer (sharing "exact"): a brute force spread over the masters gets no more tries (API.md §12).
  const loginLimiter = new LoginLimiter(DEFAULT_LOGIN_LIMITS, (params) => store.rateLimits.limiter({ ...params, sharing: "exact" }));
  return { tokens, secret, loginLimiter, secretChecks: new SecretCheckSlots(), failedLogins };
}

/**
 * The key that signs tokens, the same as every other master's of this database: on PostgreSQL
 * a master with another key refuses to start (ConfigError) unless rotating on purpose; on
 * SQLite, the one master a database has, a new key replaces the old with a warning.
 */
async function signingKey(config: MasterConfig, store: Store, log: Logger): Promise<string> {
  const rotate = config.rotateJwtSecret === "on";
  try {
    const { secret, outcome } = await resolveJwtKey({ configured: config.jwtSecret, settings: store.settings, rotate, shared: store.dialect === "postgres" });
    logJwtKeyOutcome(log, outcome, rotate);
    return secret;
  } catch (error) {
    if (error instanceof JwtKeyMismatchError) throw new ConfigError([error.message]);
    throw error;
  }
}

/** Guards every authenticated request passes before its body is read. */
function requestGuards(config: MasterConfig, store: Store, modes: ModeController, metrics: Metrics): NonNullable<AppParams["guards"]> {
  // Every request passes here: on PostgreSQL it is decided in this master's memory, the
  // masters' counts shared about once a second (sharing "synced"; README, "Scaling out").
  const rateLimiter = new RequestRateLimiter(
    { clientPerMinute: config.rateLimitPerMinute, workerPerMinute: config.workerRateLimitPerMinute },
    (params) => store.rateLimits.limiter({ ...params, sharing: "synced" }),
  );
  return [
    async (_req, res, principal) => {
      try {
        addAnswerHeaders(res, await rateLimiter.consume(principal));
      } catch (error) {
        if (error instanceof RateLimitedError) metrics.rateLimited.inc({ kind: "requests" });
        throw error;
      }
    },
    (_req, _res, _principal, spec) => {
      if (!modes.allowsWrites && isWrite(spec) && !spec.readOnlyAllowed) {
        throw unavailable(`the master is read-only (${modes.current.reason ?? "set by an admin"}); reads still work`);
      }
    },
  ];
}

/**
 * `fn`, at most once per `ms` for each kind of call (`kindOf`; one kind unless given), the
 * rest dropped: one kind of message never silences another.
 */
export function throttled<A extends unknown[]>(ms: number, fn: (...args: A) => void, kindOf: (...args: A) => string = () => ""): (...args: A) => void {
  const last = new Map<string, number>();
  return (...args) => {
    const kind = kindOf(...args);
    const now = Date.now();
    if (now - (last.get(kind) ?? -Infinity) < ms) return;
    last.set(kind, now);
    fn(...args);
  };
}

export async function createMaster(options: MasterOptions = {}, wiring: MasterWiring = {}): Promise<MasterInternals> {
  const { config: configFile, env, clock = systemClock, logger, random, ...flags } = options;
  const config = loadConfig({ flags, env, configFile });
  const log = logger ?? createLogger({ level: config.logLevel });
  const startedAt = clock.now();

  // The metric is made once the store is open; a rate limit counts only after that.
  let countRateLimitFallback = (): void => undefined;
  const logRateLimitFallback = throttled(60_000, (message: string) =>
    log.warn({ event: "rate_limits.fallback", err: message }, "PostgreSQL: sharing a rate limit failed or was late; this master counts in its own memory (gaffer_rate_limit_fallbacks_total)"),
  );
  // The store's thread stopping leaves the master nothing to serve with: it stops, exit code 1
  // (during the start, once it has started).
  let storeThreadStopped = (): void => undefined;
  const storeThreadGone = new Promise<void>((resolve) => (storeThreadStopped = resolve));
  const store = await (wiring.openStore ?? openStore)({
    config,
    clock,
    policy: createQueuePolicy(config, random),
    // Its own thread makes its policy with the system's clock and Math.random: a test's are kept here.
    policyParams: clock === systemClock && random === undefined ? config : undefined,
    onStoreThreadExit: (error) => {
      log.fatal({ event: "store.thread_exit", err: error.message }, "the store's thread stopped: the master stops (exit code 1)");
      process.exitCode = 1;
      storeThreadStopped();
    },
    serving: true,
    onCheckpointError: throttled(60_000, (message: string) => log.warn({ err: message }, "WAL checkpoint failed; retrying")),
    onReaderError: throttled(
      60_000,
      (message: string, kind: ReaderErrorKind) => log.warn({ err: message, kind }, "reader thread: long reads run on the event loop"),
      (_message, kind) => kind,
    ),
    onListenerError: (error) => log.error({ err: (error as Error).message }, "a commit listener failed"),
    onListenError: throttled(60_000, (message: string) => log.warn({ err: message }, "PostgreSQL: the connection that hears other masters' commits failed; reconnecting")),
    onLeadLost: (message: string) => log.warn({ event: "lead.lost", err: message }, "PostgreSQL: this master no longer runs the sweepers (its lock's connection failed); another takes over"),
    // Checked by the leader itself, at least as often as the sweepers run (API.md §12).
    leadCheckMs: config.sweepIntervalS * 1000,
    onRateLimitFallback: (error: unknown) => {
      countRateLimitFallback();
      logRateLimitFallback((error as Error | undefined)?.message ?? String(error));
    },
  });
  const modes = new ModeController(store, clock, log);
  await modes.load();
  // The dispatch order is the cluster's (API.md §5a): this master's setting goes into the
  // database, and every master's claims follow the database's.
  // Unset, it follows the database's.
  const fairShare = config.fairShare === undefined ? undefined : await store.jobs.setFairShare(config.fairShare);
  if (fairShare && fairShare.from !== config.fairShare) {
    log.warn(
      { event: "fair_share.changed", from: fairShare.from, to: config.fairShare },
      `fair share set to ${config.fairShare} (GAFFER_FAIR_SHARE) for every master of this database; it was ${fairShare.from}`,
    );
  }
  const metrics = new Metrics({ readQueueStats: () => store.jobs.stats(), maxTypes: config.metricsMaxTypes });
  countRateLimitFallback = () => metrics.rateLimitFallbacks.inc();
  const dispatcher = new Dispatcher({ jobs: store.jobs, nodes: store.nodes, canDispatch: () => modes.allowsDispatch });
  // Nodes can report from the moment the master listens (opening and checking a big database
  // can take seconds, which must not eat their grace), and again from the end of each
  // read-only spell; while read-only, their heartbeats are refused, so silence proves nothing.
  let listeningSince = startedAt;
  const reportingSince = () => {
    if (!modes.allowsWrites) return clock.now();
    const writable = modes.lastWritableAgainAt;
    return writable && writable > listeningSince ? writable : listeningSince;
  };
  const { services, promoter, scheduler } = createServices({ config, store, clock, log, metrics, reportingSince });
  // A full disk seen anywhere (a request or a sweep) turns the master read-only.
  const watchStorage = (error: unknown) => {
    if (error instanceof StorageUnavailableError) modes.storageFailed(error);
  };
  for (const service of services) service.onFailure = watchStorage;
  let auth: Awaited<ReturnType<typeof createAuth>>;
  try {
    auth = await createAuth(config, store, clock, log, metrics);
  } catch (error) {
    await store.close();
    throw error;
  }
  const signingKeyWatch = new SigningKeyWatch({ secret: auth.secret, settings: store.settings, log });
  // What a commit changed (on this master or, on PostgreSQL, another) wakes who waits for it:
  // claims, the promoter, the scheduler, result waiters; revoked tokens and the mode an admin
  // set hold here too (API.md §8, §12).
  const waiters = new JobWaiters({
    finalAmong: (ids) => store.jobs.finalAmong(ids),
    onRecheckError: throttled(60_000, (error: unknown) =>
      log.warn({ err: (error as Error | undefined)?.message }, "could not look up the jobs waited on after missed commits; trying again"),
    ),
  });
  const unsubscribe = store.onCommitted((change) => {
    if (change.claimable) dispatcher.notify();
    if (change.scheduled) promoter.poke();
    if (change.schedules) scheduler.poke();
    if (change.finished.length > 0) waiters.finished(change.finished);
    // Which jobs finished while notices went unheard is not known: one query looks them all up.
    if (change.missed) void waiters.recheck();
    if (change.revoked) auth.tokens?.forgetAll();
    if (change.settings) signingKeyWatch.recheck();
    if (change.settings) {
      void modes.reload().then(
        () => {
          if (modes.allowsDispatch) dispatcher.notify();
        },
        (error: unknown) => log.warn({ err: (error as Error).message }, "could not read the mode an admin set"),
      );
    }
  });

  // A rotation committed between this master's start-up read of the key and its listening
  // for settings changes would go unheard: look once more now that it listens.
  signingKeyWatch.recheck();

  const deps: HttpDeps = {
    store,
    dispatcher,
    waiters,
    config,
    log,
    clock,
    metrics,
    modes,
    nodeOwners: new NodeOwners(store),
  };
  let ready = false;
  const { app, routes } = createApp({
    deps,
    authenticator: {
      authenticate: (request) => {
        const refused = signingKeyWatch.refusal();
        if (refused !== undefined) throw unavailable(refused);
        return (auth.tokens ?? devAuthenticator).authenticate(request);
      },
    },
    auth: { ...auth, refusal: () => signingKeyWatch.refusal() },
    version: packageVersion(),
    isReady: () => ready && signingKeyWatch.refusal() === undefined,
    startedAt,
    services: () => Object.fromEntries(services.map((service) => [service.name, service.status()])),
    guards: requestGuards(config, store, modes, metrics),
    onError: watchStorage,
  });

  const server = createServer(app);
  let address: AddressInfo;
  try {
    address = await listen(server, config.host, config.port);
  } catch (error) {
    await store.close();
    throw error;
  }
  listeningSince = clock.now();
  auth.failedLogins.start();
  for (const service of services) service.start();
  ready = true;
  const url = `http://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}`;
  const database = config.databaseUrl === undefined ? { db: config.db } : { database: redactUrl(config.databaseUrl) };
  log.info({ event: "master.started", url, ...database, version: packageVersion(), mode: modes.current.mode }, `listening on ${url}`);

  let closing: Promise<void> | undefined;
  let markStopped = (): void => undefined;
  const stopped = new Promise<void>((resolve) => (markStopped = resolve));
  const close = () =>
    (closing ??= (async () => {
      ready = false;
      log.info({ event: "master.stopping" }, "shutting down");
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      dispatcher.close();
      waiters.close();
      unsubscribe();
      // Keep-alive connections turn idle as their last answers go out: close them as they do.
      const sweepIdle = setInterval(() => server.closeIdleConnections(), 20);
      server.closeIdleConnections();
      const force = setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS);
      await closed;
      clearInterval(sweepIdle);
      clearTimeout(force);
      await Promise.all(services.map((service) => service.stop()));
      await auth.failedLogins.stop();
      await store.close();
      log.info({ event: "master.stopped" }, "stopped");
      markStopped();
    })());
  void storeThreadGone.then(close);

  return { url, port: address.port, config, close, stopped, store, dispatcher, waiters, routes, services, log, tokens: auth.tokens, modes, metrics };
}

/** A database URL without its password, for logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    for (const key of ["password", "sslpassword"]) if (parsed.searchParams.has(key)) parsed.searchParams.set(key, "***");
    return parsed.toString();
  } catch {
    return "(a database URL)";
  }
}

/** Start a master in-process with the same options as `gaffer master start`. */
export async function startMaster(options: MasterOptions = {}): Promise<RunningMaster> {
  const master = await createMaster(options);
  return { url: master.url, port: master.port, config: master.config, close: master.close, stopped: master.stopped };
}
