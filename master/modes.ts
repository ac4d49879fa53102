// The master's mode (API.md §8): normal; paused (no jobs handed out); read_only
// (every write refused with 503, reads work). The master turns read_only by
// itself when the database refuses writes, and leaves it only when an admin
// asks for normal and a write goes through again.
import type { Logger } from "./log.js";
import { StorageUnavailableError, type Clock, type Store } from "./store/types.js";

export const MODES = ["normal", "paused", "read_only"] as const;
export type Mode = (typeof MODES)[number];

const MODE_SETTING = "mode";

export interface ModeState {
  mode: Mode;
  reason: string | null;
  since: string;
  /** Set by the master itself (a storage failure), not by an admin. */
  automatic: boolean;
}

export class ModeController {
  private state: ModeState;
  private readonly listeners: ((state: ModeState) => void)[] = [];
  /** The last time the master left read_only (nodes could not heartbeat before it). */
  private writableAgainAt: Date | undefined;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {
    this.state = { mode: "normal", reason: null, since: clock.now().toISOString(), automatic: false };
  }

  /** The mode an admin set before the last restart (paused and read_only survive restarts). */
  async load(): Promise<void> {
    const saved = await this.store.settings.get(MODE_SETTING);
    if (saved === "paused" || saved === "read_only") {
      this.state = { mode: saved, reason: "set by an admin before the last restart", since: this.clock.now().toISOString(), automatic: false };
    }
  }

  /**
   * The settings changed (on this master or another of its cluster): take the mode an admin
   * set there. A read_only this master turned to by itself stays until a write goes through.
   */
  async reload(): Promise<void> {
    const saved = await this.store.settings.get(MODE_SETTING);
    const mode: Mode = saved === "paused" || saved === "read_only" ? saved : "normal";
    if (mode === this.state.mode || (this.state.automatic && mode === "normal")) return;
    this.change({ mode, reason: "set by an admin (through another master)", since: this.clock.now().toISOString(), automatic: false });
  }

  get current(): ModeState {
    return { ...this.state };
  }

  get allowsWrites(): boolean {
    return this.state.mode !== "read_only";
  }

  get allowsDispatch(): boolean {
    return this.state.mode === "normal";
  }

  /** When writes last became possible again after read_only, if ever. */
  get lastWritableAgainAt(): Date | undefined {
    return this.writableAgainAt;
  }

  onChange(listener: (state: ModeState) => void): void {
    this.listeners.push(listener);
  }

  /** An admin asks for a mode. Leaving read_only needs a write that works. */
  async set(mode: Mode, actor: string): Promise<{ ok: true; state: ModeState } | { ok: false; detail: string }> {
    const from = this.state;
    try {
      if (from.mode === "read_only" || mode !== from.mode) await this.store.probeWrite();
      await this.store.settings.set(MODE_SETTING, mode);
      await this.store.audit.record({
        event_type: "mode.changed",
        entity_type: "master",
        entity_id: "master",
        client_id: actor,
        details: { from: from.mode, to: mode, ...(from.automatic ? { was: from.reason } : {}) },
      });
    } catch (error) {
      if (!(error instanceof StorageUnavailableError)) throw error;
      this.storageFailed(error);
      return { ok: false, detail: `the database still refuses writes: ${error.message}` };
    }
    this.change({ mode, reason: `set by ${actor}`, since: this.clock.now().toISOString(), automatic: false });
    return { ok: true, state: this.current };
  }

  /** The database refused a write: read_only until an admin sets normal again. */
  storageFailed(error: StorageUnavailableError): void {
    if (this.state.mode === "read_only" && this.state.automatic) return;
    this.log.error({ event: "mode.changed", to: "read_only", code: error.code, err: error.message }, "database refuses writes: read-only");
    this.change({ mode: "read_only", reason: error.message, since: this.clock.now().toISOString(), automatic: true });
  }

  private change(state: ModeState): void {
    const from = this.state.mode;
    if (from === "read_only" && state.mode !== "read_only") this.writableAgainAt = this.clock.now();
    this.state = state;
    if (from !== state.mode) {
      this.log.warn({ event: "mode.changed", from, to: state.mode, reason: state.reason }, `mode ${from} → ${state.mode}`);
    }
    for (const listener of this.listeners) listener(this.current);
  }
}
