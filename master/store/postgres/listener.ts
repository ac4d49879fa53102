// The commit signal on PostgreSQL: one connection of its own LISTENs on the cluster's
// channel and tells this master's listeners what any master committed (NOTIFY is sent
// inside each writing transaction, so it arrives only if, and once, it committed). When the
// connection drops it is made again; since notices may have been missed meanwhile, the
// listeners are then told that everything may have changed (Committed.missed).
import pg from "pg";
import type { Committed } from "../types.js";
import { parseNotice, quoteIdent, SERVER_KEEPALIVES } from "./database.js";

type Listener = (change: Committed) => void;

const EVERYTHING: Committed = Object.freeze({ claimable: true, scheduled: true, schedules: true, finished: [], revoked: true, settings: true, missed: true });

export interface CommitListenerParams {
  url: string;
  channel: string;
  /** This master's notices are told by `tell` at its commits; when they come back they are left out. */
  origin: string;
  onListenerError?: (error: unknown) => void;
  /** The listening connection failed (it is made again). */
  onConnectionError?: (message: string) => void;
}

export class CommitListener {
  private readonly listeners = new Set<Listener>();
  private client: pg.Client | undefined;
  private closed = false;
  private retryMs = 100;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly params: CommitListenerParams) {}

  /** Connect and LISTEN; resolves once listening (throws if the first connection fails). */
  async start(): Promise<void> {
    await this.connect();
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Tell the listeners of a commit of this master's own. */
  tell(change: Committed): void {
    this.emit(change);
  }

  private emit(change: Committed): void {
    for (const listener of this.listeners) {
      try {
        listener(change);
      } catch (error) {
        this.params.onListenerError?.(error);
      }
    }
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.params.url, keepAlive: true, options: SERVER_KEEPALIVES });
    client.on("notification", (message) => {
      if (message.channel !== this.params.channel || message.payload === undefined) return;
      const notice = parseNotice(message.payload);
      if (!notice || notice.origin === this.params.origin) return;
      const { origin: _origin, ...change } = notice;
      this.emit(change);
    });
    client.on("error", (error) => this.lost(client, error.message));
    client.on("end", () => this.lost(client, "connection ended"));
    try {
      await client.connect();
      await client.query(`LISTEN ${quoteIdent(this.params.channel)}`);
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    // Closed while connecting: this connection is no one's to end later.
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.retryMs = 100;
  }

  private lost(client: pg.Client, message: string): void {
    if (this.closed || this.client !== client) return;
    this.client = undefined;
    this.params.onConnectionError?.(message);
    client.end().catch(() => undefined);
    this.reconnect();
  }

  private reconnect(): void {
    if (this.closed || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.connect().then(
        () => {
          if (!this.closed) this.emit(EVERYTHING);
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

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }
}
