// The store's commit signal: the writes of a transaction mark what they changed, and once
// the transaction commits the listeners hear it, once, with everything it changed. A write
// that is undone (a group commit rolled back to replay its items one by one) is never told.
import type { Committed } from "../types.js";
import type { SqliteDatabase } from "./database.js";

type Listener = (change: Committed) => void;

export class CommitSignal {
  private readonly listeners = new Set<Listener>();
  /** What the transaction running now changed so far; undefined until its first mark. */
  private pending: (Omit<Committed, "finished"> & { finished: string[] }) | undefined;

  constructor(
    private readonly db: SqliteDatabase,
    /** A listener threw: said, and the others still hear the change. */
    private readonly onListenerError: (error: unknown) => void = () => undefined,
  ) {}

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A write in the transaction running now changed this (outside a transaction: told at once). */
  mark(change: Partial<Committed>): void {
    const first = this.pending === undefined;
    const pending = (this.pending ??= { claimable: false, scheduled: false, schedules: false, finished: [] });
    pending.claimable ||= change.claimable === true;
    pending.scheduled ||= change.scheduled === true;
    pending.schedules ||= change.schedules === true;
    if (change.revoked) pending.revoked = true;
    if (change.settings) pending.settings = true;
    if (change.finished !== undefined) pending.finished.push(...change.finished);
    if (first) this.db.onCommit(() => this.emit(), () => (this.pending = undefined));
  }

  private emit(): void {
    const change = this.pending;
    this.pending = undefined;
    if (change === undefined || !(change.claimable || change.scheduled || change.schedules || change.revoked || change.settings || change.finished.length > 0)) return;
    for (const listener of this.listeners) {
      try {
        listener(change);
      } catch (error) {
        this.onListenerError(error);
      }
    }
  }
}
