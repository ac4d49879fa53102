// Which master of a PostgreSQL cluster runs the sweepers and the schedules: the one that
// holds a session advisory lock, on a connection of its own. If that master dies, its
// session ends and the lock with it; another master takes it at its next look (each
// service looks before each run, at least every GAFFER_SWEEP_INTERVAL_S).
import pg from "pg";

export class Leadership {
  private client: pg.Client | undefined;
  private held = false;
  private trying: Promise<boolean> | undefined;
  private closed = false;

  constructor(
    private readonly url: string,
    /** The lock's key: one per cluster (schema). */
    private readonly key: string,
    private readonly onLost: (message: string) => void = () => undefined,
  ) {}

  /** Whether this master holds the lock now; tries to take it if not. */
  async holds(): Promise<boolean> {
    if (this.held || this.closed) return this.held;
    this.trying ??= this.take().finally(() => (this.trying = undefined));
    return this.trying;
  }

  private async take(): Promise<boolean> {
    try {
      if (!this.client) {
        const client = new pg.Client({ connectionString: this.url });
        client.on("error", (error) => this.lose(client, error.message));
        client.on("end", () => this.lose(client, "connection ended"));
        await client.connect();
        this.client = client;
      }
      const result = await this.client.query<{ taken: boolean }>("SELECT pg_try_advisory_lock(hashtext($1)) AS taken", [this.key]);
      this.held = result.rows[0]?.taken === true;
    } catch (error) {
      if (this.client) this.lose(this.client, (error as Error).message);
    }
    return this.held;
  }

  private lose(client: pg.Client, message: string): void {
    if (this.client !== client) return;
    if (this.held) this.onLost(message);
    this.client = undefined;
    this.held = false;
    client.end().catch(() => undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.held = false;
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }
}
