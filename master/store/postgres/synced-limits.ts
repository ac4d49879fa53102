// Rate limits that every master of a PostgreSQL cluster counts together without a round trip
// per request (API.md §4, §12; RateLimitParams.sharing "synced"): each master decides in its
// own memory at once and, about once a second, sends what it counted since the last sync and
// reads back the cluster's totals for the keys it counts, in one statement for every key.
//
// The approximation: a master refuses when the cluster's total at its last sync, plus what it
// counted since, passes the limit. What the other masters counted since their own last sync
// is unknown to it, so a burst spread over N masters can pass up to about N times what one
// master would allow within one sync interval; a client that keeps on past its limit is
// refused everywhere from the next sync on. Windows are fixed, as rate-limiter-flexible's
// (`durationS` from a key's first point, one `expire` per row, the cluster's adopted at sync).
//
// The database never holds a request up: while a sync fails or is late, each decision is made
// from memory alone and reported (onFallback), and the points not yet sent wait for the next.
// A sync whose answer is lost after its COMMIT (the connection dropped then) counts as failed,
// so its points are sent again: over-counting (refusing early), never over-admitting, and
// bounded by that one sync's points (about one interval's of that master).
//
// Every sync locks its rows in one order, by row key, whatever order a master first saw its keys
// in: two masters syncing at once then wait on each other instead of deadlocking (40P01).
// A master's close sends the points counted since its last sync (a rolling restart forgets none).
import { sql } from "kysely";
import { RateLimiterRes } from "rate-limiter-flexible";
import type { RateLimiter, RateLimitParams } from "../types.js";
import type { PostgresDatabase } from "./database.js";

/** How often a master sends its counts and reads the cluster's. */
export const RATE_LIMIT_SYNC_MS = 1_000;

export interface SyncedLimitsParams {
  /** 0: no timer, sync() only (tests). */
  syncIntervalMs: number;
  /** A sync in flight for longer than this counts as failed until it answers. */
  lateAfterMs: number;
  /** A decision made from memory alone: the last sync failed or is late (called each time). */
  onFallback: (error: unknown) => void;
  /** The wall clock in milliseconds (rate_limits.expire is in these). */
  now?: () => number;
}

/** One key's count in its current window. */
interface KeyWindow {
  expireMs: number;
  /** The cluster's total at the last sync, this master's points sent so far included. */
  cluster: number;
  /** In the sync in flight, not yet in `cluster`. */
  sending: number;
  /** Counted here since, not sent yet (negative after refunds). */
  pending: number;
}

/** A key's window in the sync being made, to take its answer if the window is still the same. */
interface Sent {
  limiter: SyncedLimiter;
  key: string;
  window: KeyWindow;
}

class SyncedLimiter implements RateLimiter {
  readonly windows = new Map<string, KeyWindow>();
  private readonly durationMs: number;

  constructor(
    readonly params: RateLimitParams,
    private readonly sharing: SyncedLimits,
  ) {
    this.durationMs = params.durationS * 1000;
  }

  /** The row of a key, in rate-limiter-flexible's layout ("<prefix>:<key>"). */
  rowKey(key: string): string {
    return `${this.params.keyPrefix}:${key}`;
  }

  private window(key: string, now: number): KeyWindow {
    let window = this.windows.get(key);
    if (!window || window.expireMs <= now) {
      window = { expireMs: now + this.durationMs, cluster: 0, sending: 0, pending: 0 };
      this.windows.set(key, window);
    }
    return window;
  }

  consume(key: string | number, points = 1): Promise<RateLimiterRes> {
    this.sharing.decided();
    const now = this.sharing.now();
    const window = this.window(String(key), now);
    const used = Math.max(0, window.cluster + window.sending + window.pending);
    const msBeforeNext = window.expireMs - now;
    // A refused request adds nothing: the count stays what passed.
    if (used + points > this.params.points) return Promise.reject(new RateLimiterRes(0, msBeforeNext, used + points, false));
    window.pending += points;
    return Promise.resolve(new RateLimiterRes(this.params.points - used - points, msBeforeNext, used + points, used === 0));
  }

  reward(key: string | number, points = 1): Promise<RateLimiterRes> {
    this.sharing.decided();
    const now = this.sharing.now();
    const window = this.window(String(key), now);
    window.pending -= points;
    const used = Math.max(0, window.cluster + window.sending + window.pending);
    return Promise.resolve(new RateLimiterRes(Math.max(0, this.params.points - used), window.expireMs - now, used, false));
  }

  /** Forgets the key here and in the database (a statement of its own: no request limit deletes). */
  async delete(key: string | number): Promise<boolean> {
    this.windows.delete(String(key));
    return this.sharing.forget(this.rowKey(String(key)));
  }
}

/** The synced limiters of one store, and their sync. */
export class SyncedLimits {
  readonly now: () => number;
  private readonly limiters: SyncedLimiter[] = [];
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private inFlight: Promise<void> | undefined;
  private sentAt: number | undefined;
  /** Why the last sync failed; cleared by one that answers. */
  private failure: unknown;

  constructor(
    private readonly db: PostgresDatabase,
    private readonly params: SyncedLimitsParams,
  ) {
    this.now = params.now ?? Date.now;
  }

  limiter(params: RateLimitParams): RateLimiter {
    // Two limiters counting the same rows would send each key twice in one statement, which
    // PostgreSQL refuses (ON CONFLICT cannot affect a row twice): every sync would fail.
    if (this.limiters.some((limiter) => limiter.params.keyPrefix === params.keyPrefix)) {
      throw new Error(`a synced rate limit with the key prefix "${params.keyPrefix}" already exists on this store`);
    }
    const limiter = new SyncedLimiter(params, this);
    this.limiters.push(limiter);
    if (!this.timer && !this.closed && this.params.syncIntervalMs > 0) {
      // A tick while a sync is still in flight waits for the next.
      this.timer = setInterval(() => {
        if (!this.inFlight) void this.sync();
      }, this.params.syncIntervalMs);
      this.timer.unref();
    }
    return limiter;
  }

  /** A limiter decided: reported when it could count only in memory. */
  decided(): void {
    if (this.failure !== undefined) this.params.onFallback(this.failure);
    else if (this.sentAt !== undefined && this.now() - this.sentAt > this.params.lateAfterMs) {
      this.params.onFallback(new Error(`the rate limits' sync has not answered for ${this.params.lateAfterMs} ms`));
    }
  }

  /** Send every count made until now and read the totals back (after the sync in flight, if one is). */
  async sync(): Promise<void> {
    while (this.inFlight) await this.inFlight;
    if (this.closed) return;
    this.inFlight = this.send().finally(() => {
      this.inFlight = undefined;
      this.sentAt = undefined;
    });
    await this.inFlight;
  }

  /**
   * Stops the timer and sends the points counted since the last sync (after the sync in flight),
   * giving both `lateAfterMs` in all: a failure or a late answer is reported (onFallback) and
   * the close goes on. Nothing is sent after.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.timer = undefined;
    let gaveUp = false;
    const last = (async () => {
      while (this.inFlight) await this.inFlight;
      await this.send({ final: true });
      // Once given up on, its end is not reported: the pool is closing under it.
      if (this.failure !== undefined && !gaveUp) this.params.onFallback(this.failure);
    })();
    let timeout: NodeJS.Timeout | undefined;
    const late = new Promise<"late">((resolve) => {
      timeout = setTimeout(() => resolve("late"), this.params.lateAfterMs);
    });
    try {
      if ((await Promise.race([last, late])) === "late") {
        gaveUp = true;
        this.params.onFallback(new Error(`the rate limits' last sync has not answered for ${this.params.lateAfterMs} ms; closing without it`));
      }
    } finally {
      clearTimeout(timeout);
    }
  }

  async forget(rowKey: string): Promise<boolean> {
    try {
      await this.db.run(sql`DELETE FROM rate_limits WHERE key = ${rowKey}`);
    } catch (error) {
      // The row's window ends by itself; the other masters forget it at its end.
      this.params.onFallback(error);
    }
    return true;
  }

  /** `final`: the close's, which sends what is pending and reads nothing back. */
  private async send(options: { final?: boolean } = {}): Promise<void> {
    const now = this.now();
    const pushed: (Sent & { delta: number; expireMs: number })[] = [];
    const read: Sent[] = [];
    for (const limiter of this.limiters) {
      for (const [key, window] of limiter.windows) {
        // An ended window's points not sent yet belong to it: gone with it.
        if (window.expireMs <= now) limiter.windows.delete(key);
        else if (window.pending !== 0) {
          pushed.push({ limiter, key, window, delta: window.pending, expireMs: window.expireMs });
          window.sending = window.pending;
          window.pending = 0;
        } else if (!options.final) read.push({ limiter, key, window });
      }
    }
    if (pushed.length === 0 && read.length === 0) {
      // Nothing counted is waiting: the last failure has no decision left to spoil.
      this.failure = undefined;
      this.sentAt = undefined;
      return;
    }
    // Rows are locked in the order they are sent: the same on every master.
    pushed.sort((x, y) => compare(x.limiter.rowKey(x.key), y.limiter.rowKey(y.key)));
    this.sentAt = now;
    try {
      // One statement for every key: this master's points added (a row whose window ended
      // starts a new one with them), then every key's total read back.
      const rows = await this.db.run(sql<{ key: string; points: number; expire: number }>`
        WITH added AS (
          INSERT INTO rate_limits AS r (key, points, expire)
          SELECT * FROM unnest(${pushed.map((item) => item.limiter.rowKey(item.key))}::text[], ${pushed.map((item) => item.delta)}::int[], ${pushed.map((item) => item.expireMs)}::bigint[])
          ON CONFLICT (key) DO UPDATE SET
            points = CASE WHEN r.expire <= ${now} THEN excluded.points ELSE r.points + excluded.points END,
            expire = CASE WHEN r.expire <= ${now} THEN excluded.expire ELSE r.expire END
          RETURNING r.key, r.points, r.expire
        )
        SELECT key, points, expire FROM added
        UNION ALL
        SELECT key, points, expire FROM rate_limits WHERE key = ANY(${read.map((item) => item.limiter.rowKey(item.key))}::text[]) AND expire > ${now}`);
      this.failure = undefined;
      const totals = new Map(rows.map((row) => [row.key, row]));
      for (const { limiter, key, window } of [...pushed, ...read]) {
        // A window that ended meanwhile and started again is not the one these totals are of.
        if (limiter.windows.get(key) !== window) continue;
        const row = totals.get(limiter.rowKey(key));
        window.sending = 0;
        // No row: its window ended (or it was deleted) everywhere; this master's own count starts it again.
        window.cluster = row?.points ?? 0;
        if (row) window.expireMs = row.expire;
      }
    } catch (error) {
      this.failure = error;
      // Sent again with the next sync (if its window still runs).
      for (const { limiter, key, window } of pushed) {
        if (limiter.windows.get(key) !== window) continue;
        window.pending += window.sending;
        window.sending = 0;
      }
    }
  }
}

function compare(x: string, y: string): number {
  return x < y ? -1 : x > y ? 1 : 0;
}
