// Which master of a PostgreSQL cluster runs the sweepers and the schedules: the one that
// holds a session advisory lock, on a connection of its own. If that master dies, its
// session ends and the lock with it; another master takes it at its next look (each
// service looks before each run, at least every GAFFER_SWEEP_INTERVAL_S).
//
// A master cut off from the database without its connection closing (a network partition)
// must stop leading before another can start: the holder checks its connection by itself,
// on a timer (every GAFFER_SWEEP_INTERVAL_S or 5 s, whichever is less), and gives up the
// lead when a check fails or takes too long, while the server ends a silent session only
// after its TCP keepalives went unanswered for longer than that. A lock whose connection
// fails outright is given up the moment the connection says so.
import pg from "pg";
import { ADVISORY_CLASS, CLOSE_TIMEOUT_MS, endClient, SERVER_KEEPALIVES } from "./database.js";

/** How often the holder checks, at most, that its lock's connection still answers. */
export const DEFAULT_LEAD_CHECK_MS = 5_000;
/** How long a check, or making the lock's connection, may take before the lead is given up (or not taken). */
const CHECK_TIMEOUT_MS = 5_000;

export interface LeadershipParams {
  url: string;
  /** The lock's key: one per cluster (schema). */
  key: string;
  /** This master held the lead and lost it. */
  onLost?: (message: string) => void;
  /** How often the holder checks its lock's connection (default DEFAULT_LEAD_CHECK_MS). */
  checkEveryMs?: number;
  now?: () => number;
}

export class Leadership {
  private client: pg.Client | undefined;
  private held = false;
  private checkedAt = 0;
  private pending: Promise<boolean> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly checkEveryMs: number;
  private readonly now: () => number;
  private readonly onLost: (message: string) => void;

  constructor(private readonly params: LeadershipParams) {
    this.checkEveryMs = params.checkEveryMs ?? DEFAULT_LEAD_CHECK_MS;
    this.now = params.now ?? Date.now;
    this.onLost = params.onLost ?? (() => undefined);
  }

  /** Whether this master holds the lock now: takes it if it can, and checks a held one now and then. */
  async holds(): Promise<boolean> {
    if (this.closed) return false;
    if (this.held && this.now() - this.checkedAt < this.checkEveryMs) return true;
    return this.look();
  }

  /** Take the lock, or check the held one; one look at a time. */
  private look(): Promise<boolean> {
    this.pending ??= (this.held ? this.check() : this.take()).finally(() => (this.pending = undefined));
    return this.pending;
  }

  private async take(): Promise<boolean> {
    try {
      if (!this.client) {
        const client = new pg.Client({
          connectionString: this.params.url,
          keepAlive: true,
          options: SERVER_KEEPALIVES,
          query_timeout: CHECK_TIMEOUT_MS,
          connectionTimeoutMillis: CHECK_TIMEOUT_MS,
        });
        client.on("error", (error) => this.lose(client, error.message));
        client.on("end", () => this.lose(client, "connection ended"));
        try {
          await client.connect();
        } catch (error) {
          void endClient(client);
          throw error;
        }
        if (this.closed) {
          await endClient(client);
          return false;
        }
        this.client = client;
      }
      const result = await this.client.query<{ taken: boolean }>("SELECT pg_try_advisory_lock($1, hashtext($2)) AS taken", [ADVISORY_CLASS, this.params.key]);
      this.held = result.rows[0]?.taken === true && !this.closed;
      this.checkedAt = this.now();
      if (this.held) this.watch();
    } catch (error) {
      if (this.client) this.lose(this.client, (error as Error).message);
    }
    return this.held;
  }

  /** While held, check on a timer: a lost lead is given up without waiting for a service to ask. */
  private watch(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (this.held && !this.closed) void this.look();
    }, this.checkEveryMs);
    this.timer.unref();
  }

  /** The held lock's connection still answers (within CHECK_TIMEOUT_MS), or the lead is given up. */
  private async check(): Promise<boolean> {
    const client = this.client;
    if (!client) return (this.held = false);
    try {
      await client.query("SELECT 1");
      this.checkedAt = this.now();
    } catch (error) {
      this.lose(client, (error as Error).message);
    }
    return this.held;
  }

  private lose(client: pg.Client, message: string): void {
    if (this.client !== client) return;
    if (this.held) this.onLost(message);
    this.client = undefined;
    this.held = false;
    clearInterval(this.timer);
    this.timer = undefined;
    void endClient(client);
  }

  /**
   * Let go of the lock (its session ends). Bounded: a look under way is waited for at most
   * CLOSE_TIMEOUT_MS (one still connecting ends its connection itself, once made or timed
   * out), and a connection that does not say goodbye in time is dropped.
   */
  async close(): Promise<void> {
    this.closed = true;
    this.held = false;
    clearInterval(this.timer);
    this.timer = undefined;
    if (this.pending) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.pending.catch(() => undefined), new Promise((resolve) => (timer = setTimeout(resolve, CLOSE_TIMEOUT_MS)))]);
      clearTimeout(timer);
    }
    const client = this.client;
    this.client = undefined;
    if (client) await endClient(client);
  }
}
