// What every verb of the SQLite store shares: the connection, the clock, the queue rules,
// the audit writer, the dispatch lanes and the commit signal.
import type { Clock, QueuePolicy } from "../types.js";
import type { AuditWriter } from "./audit.js";
import type { CommitSignal } from "./commit-signal.js";
import type { FairShare } from "./fair-share.js";
import type { JobTypeSettings } from "./job-types.js";
import type { SqliteDatabase } from "./database.js";
import type { Lanes } from "./lanes.js";

export interface StoreContext {
  db: SqliteDatabase;
  clock: Clock;
  policy: QueuePolicy;
  audit: AuditWriter;
  lanes: Lanes;
  /** Paused and limited job types (API.md §5a). */
  types: JobTypeSettings;
  /** Fair share between clients (API.md §5a): the mode, and the claim's fill from fair_queue. */
  fair: FairShare;
  /** What a write changed, told once its transaction commits (Store.onCommitted). */
  signal: CommitSignal;
}
