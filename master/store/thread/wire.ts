// What the store's thread and the master's event loop say to each other (see client.ts).
import {
  CorruptDatabaseError,
  InvalidCursorError,
  StorageUnavailableError,
  StorageUnreachableError,
  UnstorableValueError,
  type Committed,
} from "../types.js";
import type { ReaderErrorKind } from "../sqlite/reader.js";
import type { PolicyParams } from "../../queue/policy.js";
import type { Synchronous } from "../sqlite/database.js";

/** What the thread is started with. */
export interface HostData {
  path: string;
  synchronous: Synchronous;
  policy: PolicyParams;
}

/** The store's parts whose verbs cross to the thread. */
export const AGGREGATES = ["jobs", "nodes", "audit", "settings", "clients", "tokens", "schedules", "types"] as const;
export type Aggregate = (typeof AGGREGATES)[number];

/** A verb: `target` is an aggregate (jobs, nodes, ...) or "" for the store's own. */
export interface Call {
  id: number;
  target: string;
  method: string;
  args: unknown[];
}

export type HostMessage =
  /** Open, checked and migrated: each aggregate's verbs, by name. */
  | { kind: "opened"; verbs: Record<Aggregate, string[]> }
  | { kind: "open_failed"; error: SentError }
  | { kind: "answer"; id: number; value: unknown }
  | { kind: "refusal"; id: number; error: SentError }
  | { kind: "committed"; change: Committed }
  | { kind: "checkpoint_error"; message: string }
  | { kind: "reader_error"; message: string; readerKind: ReaderErrorKind }
  | { kind: "listener_error"; message: string };

/** An error as it crosses the thread: the store's own kinds keep their class and fields. */
export interface SentError {
  name: string;
  message: string;
  code?: string;
  cursor?: string;
}

export function sendError(error: unknown): SentError {
  if (!(error instanceof Error)) return { name: "Error", message: String(error) };
  if (error instanceof StorageUnavailableError) return { name: "StorageUnavailableError", message: error.message, code: error.code };
  if (error instanceof StorageUnreachableError) return { name: "StorageUnreachableError", message: error.message, code: error.code };
  if (error instanceof UnstorableValueError) return { name: "UnstorableValueError", message: error.message };
  if (error instanceof CorruptDatabaseError) return { name: "CorruptDatabaseError", message: error.message };
  if (error instanceof InvalidCursorError) return { name: "InvalidCursorError", message: error.message, cursor: error.cursor };
  const code = (error as { code?: unknown }).code;
  return { name: "Error", message: error.message, ...(typeof code === "string" ? { code } : {}) };
}

export function receiveError(sent: SentError): Error {
  switch (sent.name) {
    case "StorageUnavailableError":
      return new StorageUnavailableError(sent.message, sent.code ?? "");
    case "StorageUnreachableError":
      return new StorageUnreachableError(sent.message, sent.code ?? "");
    case "UnstorableValueError":
      return new UnstorableValueError(sent.message);
    case "CorruptDatabaseError":
      return new CorruptDatabaseError(sent.message);
    case "InvalidCursorError":
      return new InvalidCursorError(sent.cursor ?? "");
    default:
      return Object.assign(new Error(sent.message), sent.code === undefined ? {} : { code: sent.code });
  }
}
