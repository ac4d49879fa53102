// PostgreSQL rows ↔ the objects the API shows. The pool reads timestamps back as ISO text
// and parses JSON (see database.ts), so most columns pass through as they are.
import type { AuditEntry, Job, Node } from "../types.js";
import { jobOf, nodeOf, type ParsedJobRow, type ParsedNodeRow } from "../wire.js";

/** A jobs row: the wire's columns and the dispatch's own. */
export interface JobRow extends ParsedJobRow {
  seq: number;
  lane: number;
  ready_at: string;
  stall_at: string | null;
  lease_expires_at: string | null;
  aging_at: string | null;
  progress_logged_at: string | null;
  lease_end_reason: string | null;
}

/** The pool gives rows in the wire module's shape already (JSON parsed, timestamps as ISO text). */
export const toJob = (row: JobRow): Job => jobOf(row);

export interface NodeRow extends ParsedNodeRow {
  updated_at: string;
}

export const toNode = (row: NodeRow): Node => nodeOf(row);

export type AuditRow = AuditEntry;
