// What every verb of the SQLite store shares: the connection, the clock, the queue rules, the audit writer.
import type { Clock, QueuePolicy } from "../types.js";
import type { AuditWriter } from "./audit.js";
import type { SqliteDatabase } from "./database.js";
import type { Lanes } from "./lanes.js";

export interface StoreContext {
  db: SqliteDatabase;
  clock: Clock;
  policy: QueuePolicy;
  audit: AuditWriter;
  lanes: Lanes;
}
