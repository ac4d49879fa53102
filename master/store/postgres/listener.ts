// The commit signal on PostgreSQL: one connection of its own LISTENs on the cluster's
// channel and tells this master's listeners what any master committed (NOTIFY is sent
// inside each writing transaction, so it arrives only if, and once, it committed). When the
// connection drops it is made again; since notices may have been missed meanwhile, the
// listeners are then told that everything may have changed (Committed.missed). A connection
// that goes silent without closing (a network partition) is found by a check on a timer, as
// the leader checks its lock's, and made again the same way.
import pg from "pg";
import { CommitListeners } from "../commit-listeners.js";
import type { Committed } from "../types.js";
import { endClient, parseNotice, quoteIdent, SERVER_KEEPALIVES } from "./database.js";

/** How often the LISTEN connection is checked (a `SELECT 1`). */
export const DEFAULT_LISTEN_CHECK_MS = 5_000;
/** How long a check, or making the connection, may take before the connection is given up. */
const CHECK_TIMEOUT_MS = 5_000;

const EVERYTHING: Committed = Object.freeze({ claimable: true, scheduled: true, schedules: true, finished: [], revoked: true, settings: true, missed: true });

export interface CommitListenerParams {
  url: string;
  channel: string;
  /** This master's notices are told by `tell` at its commits; when they come back they are left out. */
  origin: string;
  onListenerError?: (error: unknown) => void;
  /** The listening connection failed (it is made again). */
  onConnectionError?: (message: string) => void;
  /** How often the listening connection is checked (default DEFAULT_LISTEN_CHECK_MS). */
  checkEveryMs?: number;
  /** How long a check may take (default 5 s). */
  checkTimeoutMs?: number;
}

export class CommitListener {
  private readonly listeners: CommitListeners;
  private client: pg.Client | undefined;
  private closed = false;
  private retryMs = 100;
  private timer: NodeJS.Timeout | undefined;
  private checkTimer: NodeJS.Timeout | undefined;
  private checking = false;

  constructor(private readonly params: CommitListenerParams) {
    this.listeners = new CommitListeners(params.onListenerError);
  }

  /** Connect and LISTEN; resolves once listening (throws if the first connection fails). */
  async start(): Promise<void> {
    await this.connect();
    this.checkTimer = setInterval(() => void this.check(), this.params.checkEveryMs ?? DEFAULT_LISTEN_CHECK_MS);
    this.checkTimer.unref();
  }

  /** The connection still answers within the check's timeout, or it is given up and made again. */
  private async check(): Promise<void> {
    const client = this.client;
    if (!client || this.checking) return;
    this.checking = true;
    try {
      await client.query("SELECT 1");
    } catch (error) {
      this.lost(client, `the LISTEN connection did not answer its check: ${(error as Error).message}`);
    } finally {
      this.checking = false;
    }
  }

  subscribe(listener: (change: Committed) => void): () => void {
    return this.listeners.subscribe(listener);
  }

  /** Tell the listeners of a commit of this master's own. */
  tell(change: Committed): void {
    this.listeners.tell(change);
  }

  private async connect(): Promise<void> {
    const timeoutMs = this.params.checkTimeoutMs ?? CHECK_TIMEOUT_MS;
    const client = new pg.Client({
      connectionString: this.params.url,
      keepAlive: true,
      options: SERVER_KEEPALIVES,
      query_timeout: timeoutMs,
      connectionTimeoutMillis: timeoutMs,
    });
    client.on("notification", (message) => {
      if (message.channel !== this.params.channel || message.payload === undefined) return;
      const notice = parseNotice(message.payload);
      if (!notice || notice.origin === this.params.origin) return;
      const { origin: _origin, ...change } = notice;
      this.listeners.tell(change);
    });
    client.on("error", (error) => this.lost(client, error.message));
    client.on("end", () => this.lost(client, "connection ended"));
    try {
      await client.connect();
      await client.query(`LISTEN ${quoteIdent(this.params.channel)}`);
    } catch (error) {
      await endClient(client);
      throw error;
    }
    // Closed while connecting: this connection is no one's to end later.
    if (this.closed) {
      await endClient(client);
      return;
    }
    this.client = client;
    this.retryMs = 100;
  }

  private lost(client: pg.Client, message: string): void {
    if (this.closed || this.client !== client) return;
    this.client = undefined;
    this.params.onConnectionError?.(message);
    void endClient(client);
    this.reconnect();
  }

  private reconnect(): void {
    if (this.closed || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.connect().then(
        () => {
          if (!this.closed) this.listeners.tell(EVERYTHING);
        },
        (error: unknown) => {
          this.params.onConnectionError?.((error as Error).message);
          this.retryMs = Math.min(this.retryMs * 2, 5_000);
          this.reconnect();
        },
      );
    }, this.retryMs);
    this.timer.unref();
  }

  /** Stop listening; a connection that does not say goodbye within a second is dropped. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    clearInterval(this.checkTimer);
    const client = this.client;
    this.client = undefined;
    if (client) await endClient(client);
  }
}
