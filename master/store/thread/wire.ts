// What the store's thread and the master's event loop say to each other (see client.ts).
import {
  CorruptDatabaseError,
  InvalidCursorError,
  StorageUnavailableError,
  StorageUnreachableError,
  UnstorableValueError,
  type Committed,
  type Store,
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

/**
 * The verbs that cross to the thread: each aggregate's, as its interface in types.ts names them
 * (checked below to be all of them), and the store's own. The thread runs no other method.
 */
export const VERBS = {
  jobs: [
    "submit", "get", "finalAmong", "list", "events", "attempts", "whyFacts", "fairShare", "setFairShare", "claim", "claimEach",
    "report", "cancel", "retry", "setPriority", "cancelMatching", "retryMatching", "promoteScheduled", "age", "rescueStalled",
    "expireLeases", "stats", "purgeFinished", "throughput",
  ],
  nodes: ["register", "get", "list", "heartbeat", "deregister", "drain", "resume", "markDead"],
  audit: ["list", "record", "purge"],
  settings: ["get", "set", "setIfAbsent"],
  clients: ["create", "get", "list", "disable", "countByRole"],
  tokens: ["issue", "findByHash", "touch", "revoke", "list", "deleteExpired"],
  schedules: ["create", "get", "list", "update", "delete", "due", "nextDueAt", "fire", "skip"],
  types: ["list", "set"],
} as const satisfies { [A in Aggregate]: readonly (keyof Store[A])[] };
export const STORE_VERBS = ["durable", "describe", "probeWrite", "ping", "close"] as const satisfies readonly (keyof Store)[];

export type Aggregate = "jobs" | "nodes" | "audit" | "settings" | "clients" | "tokens" | "schedules" | "types";
export const AGGREGATES = Object.keys(VERBS) as Aggregate[];
/** An aggregate's methods that VERBS leaves out: none, or this does not compile. */
type Missing<A extends Aggregate> = Exclude<keyof Store[A], (typeof VERBS)[A][number]>;
const complete: { [A in Aggregate]: [Missing<A>] extends [never] ? true : Missing<A> } = {
  jobs: true,
  nodes: true,
  audit: true,
  settings: true,
  clients: true,
  tokens: true,
  schedules: true,
  types: true,
};
void complete;

/** Whether the thread runs this call: one of VERBS (an aggregate's) or STORE_VERBS (target ""). */
export function isVerb(target: string, method: string): boolean {
  if (target === "") return (STORE_VERBS as readonly string[]).includes(method);
  return Object.hasOwn(VERBS, target) && (VERBS[target as Aggregate] as readonly string[]).includes(method);
}

/** A verb: `target` is an aggregate (jobs, nodes, ...) or "" for the store's own. */
export interface Call {
  id: number;
  target: string;
  method: string;
  args: unknown[];
}

export type HostMessage =
  /** Open, checked and migrated. */
  | { kind: "opened" }
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
