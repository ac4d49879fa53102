// Who hears a store's commits (Store.onCommitted): every listener hears each change; one that
// throws is told to onListenerError and the others still hear it. SQLite's commit signal, the
// PostgreSQL store's LISTEN connection and the store thread's client all tell through this.
import type { Committed } from "./types.js";

type Listener = (change: Committed) => void;

export class CommitListeners {
  private readonly listeners = new Set<Listener>();

  constructor(private readonly onListenerError: (error: unknown) => void = () => undefined) {}

  /** Answers the unsubscribe. */
  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  tell(change: Committed): void {
    for (const listener of this.listeners) {
      try {
        listener(change);
      } catch (error) {
        this.onListenerError(error);
      }
    }
  }
}
