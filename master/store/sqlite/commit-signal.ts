// The store's commit signal: the writes of a transaction mark what they changed, and once
// the transaction commits the listeners hear it, once, with everything it changed. A write
// that is undone (a group commit rolled back to replay its items one by one) is never told.
import { CommitListeners } from "../commit-listeners.js";
import type { Committed } from "../types.js";
import type { SqliteDatabase } from "./database.js";

export class CommitSignal {
  private readonly listeners: CommitListeners;
  /** What the transaction running now changed so far; undefined until its first mark. */
  private pending: (Omit<Committed, "finished"> & { finished: string[] }) | undefined;

  constructor(
    private readonly db: SqliteDatabase,
    /** A listener threw: said, and the others still hear the change. */
    onListenerError?: (error: unknown) => void,
  ) {
    this.listeners = new CommitListeners(onListenerError);
  }

  subscribe(listener: (change: Committed) => void): () => void {
    return this.listeners.subscribe(listener);
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
    this.listeners.tell(change);
  }
}
