// Failed logins in the audit log and the master's log, aggregated the same way: the
// first failure of a client id from an address in a window is one row and one warning;
// the rest of that window become one summary row and one summary warning. An attack
// costs either log a few lines a minute, not one per try.
import type { Logger } from "pino";
import type { AuditStore } from "../store/types.js";

export const FAILED_LOGIN_WINDOW_MS = 60_000;
/** Distinct (client id, address) pairs tracked per window; past it, failures count under one key. */
const MAX_KEYS = 1000;

interface Window {
  clientId: string;
  address: string;
  more: number;
  since: string;
}

export class FailedLoginLog {
  private windows = new Map<string, Window>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly audit: AuditStore,
    private readonly log: Logger,
    private readonly windowMs = FAILED_LOGIN_WINDOW_MS,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.flush(), this.windowMs);
    this.timer.unref();
  }

  async record(clientId: string, address: string): Promise<void> {
    let key = `${clientId}\u0000${address}`;
    if (!this.windows.has(key) && this.windows.size >= MAX_KEYS) key = "*";
    const open = this.windows.get(key);
    if (open) {
      open.more += 1;
      return;
    }
    const window: Window = key === "*" ? { clientId: "*", address: "*", more: 1, since: new Date().toISOString() } : {
      clientId: clientId.slice(0, 64),
      address,
      more: 0,
      since: new Date().toISOString(),
    };
    this.windows.set(key, window);
    if (key === "*") {
      this.log.warn({ event: "auth.failed", clientId: "*", address: "*" }, `failed logins from more than ${MAX_KEYS} client ids and addresses; counted together until the next summary`);
      return;
    }
    this.log.warn({ event: "auth.failed", clientId: window.clientId, address }, "failed login");
    await this.write(window, 1);
  }

  /** Write one summary row per window that saw more than its first failure, and start new windows. */
  async flush(): Promise<void> {
    const closing = this.windows;
    this.windows = new Map();
    for (const window of closing.values()) {
      if (window.more === 0) continue;
      this.log.warn(
        { event: "auth.failed", clientId: window.clientId, address: window.address, attempts: window.more, since: window.since },
        `${window.more} more failed logins`,
      );
      await this.write(window, window.more);
    }
  }

  private async write(window: Window, attempts: number): Promise<void> {
    try {
      await this.audit.record({
        event_type: "auth.failed",
        entity_type: "client",
        entity_id: window.clientId,
        client_id: null,
        details: { address: window.address, attempts, since: window.since },
      });
    } catch (error) {
      this.log.warn({ event: "audit.write_failed", err: (error as Error).message });
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}
